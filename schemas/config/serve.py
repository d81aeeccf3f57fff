"""The OpenAI-compatible server: built-in transformers backend with dynamic batching, or vLLM."""
import re
from typing import Literal

from pydantic import Field, model_validator

from loraflow.schemas.config._base import Section

# vLLM accepts only these LoRA ranks (its --max-lora-rank choices).
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
# Flags build_vllm_command sets from typed fields; passing them again through extra_args is ambiguous.
VLLM_MANAGED_FLAGS = (
    "--host", "--port", "--served-model-name", "--tensor-parallel-size", "--max-num-seqs", "--dtype",
    "--max-model-len", "--gpu-memory-utilization", "--quantization", "--enable-lora", "--lora-modules",
    "--max-loras", "--max-lora-rank", "--generation-config",
)
_LORA_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class VllmConfig(Section):
    tensor_parallel_size: int = Field(1, ge=1, le=64, description="GPUs one model is split over (`--tensor-parallel-size`).")
    dtype: Literal["auto", "half", "float16", "bfloat16", "float", "float32"] = Field("auto", description="Weight and activation dtype (`--dtype`).")
    max_model_len: int | None = Field(None, ge=16, description="Context length in tokens (`--max-model-len`); default: the model's.")
    gpu_memory_utilization: float = Field(0.9, gt=0.0, le=1.0, description="Share of GPU memory vLLM may take for weights and KV cache.")
    quantization: Literal["awq", "awq_marlin", "gptq", "gptq_marlin", "bitsandbytes", "fp8", "compressed-tensors", "gguf"] | None = Field(
        None, description="Quantisation method of the served weights (`--quantization`); default: detected from the checkpoint."
    )
    enable_lora: bool = Field(False, description="Serve LoRA adapters on top of the base model (multi-LoRA).")
    lora_modules: dict[str, str] = Field(
        default_factory=dict, description="Adapters to serve as name -> folder; each name becomes a model id in /v1/models."
    )
    max_loras: int = Field(4, ge=1, description="Adapters active in one batch (`--max-loras`).")
    max_lora_rank: int = Field(16, description=f"Largest adapter rank served (`--max-lora-rank`), one of {VLLM_LORA_RANKS}.")
    extra_args: list[str] = Field(default_factory=list, description="Further `vllm serve` arguments, passed through unchanged.")


class ServeConfig(Section):
    model: str | None = Field(
        None, description="What to serve: `models:/NAME@champion`, `models:/NAME/VERSION`, or a local model folder; "
        "default: the champion of deploy.registered_model_name."
    )
    served_model_name: str | None = Field(None, description="Model id clients send and /v1/models lists; default: the registered name or folder name.")
    host: str = Field("127.0.0.1", description="Interface to bind; 0.0.0.0 inside containers.")
    port: int = Field(8000, ge=1, le=65535, description="TCP port of the server.")
    backend: Literal["auto", "builtin", "vllm"] = Field(
        "auto", description="vllm (production, GPU), builtin (transformers with dynamic batching, GPU or CPU), or auto: vllm where it imports."
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Device of the built-in backend; auto picks CUDA when available.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field("auto", description="Built-in backend dtype; auto: bf16 on CUDA, fp32 on CPU.")
    max_batch_size: int = Field(8, ge=1, le=1024, description="Most requests generated together in one batch (vLLM: `--max-num-seqs`).")
    batch_wait_ms: float = Field(
        10.0, ge=0.0, le=10_000.0, description="How long the built-in batcher waits for more requests before starting a batch."
    )
    max_new_tokens: int = Field(256, ge=1, description="Tokens generated when a request gives no max_tokens.")
    max_body_bytes: int = Field(
        4_194_304, ge=1024, description="Largest accepted request body in bytes (413 above it), checked before anything is "
        "parsed or tokenized; a prompt longer than the model's context is refused from its length before tokenizing too."
    )
    reload_poll_seconds: float = Field(
        30.0, ge=0.0, description="How often to check whether the served alias (e.g. champion) moved; 0 turns reloading off."
    )
    vllm: VllmConfig = Field(default_factory=VllmConfig, description="Options of the vLLM backend.")

    @model_validator(mode="after")
    def _vllm_options_consistent(self) -> "ServeConfig":
        problems = []
        v = self.vllm
        if v.lora_modules and not v.enable_lora:
            problems.append("serve.vllm.lora_modules is set but serve.vllm.enable_lora is false: set enable_lora: true")
        for name in v.lora_modules:
            if not _LORA_NAME.match(name):
                problems.append(f"serve.vllm.lora_modules key {name!r} must be letters, digits, '.', '_' or '-'")
        if v.max_lora_rank not in VLLM_LORA_RANKS:
            problems.append(f"serve.vllm.max_lora_rank={v.max_lora_rank} must be one of {VLLM_LORA_RANKS}")
        for arg in v.extra_args:
            flag = arg.split("=", 1)[0]
            if flag in VLLM_MANAGED_FLAGS:
                problems.append(f"serve.vllm.extra_args repeats {flag}, which a typed serve/serve.vllm field sets: use that field")
        if self.backend == "vllm" and self.device == "cpu":
            problems.append("serve.backend=vllm needs a GPU but serve.device=cpu: use backend builtin or device cuda/auto")
        if self.backend == "builtin" and v.tensor_parallel_size > 1:
            problems.append("serve.vllm.tensor_parallel_size>1 needs serve.backend vllm (the built-in backend runs on one device)")
        if self.backend == "builtin" and v.enable_lora:
            problems.append("serve.vllm.enable_lora needs serve.backend vllm (the built-in backend serves one merged model)")
        if problems:
            raise ValueError("; ".join(problems))
        return self
