"""Prefect wrapper for training: never cached (it has side effects and is the expensive step); live progress."""
import time

from prefect import get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from transformers import TrainerCallback

from schemas.config import LoraConfig, TrainConfig
from tasks import tracking


class PrefectProgressCallback(TrainerCallback):
    """Shows step, epoch and ETA in the flow log and as a Prefect progress artifact."""

    def __init__(self):
        self.artifact_id = None
        self.started = time.perf_counter()

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.perf_counter()
        self.artifact_id = create_progress_artifact(progress=0.0, key="training-progress", description="Training steps done (%)")

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.max_steps or "loss" not in (logs or {}):
            return
        done = state.global_step / state.max_steps
        elapsed = time.perf_counter() - self.started
        eta = elapsed / done * (1 - done) if done else float("nan")
        get_run_logger().info("train step %d/%d epoch %.2f loss %.4f ETA %.0fs", state.global_step, state.max_steps,
                              state.epoch or 0.0, logs["loss"], eta)
        if self.artifact_id:
            update_progress_artifact(self.artifact_id, progress=100.0 * done)


@task(name="train", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=5)
def train(model_path: str, splits: dict, lora: LoraConfig, config: TrainConfig, max_length: int, out_dir: str,
          run: dict) -> dict:
    """Fine-tune; a retry resumes from the last checkpoint. Metrics stream live to MLflow and TensorBoard."""
    from tasks.train import train_model

    get_run_logger().info("stage: train (%s, lr %g, effective batch %d)", config.method, config.resolved_learning_rate,
                          config.effective_batch_size)
    callbacks = [tracking.MlflowMetricsCallback(run["tracking_uri"], run["run_id"]), PrefectProgressCallback()]
    result = train_model(model_path, splits["train"], splits.get("val"), lora, config, max_length, out_dir, callbacks)
    tracking.log_metrics(run["tracking_uri"], run["run_id"], {f"train.{k}": v for k, v in result["metrics"].items()})
    tracking.log_artifacts(run["tracking_uri"], run["run_id"], result["log_history"], "train")
    tracking.log_artifacts(run["tracking_uri"], run["run_id"], result["tensorboard_dir"], "train/tensorboard")
    if result["adapter_path"]:
        tracking.log_artifacts(run["tracking_uri"], run["run_id"], result["adapter_path"], "adapter")
    return result
