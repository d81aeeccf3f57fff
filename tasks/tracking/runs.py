"""MLflow tracking: one run per pipeline run, with config, task card, data lineage, live training metrics, artifacts."""
import hashlib
import json
import subprocess
import time
from pathlib import Path

from transformers import TrainerCallback

from loraflow.schemas.results import RunOutcome, TrackingRun
from loraflow.tasks.tracking.metric_names import mlflow_metric_name

# HF log keys -> the metric names shown in MLflow and TensorBoard.
TRAIN_METRIC_NAMES = {
    "loss": "train_loss", "eval_loss": "val_loss", "learning_rate": "learning_rate", "grad_norm": "grad_norm",
    "mean_token_accuracy": "train_token_accuracy", "eval_mean_token_accuracy": "val_token_accuracy",
    # preference objectives (trl's DPO and ORPO trainers log these names)
    **{f"{prefix}rewards/{key}": f"{stage}_{name}" for prefix, stage in (("", "train"), ("eval_", "val"))
       for key, name in (("chosen", "reward_chosen"), ("rejected", "reward_rejected"), ("margins", "reward_margin"),
                         ("accuracies", "preference_accuracy"))},
    # GRPO (trl's GRPOTrainer): the weighted reward, its spread, the KL to the reference, completion lengths
    **{f"{prefix}{key}": f"{stage}_{name}" for prefix, stage in (("", "train"), ("eval_", "val"))
       for key, name in (("reward", "reward"), ("reward_std", "reward_std"), ("kl", "kl"),
                         ("frac_reward_zero_std", "zero_advantage_share"), ("completions/mean_length", "completion_length"),
                         ("completions/clipped_ratio", "completion_clipped_ratio"))},
}

# End-of-training numbers -> names that say they are totals or averages over the run, not per-step values.
TRAIN_SUMMARY_NAMES = {
    "train_loss": "mean_train_loss_all_steps", "train_runtime": "trainer_seconds", "train_seconds": "wall_seconds",
    "train_samples_per_second": "samples_per_second", "train_steps_per_second": "steps_per_second",
    "epoch": "epochs_done", "global_step": "steps_done", "best_eval_loss": "best_val_loss",
}


def reward_component_metrics(logs: dict) -> dict[str, float]:
    """GRPO's reward components on their own: trl's `rewards/<name>/mean` as `train_reward.<name>` (`val_reward.<name>`)."""
    found = {}
    for key, value in logs.items():
        prefix, _, rest = key.rpartition("rewards/")
        if rest.endswith("/mean") and prefix in ("", "eval_") and isinstance(value, int | float):
            found[f"{'val' if prefix else 'train'}_reward.{rest.removesuffix('/mean')}"] = value
    return found


def train_summary_metrics(final: dict[str, float]) -> dict[str, float]:
    """The trainer's final numbers as `train_summary.*` metrics, e.g. the loss averaged over all steps."""
    return {f"train_summary.{TRAIN_SUMMARY_NAMES.get(k, k)}": v for k, v in final.items()}


def client(tracking_uri: str):
    """An MlflowClient bound to the URI (tracking and registry on the same store)."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def git_commit(cwd: str | Path = ".") -> str:
    """The current git commit (with a -dirty suffix for uncommitted changes), or 'unknown'."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (sha + ("-dirty" if dirty else "")) if sha else "unknown"


def file_digest(*paths: str | Path) -> str:
    """sha256 over the contents of the given files, in order (the dataset version's content hash)."""
    h = hashlib.sha256()
    for path in paths:
        with Path(path).open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def artifact_location(tracking_uri: str, experiment: str) -> str | None:
    """Where an embedded SQLite store keeps an experiment's artifacts: beside the database, not in ./mlruns.

    MLflow's default for a SQLite store is `./mlruns` of whatever directory the process runs in. A tracking server
    (http URI) decides for itself: None.
    """
    if not tracking_uri.startswith("sqlite:///"):
        return None
    database = Path(tracking_uri.removeprefix("sqlite:///"))
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in experiment)
    return (database.parent / "mlartifacts" / slug).resolve().as_uri()


# MLflow 3's UI opens an experiment in its GenAI view (traces, judges) unless this tag names the kind.
EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND = "mlflow.experimentKind", "custom_model_development"


def ensure_experiment(tracking_uri: str, experiment: str) -> str:
    """The id of the named experiment, created (with its artifact location) when missing, tagged as model training."""
    mlflow_client = client(tracking_uri)
    found = mlflow_client.get_experiment_by_name(experiment)
    if found:
        if EXPERIMENT_KIND_TAG not in found.tags:  # never overrides a kind a person chose in the UI
            mlflow_client.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND)
        return found.experiment_id
    return mlflow_client.create_experiment(experiment, artifact_location=artifact_location(tracking_uri, experiment),
                                           tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING_KIND})


def start_run(tracking_uri: str, experiment: str, run_name: str, params: dict[str, str], tags: dict[str, str],
              task_card: dict, config: dict) -> str:
    """Create the pipeline's MLflow run with flattened config params, tags, the task card and the config; return its id."""
    from mlflow.entities import Param, RunTag

    mlflow_client = client(tracking_uri)
    experiment_id = ensure_experiment(tracking_uri, experiment)
    run = mlflow_client.create_run(experiment_id, run_name=run_name, tags=tags)
    run_id = run.info.run_id
    items = list(params.items())
    for i in range(0, len(items), 90):  # MLflow takes at most 100 params per batch
        mlflow_client.log_batch(run_id, params=[Param(k, v) for k, v in items[i:i + 90]])
    mlflow_client.log_dict(run_id, task_card, "task_card.json")
    mlflow_client.log_dict(run_id, config, "config.json")
    mlflow_client.log_batch(run_id, tags=[RunTag("task_card.success_metric", task_card["success_criteria"][0]["metric"])])
    return run_id


def log_dataset(run: TrackingRun, split_paths: dict[str, str], name: str) -> str:
    """Log each split as an MLflow dataset input (with the content hash as digest); return the dataset version hash."""
    import pandas as pd
    import mlflow.data
    from mlflow.entities import DatasetInput, InputTag

    inputs = []
    for split, path in split_paths.items():
        frame = pd.read_json(path, lines=True) if Path(path).stat().st_size else pd.DataFrame()
        for column in ("messages", "metadata"):
            if column in frame:
                frame[column] = frame[column].map(lambda v: json.dumps(v, ensure_ascii=False))
        dataset = mlflow.data.from_pandas(frame, source=str(Path(path).resolve()), name=f"{name}-{split}",
                                          digest=file_digest(path)[:32])
        inputs.append(DatasetInput(dataset._to_mlflow_entity(), tags=[InputTag("mlflow.data.context", split)]))
    client(run.tracking_uri).log_inputs(run.run_id, datasets=inputs)
    version = file_digest(*split_paths.values())
    client(run.tracking_uri).set_tag(run.run_id, "data.hash", version)
    return version


def log_metrics(run: TrackingRun, metrics: dict[str, float], step: int | None = None) -> None:
    """Log numeric metrics under their grouped MLflow names (`train/loss`, ...); non-numeric values are skipped."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    batch = [Metric(_metric_name(mlflow_metric_name(k)), float(v), now, step or 0) for k, v in metrics.items()
             if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v]
    for i in range(0, len(batch), 900):
        client(run.tracking_uri).log_batch(run.run_id, metrics=batch[i:i + 900])


def _metric_name(name: str) -> str:
    """MLflow metric names allow letters, digits and '.', '/', '-', '_', ' '."""
    return "".join(c if c.isalnum() or c in "._-/ " else "_" for c in name)


def log_artifacts(run: TrackingRun, path: str | Path, artifact_path: str | None = None) -> None:
    """Log a file or a folder as run artifacts."""
    path = Path(path)
    if path.is_dir():
        client(run.tracking_uri).log_artifacts(run.run_id, str(path), artifact_path)
    elif path.is_file():
        client(run.tracking_uri).log_artifact(run.run_id, str(path), artifact_path)


def set_tags(run: TrackingRun, tags: dict[str, str]) -> None:
    """Set string tags on the run."""
    for key, value in tags.items():
        client(run.tracking_uri).set_tag(run.run_id, key, str(value)[:5000])


def log_headline(run: TrackingRun, outcome: RunOutcome, task_name: str) -> None:
    """The run's description (the headline per field and the gate) and the per-field scores of every model as a table."""
    from loraflow.tasks.tracking.headline import FIELD_TABLE, field_table, run_description

    client(run.tracking_uri).set_tag(run.run_id, "mlflow.note.content", run_description(outcome, task_name))
    table = field_table(outcome)
    if table["field"]:
        client(run.tracking_uri).log_table(run.run_id, table, FIELD_TABLE)


def finish_run(run: TrackingRun, status: str = "FINISHED") -> None:
    """Mark the run FINISHED or FAILED."""
    client(run.tracking_uri).set_terminated(run.run_id, status=status)


def run_status(tracking_uri: str, run_id: str) -> str | None:
    """The run's MLflow status (RUNNING, FINISHED, FAILED, KILLED), or None when the store does not know the run."""
    from mlflow.exceptions import MlflowException

    try:
        return client(tracking_uri).get_run(run_id).info.status
    except MlflowException:
        return None


def end_unfinished_run(tracking_uri: str, run_id: str, status: str, reason: str) -> bool:
    """Mark a still-RUNNING run FAILED or KILLED with the reason as a tag; True when it was still running.

    A run that already ended keeps its status, so this is safe to call from every failure path and twice.
    """
    if run_status(tracking_uri, run_id) != "RUNNING":
        return False
    client(tracking_uri).set_tag(run_id, "loraflow.end_reason", reason[:5000])
    client(tracking_uri).set_terminated(run_id, status=status)
    return True


def close_previous_run(previous: dict) -> str | None:
    """The MLflow run a rerun in the same folder continues (from the old run.json), ended as KILLED if still RUNNING.

    Only `kill -9` (or a lost machine) leaves a run RUNNING after its process is gone; every other failure path ends it.
    Returns the previous run's id when that run did not finish (the new run continues it), else None.
    """
    run_id, uri = previous.get("mlflow_run_id"), previous.get("mlflow_tracking_uri")
    if not run_id or not uri:
        return None
    end_unfinished_run(uri, run_id, "KILLED", "still RUNNING when the next run started in the same folder: its process was killed")
    return run_id if run_status(uri, run_id) in ("FAILED", "KILLED") else None


class MlflowMetricsCallback(TrainerCallback):
    """Logs train loss, learning rate, grad norm, tokens/s, GPU memory and val loss live to the MLflow run."""

    def __init__(self, run: TrackingRun, prefix: str = ""):
        self.run, self.prefix = run, prefix
        self._last_time: float | None = None
        self._last_tokens = 0

    def for_phase(self, phase: str) -> "MlflowMetricsCallback":
        """A callback for one phase of a multi-phase training (sft_then_dpo): its metrics as `<phase>/<name>`.

        Every phase's trainer counts its steps from 0, so under the same names the phases' points would collide.
        """
        return MlflowMetricsCallback(self.run, f"{self.prefix}{phase}/")

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        metrics = {TRAIN_METRIC_NAMES[k]: v for k, v in logs.items() if k in TRAIN_METRIC_NAMES}
        metrics.update(reward_component_metrics(logs))
        tokens = state.num_input_tokens_seen or int(logs.get("num_tokens", 0) or 0)
        now = time.perf_counter()
        if "loss" in logs and self._last_time is not None and tokens > self._last_tokens:
            metrics["tokens_per_second"] = (tokens - self._last_tokens) / max(now - self._last_time, 1e-9)
        if "loss" in logs:
            self._last_time, self._last_tokens = now, tokens
            metrics.update(_gpu_memory())
        if "epoch" in logs:
            metrics["epoch"] = logs["epoch"]
        if metrics:
            log_metrics(self.run, {self.prefix + k: v for k, v in metrics.items()}, step=state.global_step)


def _gpu_memory() -> dict[str, float]:
    import torch

    if not torch.cuda.is_available():
        return {}
    return {"gpu_memory_allocated_gib": torch.cuda.memory_allocated() / 2**30,
            "gpu_memory_peak_gib": torch.cuda.max_memory_allocated() / 2**30}
