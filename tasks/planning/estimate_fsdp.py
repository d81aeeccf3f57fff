"""Per-GPU memory under FSDP: the single-GPU parts, sharded over the GPUs, plus what FSDP holds unsharded.

FSDP2 with full sharding (tasks/training/distributed.py) keeps 1/N of every weight, adapter, gradient and optimizer state on
each GPU; a decoder layer's weights are gathered whole while it runs and the next layer's are prefetched (two layers
unsharded at a time); the last unit (final norm + LM head) stays gathered from the head's forward to its backward.
Activations are per GPU and do not shrink. Loading is the other peak: for QLoRA every rank quantises the whole model
on its GPU and, while accelerate shards it, the full weights and the shards live together; bf16 LoRA loads on the
CPU (rank 0) and arrives sharded.
"""
from loraflow.tasks.planning.estimate_shapes import GIB, NF4_BYTES, NF4_CONST_BYTES, ModelShape

NF4_BYTES_PER_WEIGHT = NF4_BYTES + NF4_CONST_BYTES  # NF4 plus double-quantised absmax
SHARDED_PARTS = ("weights", "adapter", "gradients", "optimizer")


def fsdp_memory_parts(parts_gib: dict[str, float], shape: ModelShape, method: str, num_gpus: int) -> dict[str, float]:
    """Per-GPU parts (GiB) from the single-GPU parts: sharded states, gathered units, and the load peak's excess."""
    if num_gpus <= 1:
        return dict(parts_gib)
    per_gpu = {name: value / num_gpus if name in SHARDED_PARTS else value for name, value in parts_gib.items()}
    layer_linear = shape.layer_linear_params / shape.num_layers
    layer_norms = 2 * shape.hidden_size
    if method == "qlora":
        layer_bytes = layer_linear * NF4_BYTES_PER_WEIGHT + layer_norms * 2
    else:  # bf16 LoRA; full fine-tuning gathers its bf16 compute copy too
        layer_bytes = (layer_linear + layer_norms) * 2
    head_bytes = shape.vocab_size * shape.hidden_size * 2
    per_gpu["fsdp_gathered_units"] = (2 * layer_bytes + head_bytes * (1 - 1 / num_gpus)) / GIB
    training_peak = sum(per_gpu.values())
    if method == "qlora":
        # every rank quantises the whole model on its GPU; full weights and shards coexist while it is sharded
        load_peak = parts_gib["weights"] * (1 + 1 / num_gpus) + parts_gib.get("runtime_buffers", 0.0)
    else:
        load_peak = per_gpu["weights"] + per_gpu["fsdp_gathered_units"]
    per_gpu["fsdp_load_excess"] = max(0.0, load_peak - training_peak)
    return per_gpu
