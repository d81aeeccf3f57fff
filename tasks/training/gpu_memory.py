"""GPU memory of a training run, per rank: the loading peak, what the prepared model holds, and the training peak.

Under FSDP the three differ: loading (each rank quantises the whole 4-bit model on its GPU) peaks before the model is
sharded, the prepared model then holds about 1/N of the weights, and the training peak adds activations. The
Trainer's `on_train_begin` comes after the model was prepared (sharded), so the callback splits there.
"""
from transformers import TrainerCallback

GIB = 1024**3


class GpuMemoryRecorder(TrainerCallback):
    """Records this rank's CUDA memory (GiB) at train begin and the training peak; no-op without CUDA."""

    def __init__(self):
        self.memory: dict[str, float] = {}

    def on_train_begin(self, args, state, control, **kwargs):
        import torch

        if not torch.cuda.is_available():
            return
        self.memory = {"load_peak_gib": torch.cuda.max_memory_allocated() / GIB,
                       "prepared_gib": torch.cuda.memory_allocated() / GIB}
        torch.cuda.reset_peak_memory_stats()

    def on_train_end(self, args, state, control, **kwargs):
        import torch

        if torch.cuda.is_available() and self.memory:
            self.memory["train_peak_gib"] = torch.cuda.max_memory_allocated() / GIB


def memory_per_rank(memory: dict[str, float]) -> list[dict[str, float]]:
    """Every rank's recorded memory, in rank order (one entry outside torchrun); every rank must call it."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [memory]
    gathered: list = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, memory)
    return gathered
