"""What the data stages return: the records each stage wrote, their counts, and the files of what it took out."""
from dataclasses import dataclass, field
from typing import Any

from loraflow.schemas.results._base import Result


@dataclass(frozen=True)
class InputFiles(Result):
    """The input data file in force (argument, else data.path) and the folder base models are cached in."""

    input_path: str
    model_cache_dir: str


@dataclass(frozen=True)
class DataStageResult(Result):
    """One data stage's output: its records file (JSON Lines), counts, and files of what it set aside.

    `files` names the stage's other outputs by role: quarantine (ingest, validate), removed and review (clean),
    rejected_records (augment).
    """

    stage: str
    records: str
    counts: dict[str, Any]
    files: dict[str, str] = field(default_factory=dict)
    kind: str = "sft"
    streaming: dict[str, Any] | None = None  # the streamed path's plan (engine, workers, ...); None: in memory

    @classmethod
    def from_stage(cls, data: dict[str, Any]) -> "DataStageResult":
        """From a stage function's dict: every other str value is a file of the stage."""
        fixed = {"stage", "records", "counts", "kind", "streaming"}
        files = {k: v for k, v in data.items() if k not in fixed and isinstance(v, str)}
        return cls(stage=data["stage"], records=data["records"], counts=data["counts"], files=files,
                   kind=data.get("kind", "sft"), streaming=data.get("streaming"))

    def to_stage(self) -> dict[str, Any]:
        """The stage function's dict again (what the next stage and the data report read)."""
        return {"stage": self.stage, "records": self.records, "counts": self.counts, "kind": self.kind,
                "streaming": self.streaming, **self.files}


@dataclass(frozen=True)
class Splits(Result):
    """The leak-free train/val/test files (train may be the augmented train set) and the split's counts."""

    train: str
    val: str | None
    test: str
    counts: dict[str, Any]
    moves: str = ""
    leakage_moves_sample: list = field(default_factory=list)
    streaming: dict[str, Any] | None = None

    def paths(self) -> dict[str, str]:
        """The split files by name (val left out when there is none)."""
        return {name: path for name, path in (("train", self.train), ("val", self.val), ("test", self.test)) if path}

    def to_stage(self) -> dict[str, Any]:
        """The split function's dict again (what the data report reads)."""
        return {"stage": "split", **self.to_dict()}


@dataclass(frozen=True)
class DataReport(Result):
    """The data report's files, its markdown summary and the metrics logged to MLflow."""

    report_json: str
    report_html: str
    quarantine: str
    review: str
    markdown: str
    metrics: dict[str, float]


@dataclass(frozen=True)
class TokenLengths(Result):
    """The records' token lengths as the model sees them and the sequence length they call for (model.max_length).

    `choices` compares the lengths worth considering: {length, keeps_share, tokens_vs_chosen, peak_gpu_gib}.
    """

    max_length: int  # the training length in force: model.max_length, or the one chosen from the data (auto)
    source: str  # "auto" or "model.max_length"
    validation_limit: int  # records longer than this are quarantined (data.max_tokens, else max_length)
    model_limit: int
    n_measured: int
    n_records: int
    percentiles: dict[str, int]  # p50 ... p99.5 and max, keyed by name (a mapping by design: the report's rows)
    above_limit: int
    above_share: float
    keep_share: float
    choices: list[dict[str, Any]] = field(default_factory=list)  # rows of the cost table, printed as they are


@dataclass(frozen=True)
class PreparedData(Result):
    """What the data flow hands to training: the splits (train augmented), the report, the base model folder and the
    sequence length the data calls for."""

    splits: Splits
    report: DataReport
    base_model: str
    lengths: TokenLengths | None = None

    @property
    def max_length(self) -> int:
        """The training sequence length in force (from the token-length plan)."""
        if self.lengths is None:
            raise ValueError("the data flow measured no token lengths")
        return self.lengths.max_length
