"""What evaluation returns: one model's scores, the comparison and the promotion gate's decision."""
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import Field

from loraflow.schemas.results._base import Result, ResultModel


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
class PreferenceAccuracy(Result):
    """Held-out preference accuracy per model (how often it scores chosen above rejected) on n test pairs."""

    n: int
    accuracy: dict[str, float]  # dict: model label -> accuracy, for the labels that were scored on the pairs
    mlflow_metrics: dict[str, float] = field(default_factory=dict)  # dict: flat MLflow metric names, logged as they are


@dataclass(frozen=True)
class BadcaseSummary(Result):
    """The worst test cases tagged with a probable cause (eval/badcases.jsonl): how many, per cause and per category."""

    path: str
    n: int
    counts: dict[str, int]  # dict: probable cause -> cases, most frequent first
    category_counts: dict[str, int]  # dict: cause category (data, prompt_format, capability) -> cases


@dataclass(frozen=True)
class EvaluationTarget(Result):
    """A model to evaluate resolved to folders, and the test set it is scored on."""

    model_path: str
    adapter_path: str | None
    run_dir: str | None
    test_path: str


@dataclass(frozen=True)
class JudgeSummary(Result):
    """An LLM judge's pass over the candidate's answers: scores per rubric dimension and agreement with human raters."""

    rubric_version: str
    model: str
    base_url: str
    n_cases: int
    n_scored: int
    n_failed: int
    dimensions: dict[str, Any]  # dict: rubric dimension (the rubric's own names) -> its stats {mean, ci_low, ci_high, ...}
    agreement: dict[str, Any] = field(default_factory=dict)  # dict: rubric dimension -> agreement with human raters
    mlflow_run_id: str | None = None


Number = int | float  # a metric value: counts (n, support) stay int in metrics.json, scores are float


def _absent(value: object) -> bool:
    return value is None


class ClassScores(ResultModel):
    """One class of a categorical answer field: precision, recall, F1, how often it is the reference and the answer."""

    precision: float
    recall: float
    f1: float
    support: int
    predicted: int


class Confusion(ResultModel):
    """The confusion matrix of a categorical field: rows are reference values, columns answers (classes, then extras)."""

    labels: list[str]
    classes: int
    matrix: list[list[int]]


class CategoricalScores(ResultModel):
    """A categorical answer field's scores: accuracy, macro-F1 over the reference's classes, per class, distributions."""

    kind: Literal["categorical"] = "categorical"
    n: int
    accuracy: float
    macro_f1: float
    per_class: dict[str, ClassScores] = Field(default_factory=dict)  # dict: keyed by class value (the task's own labels)
    confusion: Confusion | None = None
    predicted_distribution: dict[str, int] = Field(default_factory=dict)  # dict: answers counted by value
    reference_distribution: dict[str, int] = Field(default_factory=dict)  # dict: references counted by value
    top_predicted: str = ""
    top_predicted_share: float = 0.0
    top_reference: str = ""
    top_reference_share: float = 0.0


class TextScores(ResultModel):
    """A free-text answer field's scores: exact match and match ignoring punctuation and spaces."""

    kind: Literal["text"] = "text"
    n: int
    exact_match: float
    normalized_match: float


FieldScores = Annotated[CategoricalScores | TextScores, Field(discriminator="kind")]


class ModelEvaluation(ResultModel):
    """One model (or trivial baseline) on the test set: predictions file and metrics overall, per slice, per field."""

    label: str
    predictions: str
    metrics: dict[str, Number]  # dict: metric name -> value; the names follow the task (rougeL, field.<name>.<stat>, n)
    by_language: dict[str, dict[str, Number]] = Field(default_factory=dict)  # dict: language -> metrics as above
    by_slice: dict[str, dict[str, dict[str, Number]]] = Field(default_factory=dict)  # dict: slice_by field -> value -> metrics
    fields: dict[str, FieldScores] = Field(default_factory=dict)  # dict: answer field name (the task card's) -> its scores


class Comparison(ResultModel):
    """A paired bootstrap of candidate minus another model on the same test cases: the difference and its CI."""

    diff: float
    ci_low: float
    ci_high: float
    confidence: float = 0.95
    p_value: float
    n: int
    samples: int = 0
    metric: str | None = Field(None, exclude_if=_absent)
    candidate_mean: float | None = Field(None, exclude_if=_absent)
    other_mean: float | None = Field(None, exclude_if=_absent)


class FieldCheck(ResultModel):
    """A categorical field's gate inputs: the candidate's scores, its collapse check, and its comparisons with the
    majority-class and classical predictors (absent when that predictor was not scored)."""

    macro_f1: float
    accuracy: float
    top_predicted: str
    top_predicted_share: float
    top_reference: str
    top_reference_share: float
    collapse_limit: float
    collapsed: bool
    vs_majority: Comparison | None = Field(None, exclude_if=_absent)
    majority_macro_f1: float | None = Field(None, exclude_if=_absent)
    majority_accuracy: float | None = Field(None, exclude_if=_absent)
    vs_classical: Comparison | None = Field(None, exclude_if=_absent)
    classical_macro_f1: float | None = Field(None, exclude_if=_absent)
    classical_accuracy: float | None = Field(None, exclude_if=_absent)


class Criterion(ResultModel):
    """A task-card threshold as the summary records it."""

    metric: str
    threshold: float
    higher_is_better: bool = True


class CriterionOutcome(Criterion):
    """A task-card criterion with the candidate's value and whether it is met (SuccessCriterion.met)."""

    value: float | None
    met: bool


class SliceDelta(ResultModel):
    """The success metric on one slice (a language or a slice_by value) for candidate and reference model."""

    field: str
    value: str
    n: int | None
    candidate: float
    reference: float
    delta: float


class Slices(ResultModel):
    """Per-slice deltas against the reference model (champion, else base; None: no reference evaluated)."""

    reference: str | None = None
    rows: list[SliceDelta] = Field(default_factory=list)


class SummaryPaths(ResultModel):
    """Where the summary and the candidate's predictions were written."""

    metrics: str
    predictions: str


class RewardScores(ResultModel):
    """One model's held-out GRPO reward: the weighted mean and each component's mean (None: never applied)."""

    n: int
    mean_reward: float
    components: dict[str, float | None]  # dict: reward function name (the run's own) -> mean
    weights: dict[str, float]  # dict: reward function name -> weight


class HeldOutRewards(ResultModel):
    """The training rewards on each model's test answers (a GRPO run), and their MLflow metrics."""

    labels: dict[str, RewardScores]  # dict: model label (candidate, base, champion) -> its rewards
    mlflow_metrics: dict[str, float]  # dict: flat MLflow metric names, logged as they are


class EvaluationSummary(ResultModel):
    """Every model compared with the candidate on the frozen test set: what eval/metrics.json holds and the gate reads.

    preference and reward join it for preference and GRPO runs after metrics.json is written; they are not in the file.
    """

    success_metric: Criterion
    labels: dict[str, ModelEvaluation]  # dict: model label (candidate, base, champion, majority, ...) -> its scores
    comparisons: dict[str, Comparison] = Field(default_factory=dict)  # dict: the other model's label -> candidate vs it
    criteria: list[CriterionOutcome] = Field(default_factory=list)
    criteria_met: bool = False
    field_checks: dict[str, FieldCheck] = Field(default_factory=dict)  # dict: categorical answer field name -> its checks
    slices: Slices = Field(default_factory=Slices)
    paths: SummaryPaths | None = None
    rubric: list[str] = Field(default_factory=list)
    mlflow_metrics: dict[str, float] = Field(default_factory=dict)  # dict: flat MLflow metric names, logged as they are
    safety: dict[str, float] = Field(default_factory=dict, exclude_if=lambda v: not v)  # dict: model label -> safety score
    preference: PreferenceAccuracy | None = Field(None, exclude_if=_absent)
    reward: HeldOutRewards | None = Field(None, exclude_if=_absent)

    @property
    def candidate(self) -> ModelEvaluation:
        """The candidate's scores (every summary has them)."""
        return self.labels["candidate"]


class EvaluationVerdict(ModelEvaluation):
    """One model's evaluation with the task card's verdict: whether it meets the threshold, the alerts, the summary file."""

    criteria_met: bool = False
    alerts: list[str] = Field(default_factory=list)
    summary_path: str = ""


@dataclass(frozen=True)
class GateResult(Result):
    """The comparison of every model with the gate's decision and the badcase analysis."""

    summary_path: str
    summary: EvaluationSummary
    decision: PromotionDecision
    badcases: BadcaseSummary
