"""What training returns: where the model is, how the run went (speed options, packing, memory), and the sweep's trials."""
from dataclasses import dataclass

from pydantic import Field

from loraflow.schemas.results._base import Result, ResultModel


@dataclass(frozen=True)
class SpeedPlan(Result):
    """The speed options in force for one training run, resolved from TrainConfig and the device
    (tasks/training/speed.py)."""

    compile_layers: bool
    packing: bool
    liger: bool
    attn_implementation: str
    pad_to_multiple_of: int | None
    optimizer: str = "adamw_torch"
    unchecked_layers: int = 0
    offload_activations: bool = False


@dataclass(frozen=True)
class PackPlan(Result):
    """How examples are packed: rows of at most `row_tokens` tokens, `micro_batches` rows per optimizer step (all GPUs)
    (tasks/planning/estimate_packing.py)."""

    row_tokens: int
    micro_batches: int
    examples_per_row: float
    mean_tokens: float


@dataclass(frozen=True)
class OomFallback(Result):
    """One CUDA out-of-memory retry: the micro-batch it ran out at, the halved one and its accumulation, the error."""

    from_micro_batch: int
    micro_batch: int
    accumulation: int
    error: str


@dataclass(frozen=True)
class RankMemory(Result):
    """One rank's CUDA memory (GiB): the loading peak, what the prepared model holds, and the training peak."""

    load_peak_gib: float
    prepared_gib: float
    train_peak_gib: float | None = None


@dataclass(frozen=True)
class TrainingPhase(Result):
    """The files of one phase of a multi-phase objective (sft_then_dpo's supervised phase)."""

    adapter_path: str | None
    log_history: str
    tensorboard_dir: str


class TrainingResult(ResultModel):
    """A finished training run: the model (and adapter) folders, its metrics, diagnosis and speed.

    A pydantic model: a multi-GPU run comes back from its rank-0 worker as JSON and is read by this same type.
    """

    model_path: str
    adapter_path: str | None
    method: str
    objective: str
    log_history: str
    tensorboard_dir: str
    metrics: dict[str, int | float]  # dict: the trainer's final numbers by name (train_loss, eval_loss, ...), logged as they are
    diagnosis: list[dict]  # dict: findings {code, severity, step, message, data} as diagnosis.json holds them
    diagnosis_md: str
    best_checkpoint: str | None = None
    resumed_from: str | None = None
    stopped_on_non_finite: int | None = None
    oom_fallbacks: list[OomFallback] = Field(default_factory=list)
    micro_batch_size: int | None = None
    speed: SpeedPlan | None = None
    packing: PackPlan | None = None  # None: packing off
    world_size: int = 1
    base_model_path: str | None = None
    distributed: str | None = None  # ddp or fsdp when several GPUs trained
    gpu_memory_per_rank: list[RankMemory] = Field(default_factory=list)  # empty without CUDA
    sft_phase: TrainingPhase | None = None  # sft_then_dpo / sft_then_grpo: the supervised phase


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
