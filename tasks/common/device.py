"""Where models run and in which precision: the one device/dtype policy every stage follows.

- Device: the GPU when CUDA is available, else the CPU (multi-GPU jobs place their own ranks).
- Inference and storage (generation, merged weights, 4-bit compute): bfloat16 on a GPU that supports it, else float16
  (older GPUs: half the memory, and their fp16 units are the fast path); float32 on the CPU, the exact and fast path
  there.
- Training mixed precision: bf16 autocast where the hardware has it (GPUs with bf16, CPUs with AVX512-BF16 or AMX),
  else float32 - fp16 training needs loss scaling, which trl's LoRA path does not set up for us.
"""


def device() -> str:
    """'cuda' when a GPU is visible, else 'cpu'."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def gpu_count() -> int:
    """Visible GPUs (0 without CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def half_dtype_name() -> str:
    """The GPU's 16-bit type: 'bfloat16' where supported, else 'float16'."""
    import torch

    return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"


def inference_dtype(on: str | None = None):
    """The torch dtype to run and store models in on this device (see the module docstring)."""
    import torch

    return getattr(torch, half_dtype_name()) if (on or device()) == "cuda" else torch.float32


def training_precision() -> tuple[str, bool]:
    """(device, whether training uses bf16 autocast): the GPU's bf16 support, or the CPU's native bf16 instructions."""
    import torch

    if torch.cuda.is_available():
        return "cuda", torch.cuda.is_bf16_supported()
    return "cpu", bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def detect_device() -> tuple[str, float | None]:
    """(device name, GPU memory in GiB) of CUDA device 0, or ('cpu', None) without a GPU."""
    import torch

    if not torch.cuda.is_available():
        return "cpu", None
    props = torch.cuda.get_device_properties(0)
    return props.name, props.total_memory / 1024**3
