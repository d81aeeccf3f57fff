"""What evaluation returns: one model's scores, the comparison and the promotion gate's decision."""
from dataclasses import dataclass, field
from typing import Any

from loraflow.schemas.results._base import Result


@dataclass(frozen=True)
class ModelEvaluation(Result):
    """One model (or trivial baseline) on the test set: predictions file and metrics overall, per slice, per field."""

    label: str
    predictions: str
    metrics: dict[str, float]
    by_language: dict[str, Any] = field(default_factory=dict)
    by_slice: dict[str, Any] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PromotionDecision(Result):
    """Whether the candidate replaces the champion, and one reason per check ('pass: ...', 'fail: ...', 'skip: ...', or
    'warn: ...' for a shortfall that does not block, e.g. not beating the classical baseline under eval.beat_classical=warn)."""

    promote: bool
    reasons: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[str]:
        """Only the reasons that blocked promotion."""
        return [r for r in self.reasons if r.startswith("fail:")]

    @property
    def warnings(self) -> list[str]:
        """The reasons that did not block promotion but the user should read first."""
        return [r for r in self.reasons if r.startswith("warn:")]


@dataclass(frozen=True)
class GateResult(Result):
    """The comparison of every model with the gate's decision and the badcase analysis."""

    summary_path: str
    summary: dict[str, Any]
    decision: PromotionDecision
    badcases: dict[str, Any]


@dataclass(frozen=True)
class PreferenceAccuracy(Result):
    """Held-out preference accuracy per model (how often it scores chosen above rejected) on n test pairs."""

    n: int
    accuracy: dict[str, float]
    mlflow_metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class EvaluationTarget(Result):
    """A model to evaluate resolved to folders, and the test set it is scored on."""

    model_path: str
    adapter_path: str | None
    run_dir: str | None
    test_path: str


@dataclass(frozen=True)
class EvaluationVerdict(ModelEvaluation):
    """One model's evaluation with the task card's verdict: whether it meets the threshold, the alerts, the summary file."""

    criteria_met: bool = False
    alerts: list[str] = field(default_factory=list)
    summary_path: str = ""


@dataclass(frozen=True)
class JudgeSummary(Result):
    """An LLM judge's pass over the candidate's answers: scores per rubric dimension and agreement with human raters."""

    rubric_version: str
    model: str
    base_url: str
    n_cases: int
    n_scored: int
    n_failed: int
    dimensions: dict[str, Any]
    agreement: dict[str, Any] = field(default_factory=dict)
    mlflow_run_id: str | None = None
