"""Load a served model (weights, tokenizer, stop tokens) from a local folder onto a device."""
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loraflow.tasks.common.stop_tokens import stop_token_ids
from loraflow.tasks.common.device import device as current_device, inference_dtype
from loraflow.tasks.common.errors import LoraflowError

_WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin", "model.safetensors.index.json")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


@dataclass(frozen=True)
class ModelBundle:
    """One loaded model with everything generation needs; swapped as a whole on reload."""

    model: Any
    tokenizer: Any
    device: Any
    eos_ids: frozenset[int]
    pad_id: int
    max_context: int
    path: str
    source: str
    version: str | None = None
    loaded_at: float = field(default=0.0)
    answer_schema: dict | None = None  # the released task's declared answer fields (answer_schema.json beside the weights)


def _has_weights(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any(next(folder.glob(p), None) for p in _WEIGHT_PATTERNS)


def find_model_folders(root: str | Path) -> tuple[Path, Path]:
    """The folder holding config.json + weights and the one holding the tokenizer, searched shallowest first.

    Covers a plain save_pretrained folder, MLflow's transformers flavour (model/ + components/tokenizer/)
    and pyfunc artifacts (artifacts/NAME/).
    """
    root = Path(root)
    if not root.exists():
        raise LoraflowError(
            f"model path {root} does not exist: pass --model a folder saved with save_pretrained or a models:/NAME@alias URI"
        )
    candidates = sorted((p.parent for p in root.rglob("config.json")), key=lambda p: (len(p.parts), str(p)))
    model_dir = next((c for c in candidates if _has_weights(c)), None)
    if model_dir is None:
        raise LoraflowError(f"no config.json with weights (*.safetensors) under {root}: point --model at a saved model folder")
    tokenizer_dirs = [model_dir] + sorted(
        {p.parent for name in _TOKENIZER_FILES for p in root.rglob(name)}, key=lambda p: (len(p.parts), str(p))
    )
    tokenizer_dir = next((d for d in tokenizer_dirs if any((d / f).is_file() for f in _TOKENIZER_FILES)), None)
    if tokenizer_dir is None:
        raise LoraflowError(f"no tokenizer (tokenizer.json) under {root}: save the tokenizer next to the model")
    return model_dir, tokenizer_dir


def pick_device(device: str = "auto"):
    """The torch device for `auto`, `cpu` or `cuda`."""
    import torch

    if device == "auto":
        device = current_device()
    if device == "cuda" and current_device() != "cuda":
        raise LoraflowError("serve.device is cuda but no CUDA GPU is visible: set serve.device to cpu or auto")
    return torch.device(device)


def pick_dtype(device, dtype: str = "auto"):
    """The named dtype, else the device policy's (bf16, else fp16, on a GPU; fp32 on the CPU)."""
    import torch

    if dtype != "auto":
        return getattr(torch, dtype)
    return inference_dtype(device.type)


def load_bundle(
    path: str | Path, *, device: str = "auto", dtype: str = "auto", source: str | None = None, version: str | None = None
) -> ModelBundle:
    """Load weights and tokenizer from a local folder for serving (eval mode, on the chosen device)."""
    import time

    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir, tokenizer_dir = find_model_folders(path)
    torch_device = pick_device(device)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    if not getattr(tokenizer, "chat_template", None):
        raise LoraflowError(f"the tokenizer in {tokenizer_dir} has no chat template: save the model with its chat template")
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=pick_dtype(torch_device, dtype)).to(torch_device).eval()
    eos_ids = frozenset(stop_token_ids(model, tokenizer))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos_ids, default=0)
    max_context = int(getattr(model.config, "max_position_embeddings", 0) or tokenizer.model_max_length)
    from loraflow.tasks.evaluation.constrained import read_answer_schema

    return ModelBundle(
        model=model, tokenizer=tokenizer, device=torch_device, eos_ids=eos_ids, pad_id=pad_id,
        max_context=max_context, path=str(model_dir), source=source or str(path), version=version, loaded_at=time.time(),
        answer_schema=read_answer_schema(model_dir) or read_answer_schema(path),
    )
