"""The MLflow run a pipeline run is tracked in: the one handle every step logs through, and what a finished run says."""
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from loraflow.schemas.results._base import Result, ResultModel
from loraflow.schemas.results.deploy import RegisteredModel
from loraflow.schemas.results.evaluation import CriterionOutcome, PromotionDecision


@dataclass(frozen=True)
class TrackingRun(Result):
    """An open MLflow run: where (tracking URI), which run, and its experiment."""

    tracking_uri: str
    run_id: str
    experiment: str = ""
    experiment_id: str = ""


class RunOutcome(ResultModel):
    """What came of a pipeline run (run.json's `outcome`): the success metric for candidate and base, the task card's
    criteria, each answer field per model, the gate's decision and the registered version."""

    success_metric: str | None = None
    base: float | None = None
    candidate: float | None = None
    criteria_met: bool = False
    criteria: list[CriterionOutcome] = Field(default_factory=list)
    fields: list[dict[str, str | float]] = Field(default_factory=list)  # dict: rows {field, stat, <label>: value}, a column per model
    promotion: PromotionDecision | None = None
    registered_model: RegisteredModel | None = None


@dataclass(frozen=True)
class FinishedRun(Result):
    """A finished pipeline run: its run.json file, the outcome, and everything the file holds (model paths, MLflow run)."""

    run_json: str
    outcome: RunOutcome
    index: dict[str, Any]  # dict: run.json as written, which several steps add keys to (run ids, paths); the flow returns it
