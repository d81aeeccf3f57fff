"""The run folder's layout: where every stage writes, the one place its paths are spelled (scripts rely on them too).

    run.json        the index: MLflow run, outcome, model paths     estimate.json  the resource estimate
    data/           splits (train/val/test.jsonl), report, quarantine; data/stages/ each stage's own output
    train/          log history, TensorBoard, diagnosis, checkpoints/, launch/ (multi-GPU spec and result)
    eval/           predictions, metrics, badcases, promotion.json, report.html
    model/          adapter/ or the full model, merged/, quantised variants
"""
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunFolder:
    """The folders and index files of one run folder."""

    root: Path

    def __init__(self, root: str | Path):
        object.__setattr__(self, "root", Path(root))

    @property
    def run_json(self) -> Path:
        return self.root / "run.json"

    @property
    def estimate_json(self) -> Path:
        return self.root / "estimate.json"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def stages(self) -> Path:
        return self.root / "data" / "stages"

    @property
    def train(self) -> Path:
        return self.root / "train"

    @property
    def eval(self) -> Path:
        return self.root / "eval"

    @property
    def model(self) -> Path:
        return self.root / "model"

    @property
    def adapter(self) -> Path:
        return self.root / "model" / "adapter"

    @property
    def merged(self) -> Path:
        return self.root / "model" / "merged"
