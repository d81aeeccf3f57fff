"""What the longest-sequence prediction returns (tasks/planning/estimate_context.py), apart so that the resource
estimate can carry it."""
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ContextLimit:
    """The longest sequence predicted to train at batch 1 on a card for one stack, and what it needs there."""

    stack: str  # "loraflow" or "plain"
    tokens: int  # 0: not even the search's first length (256 tokens) fits
    gpu_memory_gib: float  # the card planned for
    peak_gpu_memory_gib: float  # torch's peak allocation at that length
    required_gpu_memory_gib: float  # with allocator fragmentation and the CUDA context
    host_memory_gib: float  # pinned host memory of the offloaded layer inputs at that length (0 without offloading)
    limited_by: str  # "gpu", "host memory" or "search cap"
    settings: dict  # dict: the estimate's keyword settings for this stack (method, precision, head, offload), as passed

    def to_dict(self) -> dict:
        return asdict(self)
