"""Prefect wrappers for training (never cached: it has side effects and is the expensive step; live progress) and for
sweeps (the parent MLflow run, one finetune child run per trial, the best trial)."""
import time
from dataclasses import replace

from pathlib import Path

from prefect import Flow, get_run_logger, runtime, task
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from transformers import TrainerCallback

from loraflow.schemas.config import JudgeConfig, LoraConfig, PipelineConfig, TaskCard, TrainConfig
from loraflow.schemas.results import (RunOutcome, Splits, SweepResult, SweepRun, SweepTrial, TrackingRun, TrainingResult,
                                      TrialMetric)
from loraflow.tasks.common.settings import import_root, mlflow_uri
from loraflow.tasks.steps import not_user_error
from loraflow.tasks.tracking import runs as tracking
from loraflow.tasks.training import sweep as sweeps
from loraflow.tasks.training.diagnosis import Finding
from loraflow.tasks.training.resume import checkpoints_dir, last_good_checkpoint
from loraflow.tasks.tracking.run_extras import write_run_json


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
def train(model_path: str, splits: Splits, lora: LoraConfig, config: TrainConfig, max_length: int, out_dir: str,
          run: TrackingRun, task_card: TaskCard | None = None, judge: JudgeConfig | None = None) -> TrainingResult:
    """Fine-tune; a retry resumes from the last checkpoint. Metrics stream live to MLflow and TensorBoard.

    GRPO objectives score their samples with rewards built from task_card (its fields) and, if weighted, the judge.
    """
    from loraflow.tasks.training.train import train_model

    get_run_logger().info("stage: train (%s, lr %g, effective batch %d)", config.method, config.resolved_learning_rate,
                          config.effective_batch_size)
    from loraflow.tasks.training.diagnosis import diagnosis_tags, render_diagnosis_markdown
    from loraflow.tasks.common.errors import LoraflowError

    logger = get_run_logger()

    def on_finding(finding) -> None:
        logger.warning("training diagnosis at step %s: %s", finding.step, finding.message)

    if config.save_steps and not config.eval_steps and splits.val:
        logger.info("train.save_steps=%d without train.eval_steps: evaluating at every checkpoint (trl picks the best "
                    "checkpoint at evaluations)", config.save_steps)
    resume = last_good_checkpoint(checkpoints_dir(out_dir))  # the one train_model resumes from
    if resume:
        logger.info("resuming training from checkpoint %s (a previous attempt in this run folder stopped there)", resume)
        tracking.set_tags(run, {"train.resumed_from_checkpoint": resume})
        write_run_json(out_dir, {"resumed_from_checkpoint": resume})
    callbacks = [tracking.MlflowMetricsCallback(run), PrefectProgressCallback()]
    rewards = grpo_rewards(splits.train, config, task_card, judge)
    result = train_model(model_path, splits.train, splits.val, lora, config, max_length, out_dir, callbacks,
                         on_finding=on_finding, rewards=rewards)
    findings = [Finding(**f) for f in result.diagnosis]
    tracking.set_tags(run, diagnosis_tags(findings))
    tracking.log_artifacts(run, result.diagnosis_md, "train")
    create_markdown_artifact(key="training-diagnosis", markdown=render_diagnosis_markdown(findings),
                             description="Automatic diagnosis of the training curves")
    for fallback in result.oom_fallbacks:
        logger.warning("CUDA out of memory at micro-batch %d: retried with micro-batch %d x accumulation %d",
                       fallback.from_micro_batch, fallback.micro_batch, fallback.accumulation)
    tracking.log_metrics(run, tracking.train_summary_metrics(result.metrics))
    tracking.log_artifacts(run, result.log_history, "train")
    tracking.log_artifacts(run, result.tensorboard_dir, "train/tensorboard")
    if result.sft_phase:  # sft_then_dpo: the supervised phase's curves beside the DPO phase's
        tracking.log_artifacts(run, result.sft_phase.log_history, "train/sft_phase")
        tracking.log_artifacts(run, result.sft_phase.tensorboard_dir, "train/sft_phase/tensorboard")
    if result.adapter_path:
        tracking.log_artifacts(run, result.adapter_path, "adapter")
    if result.stopped_on_non_finite is not None:
        raise LoraflowError(f"training stopped at step {result.stopped_on_non_finite}: the loss became NaN/inf; "
                            f"lower train.learning_rate or inspect the batch named in {result.diagnosis_md}")
    return result


def grpo_rewards(train_path: str, config: TrainConfig, task_card: TaskCard | None, judge: JudgeConfig | None):
    """GRPO's reward functions and weights from the task card (None for other objectives); logged by name."""
    if config.objective not in ("grpo", "sft_then_grpo"):
        return None
    from loraflow.tasks.common.jsonl import read_jsonl
    from loraflow.tasks.evaluation.rewards import reward_functions, reward_names

    references = [r["messages"][-1]["content"] for r in read_jsonl(train_path) if r.get("messages")]
    functions, weights = reward_functions((task_card or TaskCard()).fields, references, config.grpo, judge)
    get_run_logger().info("GRPO rewards: %s", ", ".join(f"{n} x{w:g}" for n, w in zip(reward_names(functions), weights)))
    return functions, weights


@task(name="start-sweep", cache_policy=NO_CACHE)
def start_sweep(config: PipelineConfig, grid: dict[str, list[str]], out_dir: str) -> SweepRun:
    """Open the parent MLflow run (the grid as params) and plan the trials: name, overrides, run folder."""
    from loraflow.tasks.common.config_files import dump_config

    uri = mlflow_uri(config.tracking.mlflow_tracking_uri)
    experiment = config.tracking.experiment or config.task_card.name
    params = {f"grid.{key}": ",".join(values) for key, values in grid.items()}
    tags = {"loraflow.sweep": "parent", "loraflow.out_dir": str(Path(out_dir).resolve()),
            "git.commit": tracking.git_commit(import_root())}
    run_id = tracking.start_run(uri, experiment, f"{config.task_card.name}-sweep-{Path(out_dir).name}", params, tags,
                                config.task_card.model_dump(mode="json"), dump_config(config))
    trials = [SweepTrial(name=sweeps.trial_name(i + 1, overrides), overrides=overrides,
                         out_dir=str(Path(out_dir) / sweeps.trial_name(i + 1, overrides)))
              for i, overrides in enumerate(sweeps.expand_grid(grid))]
    # run.json names the parent run, so the flow's failure hook can end it (FAILED/KILLED) if the sweep stops early.
    write_run_json(out_dir, {"mlflow_tracking_uri": uri, "mlflow_run_id": run_id, "mlflow_experiment": experiment,
                             "prefect_flow_run_id": str(runtime.flow_run.id or "")})
    get_run_logger().info("sweep: %d trials under MLflow run %s", len(trials), run_id)
    return SweepRun(tracking_uri=uri, run_id=run_id, experiment=experiment, trials=trials)


@task(name="sweep-trial", cache_policy=NO_CACHE)
def sweep_trial(finetune: Flow, config: PipelineConfig, trial: SweepTrial, input_path: str | None, parent: SweepRun,
                index: int) -> SweepTrial:
    """Run the finetune flow the sweep flow hands in for one trial (its own MLflow run, nested under the parent).

    The flow comes in as an argument - tasks import no flows - and runs as a child flow of this task, so the sweep flow
    can submit trials `concurrency` at a time. A failed trial is recorded with its error and the sweep goes on.
    """
    logger = get_run_logger()
    try:
        result = finetune(config=sweeps.trial_config(config, trial.overrides), input_path=input_path, out_dir=trial.out_dir)
    except Exception as error:  # noqa: BLE001 - one broken trial must not stop the sweep
        logger.warning("sweep trial %s failed: %s", trial.name, error)
        return replace(trial, error=f"{type(error).__name__}: {error}"[:500])
    outcome = RunOutcome.model_validate(result.get("outcome") or {})
    done = replace(trial, mlflow_run_id=result["mlflow_run_id"], val_loss=sweeps.best_val_loss(trial.out_dir),
                   success_metric=TrialMetric(name=outcome.success_metric, value=outcome.candidate))
    # MLflow nests a run under the run named by this tag (the UI shows it as a child).
    tracking.set_tags(TrackingRun(result["mlflow_tracking_uri"], result["mlflow_run_id"]),
                      {"mlflow.parentRunId": parent.run_id, "loraflow.sweep.trial": trial.name,
                       "loraflow.sweep.overrides": " ".join(trial.overrides)})
    if done.val_loss is not None:
        tracking.log_metrics(TrackingRun(parent.tracking_uri, parent.run_id), {"trial_val_loss": done.val_loss}, step=index)
    logger.info("sweep trial %s: val loss %s", trial.name, done.val_loss)
    return done


@task(name="finish-sweep", cache_policy=NO_CACHE)
def finish_sweep(parent: SweepRun, trials: list[SweepTrial], grid: dict[str, list[str]], out_dir: str) -> SweepResult:
    """Pick the best trial by val loss, write DIR/sweep.json, tag and close the parent run."""
    rows = [t.to_dict() for t in trials]
    best_row = sweeps.pick_best(rows)
    best = next((t for t in trials if best_row and t.name == best_row["name"]), None)
    summary_path = sweeps.write_summary(out_dir, rows, best_row, grid)
    markdown = sweeps.render_summary(rows, best_row)
    run = TrackingRun(parent.tracking_uri, parent.run_id)
    tags = {"loraflow.sweep.trials": str(len(trials)), "loraflow.sweep.failed": str(sum(t.error is not None for t in trials))}
    if best:
        tags.update({"best.trial": best.name, "best.overrides": " ".join(best.overrides), "best.mlflow_run_id": best.mlflow_run_id})
        tracking.log_metrics(run, {"best_val_loss": best.val_loss})
    tracking.set_tags(run, tags)
    tracking.log_artifacts(run, summary_path)
    create_markdown_artifact(key="sweep-summary", markdown=markdown, description="Sweep trials by validation loss")
    tracking.finish_run(run, "FINISHED" if best else "FAILED")
    get_run_logger().info("sweep best: %s", best.name if best else "none (no trial logged a val loss)")
    return SweepResult(parent_run_id=parent.run_id, tracking_uri=parent.tracking_uri, best=best, trials=trials,
                       summary=str(summary_path))
