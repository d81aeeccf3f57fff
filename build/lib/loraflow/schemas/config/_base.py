"""Base class shared by every config section: frozen, no unknown keys."""
from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A frozen config section that rejects unknown keys (typos fail loudly) and inf/nan (`1e309` is not a number of epochs)."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True, allow_inf_nan=False)
