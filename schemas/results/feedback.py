"""What the feedback loop returns: the exported batch, dataset lineage versions, monitoring passes."""
from dataclasses import dataclass, field
from typing import Any

from loraflow.schemas.results._base import Result


@dataclass(frozen=True)
class ExportedBatch(Result):
    """A feedback batch written out: corrections as records, preference pairs, the relabelling queue, the run folder."""

    batch_id: str
    records_path: str
    relabel_path: str
    pairs_path: str
    records: int
    relabel: int
    run_dir: str
    pairs: dict[str, list] = field(default_factory=dict)  # dict: preference pair id -> the feedback ids it was built from
    feedback_ids: list = field(default_factory=list)


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
    promotion: dict[str, Any] | None  # dict: the finetune's promotion decision as its run.json holds it (None: no gate ran)
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

    champion: dict[str, Any] | None  # dict: the Champion as the monitoring webhook posts it (None: no champion yet)
    metrics: dict[str, dict[str, float]]  # dict: evaluation set (test, feedback_eval, recent) -> metric name -> value
    alerts: list[str]
    feedback: dict[str, Any] | None = None  # dict: the RecentFeedback as the webhook posts it (None: no recent feedback)
    mlflow_run_id: str | None = None
    experiment: str | None = None
    report: str | None = None
