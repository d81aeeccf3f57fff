"""The MLflow run a pipeline run is tracked in: the one handle every step logs through."""
from dataclasses import dataclass

from loraflow.schemas.results._base import Result


@dataclass(frozen=True)
class TrackingRun(Result):
    """An open MLflow run: where (tracking URI), which run, and its experiment."""

    tracking_uri: str
    run_id: str
    experiment: str = ""
    experiment_id: str = ""


@dataclass(frozen=True)
class FinishedRun(Result):
    """A finished pipeline run: its run.json file and what that file holds (the outcome, the model paths, the MLflow run)."""

    run_json: str
    index: dict
