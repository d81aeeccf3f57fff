"""CUDA out-of-memory fallback: halve the micro-batch, double gradient accumulation (same effective batch), retry."""
import gc
import logging
from collections.abc import Callable
from typing import TypeVar

from loraflow.schemas.results.training import OomFallback
from loraflow.tasks.common.errors import LoraflowError

T = TypeVar("T")
logger = logging.getLogger("loraflow.train")


def is_cuda_oom(error: BaseException) -> bool:
    """True for torch's OutOfMemoryError and the RuntimeErrors CUDA/cuBLAS raise when memory runs out."""
    import torch

    if isinstance(error, torch.OutOfMemoryError):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and (
        "CUDA out of memory" in text or "CUBLAS_STATUS_ALLOC_FAILED" in text or "CUDA error: out of memory" in text
    )


def free_cuda_memory() -> None:
    """Collect the failed attempt's tensors and hand cached blocks back to the driver."""
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def run_with_oom_fallback(
    attempt: Callable[[int, int], T],
    micro_batch: int,
    accumulation: int,
    on_fallback: Callable[[OomFallback], None] | None = None,
) -> T:
    """Call attempt(micro_batch, accumulation); on CUDA OOM halve the micro-batch and double accumulation, down to 1.

    The attempt should resume from its last checkpoint, so the step that ran out of memory is the one retried.
    on_fallback gets an OomFallback (from and to which micro-batch, the accumulation, the error) for every fallback
    (it is logged too).
    """
    effective = micro_batch * accumulation
    while True:
        try:
            return attempt(micro_batch, accumulation)
        except Exception as error:  # noqa: BLE001 - only OOM is handled, everything else re-raised unchanged
            if not is_cuda_oom(error):
                raise
            if micro_batch <= 1:
                raise LoraflowError(
                    "CUDA out of memory even at micro-batch 1 (train.micro_batch_size); set train.method=qlora, "
                    "train.gradient_checkpointing=true or a shorter model.max_length, or use a bigger GPU "
                    "(`loraflow estimate CONFIG` shows what fits)"
                ) from None
            reason = str(error).splitlines()[0][:300]
        # Outside the except block: the exception's frames, which hold the failed attempt's tensors, are gone.
        free_cuda_memory()
        previous = micro_batch
        micro_batch = max(1, micro_batch // 2)
        accumulation = -(-effective // micro_batch)
        event = OomFallback(from_micro_batch=previous, micro_batch=micro_batch, accumulation=accumulation, error=reason)
        logger.warning(
            "CUDA out of memory at micro-batch %d: retrying with micro-batch %d x accumulation %d (effective batch %d)",
            previous, micro_batch, accumulation, micro_batch * accumulation,
        )
        if on_fallback:
            on_fallback(event)
