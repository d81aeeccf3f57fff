"""The longest sequence that trains at batch 1 on a card: loraflow's long-context settings against the plain QLoRA stack.

Both come from the resource estimate's memory model (tasks/planning/estimate.py) with gradient checkpointing on:
loraflow's side with trl's fused LM head, the configured QLoRA precision, optimizer and dropout, and the checkpointed
layers' inputs offloaded to host memory (train.offload_activations); the plain stack as benchmarks/baseline_stack.py
builds it (PLAIN_QLORA_RECIPE: peft's fp32 upcast, full logits, paged 8-bit AdamW, dropout 0.05). The prediction is
the longest length whose estimated need (peak allocation with fragmentation and the CUDA context) is at most the
card, without the planner's 10% margin: it is compared with the measured limit (benchmarks/long_context_bench.py).
"""
from loraflow.schemas.config.lora import LoraConfig
from loraflow.schemas.config.train import TrainConfig
from loraflow.tasks.planning.context_limit import ContextLimit
from loraflow.tasks.planning.estimate import estimate_resources
from loraflow.tasks.planning.estimate_shapes import GIB, residual_bytes, shape_from_config

# The plain QLoRA recipe the estimate models for comparisons (auto_settings' unchecked-layer budget, the long-context
# limit): peft's prepare_model_for_kbit_training upcast, full logits, paged 8-bit AdamW, LoRA dropout 0.05.
PLAIN_QLORA_RECIPE = {"optimizer": "paged_adamw_8bit", "qlora_fp32": "all", "fused_lm_head": False, "lora_dropout": 0.05}
# Share of the host's memory the offloaded inputs may take: the process, the data and the OS need the rest.
HOST_MEMORY_SHARE = 0.8
GRANULARITY = 256  # tokens: the search's resolution
MAX_TOKENS = 1 << 23  # the search stops here (8M tokens)


def offloaded_host_bytes(model_config: dict, tokens: int, residual_bytes: int = 2, unchecked_layers: int = 0) -> int:
    """Pinned host bytes the checkpointed layers' inputs take: one block per layer, rounded up to a power of two as
    torch's pinned-memory allocator rounds it (a layer input of 1.5 GiB holds a 2 GiB block)."""
    shape = shape_from_config(model_config)
    block = tokens * shape.hidden_size * residual_bytes
    return max(0, shape.num_layers - unchecked_layers) * (1 << max(0, block - 1).bit_length() if block else 0)


def stack_settings(stack: str, *, qlora_fp32: str = "none", optimizer: str = "auto", lora_dropout: float = 0.0,
                   offload_activations: bool = True) -> dict:
    """The estimate's settings for a stack: loraflow's (as configured, fused head, offloading) or the plain recipe's."""
    if stack == "plain":
        return {**PLAIN_QLORA_RECIPE, "offload_activations": False}
    return {"optimizer": optimizer, "qlora_fp32": qlora_fp32, "fused_lm_head": True, "lora_dropout": lora_dropout,
            "offload_activations": offload_activations}


def longest_sequence(model_config: dict, gpu_memory_gib: float, stack: str = "loraflow", *, method: str = "qlora",
                     lora_r: int = 16, target_modules: list[str] | str = "all-linear",
                     host_memory_gib: float | None = None, max_tokens: int = MAX_TOKENS, **settings) -> ContextLimit:
    """The longest sequence (a multiple of GRANULARITY tokens) that the estimate says trains at batch 1 on the card.

    settings: stack_settings' keywords for loraflow's side (ignored for the plain stack). host_memory_gib bounds the
    offloaded inputs (HOST_MEMORY_SHARE of it); None: no host limit.
    """
    chosen = stack_settings(stack, **settings)
    residual = residual_bytes(method, chosen["qlora_fp32"])

    def need(tokens: int) -> tuple[float, float, float]:
        estimate = estimate_resources(model_config, method, lora_r, tokens, 1, True, 0, 1.0, gpu_memory_gib,
                                      target_modules=target_modules, **chosen)
        host = offloaded_host_bytes(model_config, tokens, residual) / GIB if chosen["offload_activations"] else 0.0
        return estimate.peak_gpu_memory_gib, estimate.required_gpu_memory_gib, host

    def problem(tokens: int) -> str | None:
        _, required, host = need(tokens)
        if required > gpu_memory_gib:
            return "gpu"
        if host_memory_gib is not None and host > host_memory_gib * HOST_MEMORY_SHARE:
            return "host memory"
        return None

    low, high = 0, GRANULARITY  # low fits (0 trivially), high is the first length tried that does not
    while high <= max_tokens and problem(high) is None:
        low, high = high, high * 2
    limited = problem(high) if high <= max_tokens else "search cap"
    high = min(high, max_tokens + GRANULARITY)
    while high - low > GRANULARITY:  # bisect on multiples of GRANULARITY
        middle = (low + high) // 2 // GRANULARITY * GRANULARITY
        if problem(middle) is None:
            low = middle
        else:
            high, limited = middle, problem(middle)
    peak, required, host = need(low) if low else (0.0, 0.0, 0.0)
    return ContextLimit(stack=stack, tokens=low, gpu_memory_gib=gpu_memory_gib, peak_gpu_memory_gib=round(peak, 3),
                        required_gpu_memory_gib=round(required, 3), host_memory_gib=round(host, 3), limited_by=limited,
                        settings={"method": method, **chosen})


def context_limits(train: TrainConfig, lora: LoraConfig, method: str, model_config: dict, gpu_memory_gib: float,
                   host_memory: float | None = None) -> list[ContextLimit]:
    """The longest sequence at batch 1 on the card for loraflow (the config's LoRA, precision, optimizer and dropout,
    offloading unless train.offload_activations is false; QLoRA unless the method is bf16 LoRA) and the plain stack."""
    shared = {"lora_r": lora.r, "target_modules": lora.target_modules, "host_memory_gib": host_memory}
    ours = longest_sequence(model_config, gpu_memory_gib, "loraflow", method=method if method == "lora" else "qlora",
                            qlora_fp32=train.qlora_fp32, optimizer=train.optimizer, lora_dropout=lora.dropout,
                            offload_activations=train.offload_activations is not False, **shared)
    return [ours, longest_sequence(model_config, gpu_memory_gib, "plain", **shared)]


def host_memory_gib() -> float | None:
    """This machine's physical memory in GiB (None where the OS does not say)."""
    import os

    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB
    except (ValueError, OSError, AttributeError):
        return None
