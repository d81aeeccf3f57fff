"""Base class shared by every config section: frozen, no unknown keys."""
from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A frozen config section that rejects unknown keys (typos fail loudly)."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)
