"""Disk an estimate plans for: kept checkpoints, the final adapter or model, merged and quantised copies."""
from loraflow.tasks.planning.estimate_shapes import GIB, NF4_BYTES, NF4_CONST_BYTES, OPTIMIZER_BYTES, ModelShape


def disk_breakdown(
    shape: ModelShape, method: str, trainable: int, optimizer: str, checkpoints_kept: int, merge: bool,
    quantize: list[str],
) -> dict[str, float]:
    """Disk bytes by output, in GiB: kept checkpoints, the final adapter/model, merged and quantised copies."""
    optimizer_state = trainable * OPTIMIZER_BYTES[optimizer]
    trained = trainable * 4.0 if method != "full" else shape.total_params * 2.0
    parts = {"checkpoints": checkpoints_kept * (trained + optimizer_state), "final": trained}
    if merge and method != "full":
        parts["merged_bf16"] = shape.total_params * 2.0
    other = shape.embedding_params + shape.norm_params
    for kind in quantize:
        per_weight = 1.0 if kind == "int8" else NF4_BYTES + NF4_CONST_BYTES
        parts[f"quantized_{kind}"] = shape.layer_linear_params * per_weight + other * 2.0
    return {name: value / GIB for name, value in parts.items()}
