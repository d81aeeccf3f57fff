"""Training speed for the estimate: tokens/s from a table of measured throughput, scaled to the model and batch."""
from typing import Literal

from loraflow.tasks.planning.estimate_shapes import ModelShape

Method = Literal["lora", "qlora", "full"]

# Effective TFLOP/s counted as 6 x params x tokens/s (the bench's MFU convention), with the hidden size they were
# measured at (smaller models use the card less well). Seeded from the plain QLoRA stack's H100 run (7B, gradient
# checkpointing): benchmarks/results/qlora_baseline_h100.json.
THROUGHPUT_TABLE: dict[str, dict[str, tuple[float, int]]] = {
    "H100": {"qlora": (222.0, 4096), "lora": (280.0, 4096), "full": (210.0, 4096)},  # full: 8N vs 6N of LoRA (assumed)
    "H200": {"qlora": (222.0, 4096), "lora": (280.0, 4096), "full": (210.0, 4096)},  # same compute as H100 (assumed)
    "A100": {"qlora": (91.0, 4096), "lora": (115.0, 4096), "full": (86.0, 4096)},  # H100 x 0.41 matmul ratio (assumed)
    # SmolLM2-135M LoRA on 2 cores without checkpointing: 140 tok/s = 0.113 TFLOP/s; stored as with checkpointing.
    "cpu": {"qlora": (0.04, 576), "lora": (0.081, 576), "full": (0.061, 576)},
}
NO_CHECKPOINTING_SPEEDUP = 1.4  # QLoRA 2048x2 without checkpointing ran 1.44x faster on the H100


def tokens_per_second(
    shape: ModelShape, method: Method, seq_len: int, micro_batch: int, grad_checkpointing: bool, device: str,
    throughput_table: dict | None = None,
) -> float:
    """Training tokens/s from the measured table, scaled by model size, hidden size and tokens per micro-batch."""
    table = throughput_table or THROUGHPUT_TABLE
    entry = table.get(device) or table.get(device_family(device)) or table["H100"]
    tflops, reference_hidden = entry[method]
    per_token_flops = 6.0 * shape.total_params
    speed = tflops * 1e12 / per_token_flops * min(1.0, shape.hidden_size / reference_hidden) ** 0.5
    if device != "cpu":
        # Small micro-batches leave the GPU idle between kernels: 2048 tokens ran at ~0.5-0.6x, 4096 at ~0.87x.
        tokens = seq_len * micro_batch
        speed *= min(1.05, tokens / (tokens + 2048) * 1.25)
    if not grad_checkpointing:
        speed *= NO_CHECKPOINTING_SPEEDUP
    return speed


def device_family(device: str) -> str:
    """'NVIDIA H100 80GB HBM3' -> 'H100'; unknown cards map to themselves."""
    for family in ("H200", "H100", "A100"):
        if family.lower() in device.lower():
            return family
    return "cpu" if device.lower() == "cpu" else device
