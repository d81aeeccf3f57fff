"""The shared shape of result types: frozen dataclasses built from, and turned back into, plain dicts."""
import dataclasses
from typing import Any, Self


class Result:
    """Mixin for frozen result dataclasses: `from_dict` keeps only declared fields; `to_dict` is the inverse."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in data.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]
