"""Registration, merging, quantisation and serving."""
from typing import Literal

from pydantic import Field

from loraflow.schemas.config._base import Section


class DeployConfig(Section):
    register_model: bool = Field(True, description="Register the candidate in the MLflow Model Registry.")
    registered_model_name: str | None = Field(None, description="Registry name; default: the task card's name.")
    merge: bool = Field(True, description="Merge the LoRA adapter into a 16-bit copy of the base model for serving.")
    parity_tolerance: float = Field(1e-3, gt=0.0, description="Largest allowed max-abs logit difference between merged and adapter model.")
    quantize: list[Literal["int8", "int4"]] = Field(default_factory=list, description="Quantised variants to build with bitsandbytes.")
    auto_promote: bool = Field(True, description="Move the `champion` alias when the promotion gate passes.")
    merge_dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Storage dtype of the merged model; auto: float32 on CPU, bfloat16 (else float16) on CUDA."
    )
    parity_tolerance_16bit: float = Field(
        1.0, gt=0.0,
        description="Largest allowed max-abs logit difference when the merged model is stored in bf16/fp16 "
        "(rounding the weights to 16 bits alone moves SmolLM2-135M logits by ~0.45).",
    )
    parity_prompts: int = Field(8, ge=1, description="Held-out test prompts the parity check generates from.")
    parity_max_new_tokens: int = Field(16, ge=1, description="Greedy tokens generated per parity prompt.")
    gguf: list[Literal["f16", "q8_0", "q4_0"]] = Field(
        default_factory=list, description="GGUF files to export for llama.cpp/vLLM/edge use (Llama-architecture models)."
    )
    quantize_tolerance: float = Field(
        0.05, ge=0.0, description="Largest allowed drop of the success metric of a quantised variant against the merged model."
    )
