"""Which checkpoint a retried or relaunched training task resumes from: the newest complete, finite one."""
import json
import math
import re
from pathlib import Path

from loraflow.schemas.run_folder import RunFolder

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
_WEIGHTS = ("adapter_model.safetensors", "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
            "adapter_model.bin")


def checkpoints_dir(out_dir: str | Path) -> Path:
    """Where training in the run folder `out_dir` writes its `checkpoint-N` folders."""
    return RunFolder(out_dir).train / "checkpoints"


def last_good_checkpoint(checkpoints_dir: str | Path) -> str | None:
    """Newest `checkpoint-N` that was written completely (trainer_state.json is saved last) with finite logged losses.

    A folder cut short by a kill mid-save, or one saved after the loss went NaN, is skipped, so resuming never
    crashes on a half-written checkpoint or continues from broken weights.
    """
    folder = Path(checkpoints_dir)
    if not folder.is_dir():
        return None
    found = sorted(
        ((int(m.group(1)), p) for p in folder.iterdir() if p.is_dir() and (m := _CHECKPOINT.match(p.name))),
        reverse=True,
    )
    for _, path in found:
        if _is_complete(path) and _is_finite(path):
            return str(path)
    return None


def _is_complete(path: Path) -> bool:
    return (path / "trainer_state.json").is_file() and any((path / name).is_file() for name in _WEIGHTS)


def _is_finite(path: Path) -> bool:
    try:
        state = json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    for entry in state.get("log_history", []):
        for key in ("loss", "eval_loss", "grad_norm"):
            value = entry.get(key)
            if isinstance(value, (int, float)) and not math.isfinite(value):
                return False
    return True
