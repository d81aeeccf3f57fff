"""What the data stages return: the records each stage wrote, their counts, and the files of what it took out."""
from dataclasses import dataclass, field
from typing import Any, ClassVar

from loraflow.schemas.results._base import Result


@dataclass(frozen=True)
class InputFiles(Result):
    """The input data file in force (argument, else data.path) and the folder base models are cached in."""

    input_path: str
    model_cache_dir: str


@dataclass(frozen=True)
class StreamingPlan(Result):
    """How the data stages stream: on which engine (local or dask), with how many workers, in parts of how many bytes."""

    engine: str
    workers: int
    address: str | None  # a Dask scheduler; None: the engine starts its own
    part_bytes: int


@dataclass(frozen=True)
class DataStageResult(Result):
    """One data stage's output: its records file (JSON Lines), counts, and the files of what it set aside.

    quarantine: ingest and validate; removed and review: clean; rejected_records: augment.
    """

    stage: str
    records: str
    counts: dict[str, Any]  # dict: each stage counts different things (formats, reasons, languages); the report reads them by name
    kind: str = "sft"
    quarantine: str | None = None
    removed: str | None = None
    review: str | None = None
    rejected_records: str | None = None
    streaming: StreamingPlan | None = None  # None: in memory


@dataclass(frozen=True)
class Splits(Result):
    """The leak-free train/val/test files (train may be the augmented train set) and the split's counts."""

    stage: ClassVar[str] = "split"
    train: str
    val: str | None
    test: str
    counts: dict[str, Any]  # dict: per-split sizes, frozen-test matches and leakage moves by reason, read by name in the report
    moves: str = ""
    leakage_moves_sample: list[dict[str, Any]] = field(default_factory=list)  # dict: leakage-move rows, shown as they are
    streaming: StreamingPlan | None = None

    def paths(self) -> dict[str, str]:
        """The split files by name (val left out when there is none)."""
        return {name: path for name, path in (("train", self.train), ("val", self.val), ("test", self.test)) if path}


@dataclass(frozen=True)
class DataReport(Result):
    """The data report's files, its markdown summary and the metrics logged to MLflow."""

    report_json: str
    report_html: str
    quarantine: str
    review: str
    markdown: str
    metrics: dict[str, float]  # dict: flat MLflow metric names (data.<count>, data.removed.<reason>), logged as they are


@dataclass(frozen=True)
class LengthChoice(Result):
    """One sequence length worth comparing: the share of records it keeps, its tokens against the chosen length, and
    the estimated peak GPU memory (None: an architecture the estimate does not know)."""

    length: int
    keeps_share: float
    tokens_vs_chosen: float
    peak_gpu_gib: float | None


@dataclass(frozen=True)
class TokenLengths(Result):
    """The records' token lengths as the model sees them and the sequence length they call for (model.max_length);
    `choices` compares the lengths worth considering."""

    max_length: int  # the training length in force: model.max_length, or the one chosen from the data (auto)
    source: str  # "auto" or "model.max_length"
    validation_limit: int  # records longer than this are quarantined (data.max_tokens, else max_length)
    model_limit: int
    n_measured: int
    n_records: int
    percentiles: dict[str, int]  # dict: p50 ... p99.5 and max keyed by name, the report's rows
    above_limit: int
    above_share: float
    keep_share: float
    choices: list[LengthChoice] = field(default_factory=list)


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
