"""LoRA adapter shape (also used by QLoRA)."""
from pydantic import Field

from loraflow.schemas.config._base import Section


class LoraConfig(Section):
    r: int = Field(8, ge=1, le=1024, description="LoRA rank (guide: 8-16; higher for harder tasks).")
    alpha: int = Field(16, ge=1, description="LoRA alpha; the update is scaled by alpha/r (guide: 2 x r).")
    dropout: float = Field(
        0.0, ge=0.0, lt=1.0, description="Dropout on the LoRA path. 0 (as Unsloth's default) skips the dropout copy of "
        "every adapted layer's input: faster and less activation memory; raise it (0.05-0.1) against overfitting.")
    last_layers: int | None = Field(
        None, ge=1, description="Adapt only the last N decoder layers (default: all). The backward pass then stops at the "
        "lowest adapted layer: SmolLM2-135M on 2 CPU cores trained ~1.5x faster per step with the last 10 of 30 layers.")
    target_modules: list[str] | str = Field("all-linear", description="Modules to adapt: `all-linear` or a list such as [q_proj, v_proj].")
