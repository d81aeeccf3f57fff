"""Training speed options on CUDA: compiled decoder layers, padding-free packing with varlen attention, Liger kernels;
and the memory option that trades speed back: offloaded checkpointing (tasks/training/offload.py)."""
import inspect
import logging

from loraflow.schemas.config.lora import LoraConfig
from loraflow.schemas.config.train import TrainConfig
from loraflow.schemas.results.training import SpeedPlan
from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.planning.auto_settings import auto_offload_activations, auto_unchecked_layers
from loraflow.tasks.planning.estimate_packing import resolve_packing

logger = logging.getLogger("loraflow.train")

VARLEN_ATTENTION = "loraflow_varlen"
# Compiled layers recompile per new shape until dynamo marks the shape dynamic; padding every batch to a multiple of
# 64 tokens keeps the number of distinct shapes (and recompiles) small and the matrix shapes tensor-core friendly.
PAD_TO_MULTIPLE = 64
RECOMPILE_LIMIT = 64


def resolve_speed(train: TrainConfig, device: str, model_config: dict | None = None, max_length: int = 0,
                  lora: LoraConfig | None = None) -> SpeedPlan:
    """Decide the speed options: compile_layers defaults to on with CUDA; Liger turns default compilation off.

    Liger's kernels break the compiled graph (measured slower together than compile alone), so an explicit
    `compile_layers: true` with `liger: true` is refused rather than silently slow. `unchecked_layers: auto` needs the
    model's config.json dict, the max length and the LoRA settings (0 without them, and on the CPU).
    """
    cuda = device.startswith("cuda")
    if train.liger and train.compile_layers:
        raise LoraflowError("train.liger=true and train.compile_layers=true together run slower than compile alone "
                            "(Liger's kernels break the compiled graph); set one of them to false")
    if train.liger:
        _require_liger()
    compile_layers = (cuda and not train.liger) if train.compile_layers is None else train.compile_layers
    optimizer = resolve_optimizer(train.optimizer, cuda)
    packing = resolve_packing(train, cuda)
    attn = "sdpa"
    if packing and cuda and register_varlen_attention():
        attn = VARLEN_ATTENTION
    sized = cuda and bool(model_config) and bool(max_length)  # auto settings are sized for the card, from the estimate
    offload = train.offload_activations
    if offload == "auto":
        offload = sized and auto_offload_activations(train, lora or LoraConfig(), model_config, max_length,
                                                     _card_gib(device))
    unchecked = train.unchecked_layers
    if unchecked == "auto":
        unchecked = 0
        if sized and not offload:  # offloading means memory is short: no layer keeps its activations
            unchecked = auto_unchecked_layers(train, lora or LoraConfig(), model_config, max_length, _card_gib(device))
    checkpointing = train.gradient_checkpointing
    return SpeedPlan(compile_layers=compile_layers, packing=packing, liger=train.liger, attn_implementation=attn,
                     pad_to_multiple_of=PAD_TO_MULTIPLE if compile_layers else None, optimizer=optimizer,
                     unchecked_layers=unchecked if checkpointing else 0, offload_activations=bool(offload and checkpointing))


def _card_gib(device: str) -> float:
    import torch

    return torch.cuda.get_device_properties(torch.device(device)).total_memory / 1024**3


def resolve_optimizer(name: str, cuda: bool) -> str:
    """The transformers `optim` name: auto is fused AdamW on CUDA (one launch for all tensors), plain AdamW on the CPU."""
    if name == "auto":
        return "adamw_torch_fused" if cuda else "adamw_torch"
    if not cuda and name != "adamw_torch":
        raise LoraflowError(f"train.optimizer={name!r} needs CUDA (bitsandbytes 8-bit states / fused kernels); "
                            "set train.optimizer to auto or adamw_torch on the CPU")
    return name


def _require_liger() -> None:
    try:
        import liger_kernel  # noqa: F401
    except ImportError:
        raise LoraflowError("train.liger=true needs the liger-kernel package; `pip install liger-kernel` or set "
                            "train.liger=false") from None


def decoder_layers(model) -> list:
    """The transformer blocks of a (peft-wrapped) causal LM: the largest ModuleList of identical layer classes."""
    import torch

    best: list = []
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) > len(best):
            if len({type(layer) for layer in module}) == 1:
                best = list(module)
    return best


def compile_decoder_layers(model) -> int:
    """torch.compile each decoder layer in place (idempotent); returns how many layers are compiled.

    Per-layer compilation keeps bitsandbytes and peft code out of any whole-model graph, shares one compiled graph
    across identical layers and works inside gradient checkpointing (the checkpoint wraps the compiled call).
    """
    import torch._dynamo

    config = torch._dynamo.config
    for name in ("recompile_limit", "cache_size_limit", "accumulated_recompile_limit", "accumulated_cache_size_limit"):
        if hasattr(config, name):
            setattr(config, name, max(getattr(config, name), RECOMPILE_LIMIT * (8 if "accumulated" in name else 1)))
    layers = decoder_layers(model)
    for layer in layers:
        if getattr(layer, "_compiled_call_impl", None) is None:
            layer.compile()
    return len(layers)


def keep_activations_of_last_layers(model, count: int) -> int:
    """Turn gradient checkpointing off for the last `count` decoder layers (their activations stay in memory).

    transformers' checkpointing is a per-layer flag (GradientCheckpointingLayer.gradient_checkpointing) that
    Trainer.train() sets on every layer; call this after it (the trainer does, on train begin). Returns how many
    layers were changed.
    """
    changed = 0
    for layer in decoder_layers(model)[-count:] if count > 0 else []:
        if getattr(layer, "gradient_checkpointing", False):
            layer.gradient_checkpointing = False
            changed += 1
    return changed


def register_varlen_attention() -> bool:
    """Register the padding-free varlen flash attention with transformers; False where torch lacks varlen_attn."""
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        logger.info("torch has no varlen_attn: packed batches use SDPA with a block-diagonal mask")
        return False
    import torch
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    params = inspect.signature(varlen_attn).parameters

    def mask(*args, attention_mask=None, **kwargs):
        # Packed (padding-free) batches come without a 2D mask: the kernel reads the sequence bounds instead.
        if attention_mask is None:
            return None
        return sdpa_mask(*args, attention_mask=attention_mask, **kwargs)

    def attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
        cu_seq = kwargs.get("cu_seq_lens_q")
        if cu_seq is None or attention_mask is not None or query.shape[0] != 1:
            from transformers.integrations.sdpa_attention import sdpa_attention_forward

            return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                          **kwargs)
        q, k, v = (t.transpose(1, 2)[0] for t in (query, key, value))  # [1, H, T, D] -> [T, H, D]
        if q.dtype.is_floating_point and q.element_size() == 4:  # fp32 norms (QLoRA) make bitsandbytes return fp32; flash needs 16-bit
            half = torch.get_autocast_dtype("cuda") if torch.is_autocast_enabled("cuda") else torch.bfloat16
            q, k, v = q.to(half), k.to(half), v.to(half)
        extra = {}
        if k.shape[1] != q.shape[1]:
            if "enable_gqa" in params:
                extra["enable_gqa"] = True
            else:
                groups = q.shape[1] // k.shape[1]
                k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
        if "is_causal" in params:
            extra["is_causal"] = True
        else:
            extra["window_size"] = (-1, 0)  # torch >= 2.12 spells causal as a left-unbounded, right-zero window
        max_q = kwargs.get("max_length_q") or int(cu_seq.diff().max())
        out = varlen_attn(q, k, v, cu_seq, kwargs.get("cu_seq_lens_k", cu_seq), max_q,
                          kwargs.get("max_length_k") or max_q, scale=scaling, **extra)
        return out.unsqueeze(0), None

    AttentionInterface.register(VARLEN_ATTENTION, attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(VARLEN_ATTENTION, mask)
    return True
