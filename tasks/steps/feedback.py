"""Prefect wrappers for the feedback side of retraining: load the config, claim and export a batch, record it in MLflow."""
from pathlib import Path

from prefect import get_run_logger, runtime, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from loraflow.schemas.config import FeedbackConfig, PipelineConfig
from loraflow.tasks.steps import not_user_error


@task(name="load-config", cache_policy=NO_CACHE)
def load_pipeline_config(config_path: str, overrides: list[str]) -> PipelineConfig:
    """Read the pipeline YAML with `key=value` overrides (paths in it resolve against the file); log guide warnings."""
    from loraflow.schemas.config import recommendation_warnings
    from loraflow.tasks.common.config_files import load_config

    config = load_config(config_path, overrides)
    for warning in recommendation_warnings(config):
        get_run_logger().warning("config: %s", warning)
    return config


@task(name="claim-feedback-batch", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5, retry_condition_fn=not_user_error)
def claim_batch(config: FeedbackConfig, batch_id: str | None) -> str | None:
    """The batch to retrain on: the given one, else all pending feedback claimed now (a scheduled run); None if nothing is pending."""
    from loraflow.tasks.feedback.store import FeedbackStore

    if batch_id:
        return batch_id
    store = FeedbackStore(config.database_url)
    try:
        batch = store.claim_batch("schedule")
        if batch is None:
            get_run_logger().info("no pending badcases or corrections: nothing to retrain")
            return None
        # Link the batch to this run, as the API's trigger does, so GET /v1/batches shows who took it.
        store.record_trigger(batch["id"], flow_run_id=str(runtime.flow_run.id or "") or None)
    finally:
        store.dispose()
    get_run_logger().info("claimed %d pending feedback items as batch %s", len(batch["feedback_ids"]), batch["id"])
    return batch["id"]


@task(name="export-feedback", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5, retry_condition_fn=not_user_error)
def export_batch(config: FeedbackConfig, batch_id: str, out_dir: str | None) -> dict:
    """Export the batch: corrections become training records, uncorrected badcases a relabelling queue.

    Returns export_feedback's summary plus `run_dir`, the folder the retrain writes into
    (out_dir, else $LORAFLOW_HOME/runs/retrain-<batch id>).
    """
    from loraflow.tasks.common.settings import loraflow_home
    from loraflow.tasks.feedback.export import export_feedback

    run_dir = Path(out_dir) if out_dir else loraflow_home() / "runs" / f"retrain-{batch_id}"
    exported = export_feedback(config.database_url, str(run_dir / "feedback"), batch_id)
    get_run_logger().info("batch %s: %d corrections as training records, %d badcases to relabel (%s)",
                          batch_id, exported["records"], exported["relabel"], exported["relabel_path"])
    create_markdown_artifact(key="feedback-batch", description="Feedback exported for this retrain", markdown=(
        f"Batch `{batch_id}`: **{exported['records']}** corrections become training records; "
        f"**{exported['relabel']}** badcases without a correction wait for relabelling in `{exported['relabel_path']}`."))
    return {**exported, "run_dir": str(run_dir)}


@task(name="record-feedback-lineage", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5, retry_condition_fn=not_user_error)
def record_in_mlflow(result: dict, committed: dict) -> dict:
    """Tag the finetune's MLflow run and its registered version with the feedback ids it trained on; note the model in the lineage."""
    from loraflow.tasks.data.lineage import record_feedback_lineage

    outcome = result.get("outcome") or {}
    recorded = record_feedback_lineage(result["mlflow_tracking_uri"], result["mlflow_run_id"], outcome.get("registered_model"),
                                       committed)
    decision = "promoted to champion" if (outcome.get("promotion") or {}).get("promote") else "kept the old champion"
    get_run_logger().info("lineage v%s (%d feedback records trained) -> MLflow run %s, model version %s: %s",
                          committed["version"], len(committed["feedback_ids"].get("trained", [])), result["mlflow_run_id"],
                          recorded.get("model_version"), decision)
    return {**recorded, "promotion": outcome.get("promotion"), "decision": decision}
