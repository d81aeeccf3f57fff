"""What training returns: where the model is, how the run went, and the sweep's trials."""
from dataclasses import dataclass, field
from typing import Any

from loraflow.schemas.results._base import Result


@dataclass(frozen=True)
class TrainingResult(Result):
    """A finished training run: the model (and adapter) folders, its metrics, diagnosis and speed."""

    model_path: str
    adapter_path: str | None
    method: str
    objective: str
    log_history: str
    tensorboard_dir: str
    metrics: dict[str, float]  # dict: the trainer's final numbers by name (train_loss, eval_loss, ...), logged as they are
    diagnosis: list[dict[str, Any]]  # dict: findings {check, severity, step, message, ...} as diagnosis.json holds them
    diagnosis_md: str
    best_checkpoint: str | None = None
    resumed_from: str | None = None
    stopped_on_non_finite: int | None = None
    oom_fallbacks: list[str] = field(default_factory=list)
    micro_batch_size: int | None = None
    speed: dict[str, Any] = field(default_factory=dict)  # dict: SpeedOptions.to_dict(), the speed options in force as run.json records them
    world_size: int = 1
    base_model_path: str | None = None
    distributed: str | None = None  # ddp or fsdp when several GPUs trained
    gpu_memory_per_rank: list[dict[str, Any]] | dict[str, Any] | None = None  # dict: each rank's memory numbers by name
    sft_phase: dict[str, Any] | None = None  # dict: sft_then_dpo's supervised phase: its files by name


@dataclass(frozen=True)
class TrialMetric(Result):
    """A trial's success metric: its name (the task card's) and the candidate's value (None: not evaluated)."""

    name: str | None
    value: float | None


@dataclass(frozen=True)
class SweepTrial(Result):
    """One trial of a sweep: its overrides and run folder, then (once run) its MLflow run, val loss or error."""

    name: str
    overrides: list[str]
    out_dir: str
    mlflow_run_id: str | None = None
    val_loss: float | None = None
    success_metric: TrialMetric | None = None
    error: str | None = None


@dataclass(frozen=True)
class SweepRun(Result):
    """The sweep's parent MLflow run and its planned trials."""

    tracking_uri: str
    run_id: str
    experiment: str
    trials: list[SweepTrial]


@dataclass(frozen=True)
class SweepResult(Result):
    """The finished sweep: the best trial by val loss (None if none logged one), every trial, the summary file."""

    parent_run_id: str
    tracking_uri: str
    best: SweepTrial | None
    trials: list[SweepTrial]
    summary: str
