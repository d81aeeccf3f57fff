"""What the feedback loop returns: the exported batch, dataset lineage versions, monitoring passes."""
from dataclasses import dataclass, field
from typing import Any

from loraflow.schemas.results._base import Result
from loraflow.schemas.results.deploy import Champion
from loraflow.schemas.results.evaluation import PromotionDecision


@dataclass(frozen=True)
class ExportedBatch(Result):
    """A feedback batch written out: corrections as records, preference pairs, the relabelling queue, and (for a
    retrain) the run folder that trains on it."""

    batch_id: str | None  # None: nothing was pending, the files are empty
    records_path: str
    relabel_path: str
    pairs_path: str
    records: int
    relabel: int
    pairs: dict[str, dict[str, str]] = field(default_factory=dict)  # dict: pair id -> {chosen, rejected}: its feedback ids
    feedback_ids: list[str] = field(default_factory=list)
    run_dir: str | None = None  # the retrain's run folder (the export-feedback step sets it); None: a bare export


@dataclass(frozen=True)
class LineageVersion(Result):
    """A dataset lineage version: its number and folder, and its manifest (parent, counts, feedback ids, source).

    A prepared version (not yet committed) also names the data stages' input file and the frozen test set it keeps.
    """

    version: int
    dir: str
    manifest: dict[str, Any]  # dict: the version's manifest.json as stored (parent, counts, feedback ids, source)
    input_path: str = ""
    frozen_test: str = ""

    @classmethod
    def from_manifest(cls, data: dict[str, Any]) -> "LineageVersion":
        return cls(version=data["version"], dir=data["dir"], manifest=data, input_path=data.get("input_path", ""),
                   frozen_test=data.get("frozen_test", ""))

    @property
    def feedback_ids(self) -> dict[str, list]:
        return self.manifest.get("feedback_ids", {})


@dataclass(frozen=True)
class FeedbackRecorded(Result):
    """Where the feedback ids a model trained on were recorded (MLflow run, model version) and the gate's verdict."""

    run_id: str
    artifact_uri: str
    model_name: str | None
    model_version: str | None
    lineage_version: int
    promotion: PromotionDecision | None  # None: no gate ran
    decision: str


@dataclass(frozen=True)
class EvaluationSets(Result):
    """The monitored sets: the frozen test set and the lineage's held-out feedback-eval set (None if empty)."""

    test: str
    feedback_eval: str | None
    lineage_version: int | None


@dataclass(frozen=True)
class RecentFeedback(Result):
    """The last days' corrections as an evaluation set, and the share of badcases among recent feedback."""

    path: str
    corrections: int
    feedback: int
    badcases: int
    badcase_share: float | None


@dataclass(frozen=True)
class MonitorSummary(Result):
    """One monitoring pass: the champion's metrics per set, recent feedback, alerts, and where it was logged."""

    champion: Champion
    metrics: dict[str, dict[str, float]]  # dict: evaluation set (test, feedback_eval, recent) -> metric name -> value
    alerts: list[str]
    feedback: RecentFeedback | None = None  # None: no recent feedback gathered
    mlflow_run_id: str | None = None
    experiment: str | None = None
    report: str | None = None
