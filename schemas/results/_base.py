"""The shared shape of result types: frozen dataclasses (or frozen pydantic models, where a result nests typed parts
read back from JSON) built from, and turned back into, plain dicts."""
import dataclasses
from typing import Any, Self

from pydantic import BaseModel, ConfigDict


class Result:
    """Mixin for frozen result dataclasses: `from_dict` keeps only declared fields; `to_dict` is the inverse."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in data.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]


class ResultModel(BaseModel):
    """Base of the pydantic result types: frozen, nested parts validated, JSON written and read back by the same type.

    Unknown keys are ignored, so a file an older version wrote still reads.
    """

    model_config = ConfigDict(frozen=True, extra="ignore", ser_json_inf_nan="constants")  # NaN as json.dumps writes it

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        return cls.model_validate(data)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()
