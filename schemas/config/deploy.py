"""Registration, merging, quantisation and serving."""
from typing import Literal

from pydantic import Field

from schemas.config._base import Section


class DeployConfig(Section):
    register_model: bool = Field(True, description="Register the candidate in the MLflow Model Registry.")
    registered_model_name: str | None = Field(None, description="Registry name; default: the task card's name.")
    merge: bool = Field(True, description="Merge the LoRA adapter into a 16-bit copy of the base model for serving.")
    parity_tolerance: float = Field(1e-3, gt=0.0, description="Largest allowed max-abs logit difference between merged and adapter model.")
    quantize: list[Literal["int8", "int4"]] = Field(default_factory=list, description="Quantised variants to build with bitsandbytes.")
    auto_promote: bool = Field(True, description="Move the `champion` alias when the promotion gate passes.")
    serve_port: int = Field(8000, ge=1, le=65535, description="Port of the OpenAI-compatible server.")
