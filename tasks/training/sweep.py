"""Hyper-parameter sweeps: a grid of config overrides, one run folder per trial, the best trial by validation loss."""
import itertools
import json
import math
import re
from pathlib import Path

from loraflow.schemas.run_folder import RunFolder
from loraflow.tasks.common.config_files import apply_overrides, build_config, dump_config
from loraflow.tasks.common.errors import LoraflowError

# Trials compare hyper-parameters; registering every one of them in the Model Registry would only add noise.
TRIAL_DEFAULTS = ["deploy.register_model=false"]


def parse_grid(specs: list[str]) -> dict[str, list[str]]:
    """`["train.learning_rate=1e-4,2e-4", "lora.r=8,16"]` -> {"train.learning_rate": ["1e-4", "2e-4"], "lora.r": ["8", "16"]}."""
    grid: dict[str, list[str]] = {}
    for spec in specs:
        key, sep, values = spec.partition("=")
        choices = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not key.strip() or not choices:
            raise LoraflowError(f"--grid {spec!r} is not of the form dotted.key=value1,value2 (e.g. lora.r=8,16)")
        if key.strip() in grid:
            raise LoraflowError(f"--grid names {key.strip()} twice; give all its values in one --grid")
        grid[key.strip()] = choices
    if not grid:
        raise LoraflowError("a sweep needs at least one --grid dotted.key=value1,value2")
    return grid


def expand_grid(grid: dict[str, list[str]]) -> list[list[str]]:
    """Every combination of the grid as a list of `key=value` overrides, in a stable order."""
    keys = list(grid)
    return [[f"{k}={v}" for k, v in zip(keys, values)] for values in itertools.product(*(grid[k] for k in keys))]


def trial_name(index: int, overrides: list[str]) -> str:
    """A folder-safe name such as `trial-01-learning_rate-1e-4-r-8` (last key part and value of each override)."""
    parts = []
    for override in overrides:
        key, _, value = override.partition("=")
        parts += [key.split(".")[-1], value]
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", "-".join(parts))
    return f"trial-{index:02d}-{slug}"[:100]


def trial_config(config, overrides: list[str]):
    """The pipeline config of one trial: the sweep's config with the trial's overrides applied and validated."""
    return build_config(apply_overrides(dump_config(config), [*TRIAL_DEFAULTS, *overrides]), "sweep trial " + " ".join(overrides))


def best_val_loss(run_dir: str | Path) -> float | None:
    """Lowest val loss a trial logged (DIR/train/log_history.json), None when it never evaluated."""
    path = RunFolder(run_dir).train / "log_history.json"
    if not path.is_file():
        return None
    losses = [h["eval_loss"] for h in json.loads(path.read_text()) if isinstance(h.get("eval_loss"), (int, float))]
    finite = [x for x in losses if math.isfinite(x)]
    return min(finite) if finite else None


def pick_best(trials: list[dict], metric: str = "val_loss") -> dict | None:
    """The trial with the lowest finite `metric`; None when no trial has one."""
    scored = [t for t in trials if isinstance(t.get(metric), (int, float)) and math.isfinite(t[metric])]
    return min(scored, key=lambda t: t[metric]) if scored else None


def render_summary(trials: list[dict], best: dict | None, metric: str = "val_loss") -> str:
    """Markdown table of the trials, best first marked."""
    lines = [f"| trial | overrides | {metric} | MLflow run |", "|---|---|---|---|"]
    for trial in sorted(trials, key=lambda t: (t.get(metric) is None, t.get(metric) or 0.0)):
        mark = " (best)" if best is not None and trial["name"] == best["name"] else ""
        value = "n/a" if trial.get(metric) is None else f"{trial[metric]:.4f}"
        lines.append(f"| {trial['name']}{mark} | {' '.join(trial['overrides'])} | {value} | {trial.get('mlflow_run_id', '')} |")
    return "\n".join(lines)


def write_summary(out_dir: str | Path, trials: list[dict], best: dict | None, grid: dict, metric: str = "val_loss") -> Path:
    """DIR/sweep.json: the grid, every trial and the best one."""
    path = Path(out_dir) / "sweep.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"grid": grid, "metric": metric, "best": best, "trials": trials}, indent=2))
    return path
