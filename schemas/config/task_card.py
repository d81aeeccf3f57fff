"""The task card: what the fine-tuned model must do and how success is judged."""
from typing import Literal

from pydantic import Field

from loraflow.schemas.config._base import Section

_EPS = 1e-9  # float noise must not flip a score equal to the threshold into a miss


class SuccessCriterion(Section):
    metric: str = Field(
        description="Metric name as reported by evaluation: json_field_score (mean over answer fields of macro-F1 / exact "
        "match), field.<name>.<accuracy|macro_f1|exact_match|normalized_match>, json_valid, rougeL, bleu, exact_match, ..."
    )
    threshold: float = Field(description="Value the fine-tuned model must reach on the test split.")
    higher_is_better: bool = Field(True, description="False for metrics where lower is better (e.g. loss).")
    why: str = Field("", description="What the task needs this threshold for (e.g. 'a misrouted ticket costs a day'): "
                     "thresholds state the task's need, not a value just under what a run reached.")

    def met(self, value: float | None) -> bool:
        """Whether a score meets the threshold: the one rule evaluation, the promotion gate and monitoring share.

        A missing score is not met; float noise within 1e-9 of the threshold is (a tie must not read as a miss).
        """
        if value is None:
            return False
        return value >= self.threshold - _EPS if self.higher_is_better else value <= self.threshold + _EPS


class TaskExample(Section):
    input: str = Field(description="A representative user input.")
    output: str = Field(description="The output the model should give for it.")


class TaskCard(Section):
    name: str = Field("my-task", description="Short task name; also the default MLflow experiment and registered model name.")
    description: str = Field("", description="One paragraph: what the model does and for whom.")
    input: str = Field("", description="What an input looks like (format, language, length).")
    output: str = Field("", description="What the expected output looks like (format, fields, tone).")
    success_criteria: list[SuccessCriterion] = Field(
        default_factory=lambda: [SuccessCriterion(metric="rougeL", threshold=0.3)],
        description="Metric thresholds the candidate must meet; the first one is the task's success metric.",
    )
    fields: dict[str, list[str] | Literal["text"]] = Field(
        default_factory=dict, description="For JSON answers: each answer field with its allowed values (a categorical "
        "field, scored per class with macro-F1 and a confusion matrix) or `text` (a free field, scored by exact and "
        "normalised match). Empty: inferred from the test references (a small closed set of repeated values is categorical).")
    rubric: list[str] = Field(
        default_factory=list, description="Human-evaluation dimensions raters score, each a known name (accuracy, "
        "relevance, fluency, completeness, safety, field_accuracy, format, no_invention) or name=question; empty: "
        "the field rubric for JSON answers, else the general five.")
    edge_cases: list[str] = Field(default_factory=list, description="Inputs that must be handled well (empty fields, mixed language, ...).")
    examples: list[TaskExample] = Field(default_factory=list, description="A few input/output examples that define the task.")
    languages: list[Literal["en", "zh"]] = Field(
        default_factory=lambda: ["en", "zh"], description="Languages the task is in; records in other languages are filtered."
    )
    intended_use: Literal["research", "internal", "commercial"] = Field(
        "internal", description="How the model will be used; checked against the base model's licence."
    )

    @property
    def success_metric(self) -> SuccessCriterion:
        """The first success criterion: the one metric that decides promotion."""
        return self.success_criteria[0]
