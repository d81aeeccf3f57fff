"""Prefect wrapper for training: never cached (it has side effects and is the expensive step); live progress."""
import time

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from transformers import TrainerCallback

from schemas.config import LoraConfig, TrainConfig
from tasks.steps import not_user_error
from tasks import tracking
from tasks.diagnosis import Finding
from tasks.resume import checkpoints_dir, last_good_checkpoint
from tasks.steps.tracking import write_run_json


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

    def on_train_end(self, args, state, control, **kwargs):
        # Logging happens every N steps, so the last update can be short of the end (early stopping ends it too).
        if self.artifact_id:
            update_progress_artifact(self.artifact_id, progress=100.0)


@task(name="train", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=5, retry_condition_fn=not_user_error)
def train(model_path: str, splits: dict, lora: LoraConfig, config: TrainConfig, max_length: int, out_dir: str,
          run: dict) -> dict:
    """Fine-tune; a retry resumes from the last checkpoint. Metrics stream live to MLflow and TensorBoard."""
    from tasks.train import train_model

    get_run_logger().info("stage: train (%s, lr %g, effective batch %d)", config.method, config.resolved_learning_rate,
                          config.effective_batch_size)
    from tasks.diagnosis import diagnosis_tags, render_diagnosis_markdown
    from tasks.errors import LoraflowError

    logger = get_run_logger()

    def on_finding(finding) -> None:
        logger.warning("training diagnosis at step %s: %s", finding.step, finding.message)

    if config.save_steps and not config.eval_steps and splits.get("val"):
        logger.info("train.save_steps=%d without train.eval_steps: evaluating at every checkpoint (trl picks the best "
                    "checkpoint at evaluations)", config.save_steps)
    resume = last_good_checkpoint(checkpoints_dir(out_dir))  # the one train_model resumes from
    if resume:
        logger.info("resuming training from checkpoint %s (a previous attempt in this run folder stopped there)", resume)
        tracking.set_tags(run["tracking_uri"], run["run_id"], {"train.resumed_from_checkpoint": resume})
        write_run_json(out_dir, {"resumed_from_checkpoint": resume})
    callbacks = [tracking.MlflowMetricsCallback(run["tracking_uri"], run["run_id"]), PrefectProgressCallback()]
    result = train_model(model_path, splits["train"], splits.get("val"), lora, config, max_length, out_dir, callbacks,
                         on_finding=on_finding)
    findings = [Finding(**f) for f in result["diagnosis"]]
    tracking.set_tags(run["tracking_uri"], run["run_id"], diagnosis_tags(findings))
    tracking.log_artifacts(run["tracking_uri"], run["run_id"], result["diagnosis_md"], "train")
    create_markdown_artifact(key="training-diagnosis", markdown=render_diagnosis_markdown(findings),
                             description="Automatic diagnosis of the training curves")
    for fallback in result["oom_fallbacks"]:
        logger.warning("CUDA out of memory: retried with %s", fallback)
    tracking.log_metrics(run["tracking_uri"], run["run_id"], tracking.train_summary_metrics(result["metrics"]))
    tracking.log_artifacts(run["tracking_uri"], run["run_id"], result["log_history"], "train")
    tracking.log_artifacts(run["tracking_uri"], run["run_id"], result["tensorboard_dir"], "train/tensorboard")
    if result.get("sft_phase"):  # sft_then_dpo: the supervised phase's curves beside the DPO phase's
        tracking.log_artifacts(run["tracking_uri"], run["run_id"], result["sft_phase"]["log_history"], "train/sft_phase")
        tracking.log_artifacts(run["tracking_uri"], run["run_id"], result["sft_phase"]["tensorboard_dir"],
                               "train/sft_phase/tensorboard")
    if result["adapter_path"]:
        tracking.log_artifacts(run["tracking_uri"], run["run_id"], result["adapter_path"], "adapter")
    if result["stopped_on_non_finite"] is not None:
        raise LoraflowError(f"training stopped at step {result['stopped_on_non_finite']}: the loss became NaN/inf; "
                            f"lower train.learning_rate or inspect the batch named in {result['diagnosis_md']}")
    return result
