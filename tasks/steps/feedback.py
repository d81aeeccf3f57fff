"""Prefect wrappers for the feedback loop: claim and export a feedback batch, grow the dataset lineage,
record which feedback a model trained on; monitoring of the champion on the frozen test set and recent feedback."""
from dataclasses import replace
from pathlib import Path

from prefect import get_run_logger, runtime, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from loraflow.schemas.run_folder import RunFolder
from loraflow.schemas.config import FeedbackConfig, PipelineConfig
from loraflow.schemas.results import (Champion, EvaluationSets, ExportedBatch, FeedbackRecorded, LineageVersion,
                                      ModelEvaluation, MonitorSummary, RecentFeedback, RunOutcome, TrackingRun)
from loraflow.tasks.steps import not_user_error


@task(name="claim-feedback-batch", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5, retry_condition_fn=not_user_error)
def claim_feedback_batch(config: FeedbackConfig, batch_id: str | None) -> str | None:
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
def export_feedback(config: FeedbackConfig, batch_id: str, out_dir: str | None) -> ExportedBatch:
    """Export the batch: corrections become training records, uncorrected badcases a relabelling queue.

    Returns the exported batch with `run_dir`, the folder the retrain writes into
    (out_dir, else $LORAFLOW_HOME/runs/retrain-<batch id>).
    """
    from loraflow.tasks.common.settings import loraflow_home
    from loraflow.tasks.feedback import export

    run_dir = Path(out_dir) if out_dir else loraflow_home() / "runs" / f"retrain-{batch_id}"
    exported = export.export_feedback(config.database_url, str(run_dir / "feedback"), batch_id)
    get_run_logger().info("batch %s: %d corrections as training records, %d badcases to relabel (%s)",
                          batch_id, exported.records, exported.relabel, exported.relabel_path)
    create_markdown_artifact(key="feedback-batch", description="Feedback exported for this retrain", markdown=(
        f"Batch `{batch_id}`: **{exported.records}** corrections become training records; "
        f"**{exported.relabel}** badcases without a correction wait for relabelling in `{exported.relabel_path}`."))
    return replace(exported, run_dir=str(run_dir))


@task(name="record-feedback-lineage", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5, retry_condition_fn=not_user_error)
def record_feedback_lineage(result: dict, committed: LineageVersion) -> FeedbackRecorded:
    """Tag the finetune's MLflow run and its registered version with the feedback ids it trained on; note the model in the lineage."""
    from loraflow.tasks.data import lineage

    outcome = RunOutcome.model_validate(result.get("outcome") or {})
    registered = outcome.registered_model
    recorded = lineage.record_feedback_lineage(result["mlflow_tracking_uri"], result["mlflow_run_id"],
                                               registered.to_dict() if registered else None, committed.manifest)
    promoted = outcome.promotion is not None and outcome.promotion.promote
    decision = "promoted to champion" if promoted else "kept the old champion"
    get_run_logger().info("lineage v%s (%d feedback records trained) -> MLflow run %s, model version %s: %s",
                          committed.version, len(committed.feedback_ids.get("trained", [])), result["mlflow_run_id"],
                          recorded["model_version"], decision)
    return FeedbackRecorded(**recorded, promotion=outcome.promotion, decision=decision)


@task(name="seed-lineage", cache_policy=NO_CACHE)
def seed_lineage(task_name: str, out_dir: str, run: TrackingRun, lineage_dir: str | None = None) -> LineageVersion | None:
    """Make this run's data version v1 of the task's lineage when the lineage is still empty (later runs leave it)."""
    from loraflow.tasks.data import lineage

    root = lineage.lineage_root(task_name, lineage_dir)
    seeded = lineage.seed_lineage(root, RunFolder(out_dir).data, {"run_dir": str(Path(out_dir).resolve()), "mlflow_run_id": run.run_id})
    if seeded:
        get_run_logger().info("dataset lineage seeded: %s (content hash %s)", seeded["dir"], seeded["content_hash"][:12])
    else:
        get_run_logger().info("dataset lineage: %s already holds versions, left as it is", root)
    return LineageVersion.from_manifest(seeded) if seeded else None


@task(name="prepare-lineage-version", cache_policy=NO_CACHE)
def prepare_lineage_version(task_name: str, lineage_dir: str | None, exported: ExportedBatch, eval_share: float,
                            pairs: bool = False) -> LineageVersion:
    """Start the next dataset version: the parent's train/val plus the batch's corrections (an eval share held out).

    pairs: a preference objective trains on the batch's preference pairs instead of its supervised records.
    """
    from loraflow.tasks.data.lineage import lineage_root, prepare_version

    feedback_path = exported.pairs_path if pairs else exported.records_path
    prepared = prepare_version(lineage_root(task_name, lineage_dir), feedback_path, exported.batch_id, eval_share,
                               exported.relabel_path)
    ids = prepared["feedback_ids"]
    get_run_logger().info("lineage v%s from v%s: %d feedback %s offered for training, %d held out for feedback eval",
                          prepared["version"], prepared["parent"], len(ids["train"]), "pairs" if pairs else "records",
                          len(ids["eval"]))
    return LineageVersion.from_manifest(prepared)


@task(name="config-for-lineage-version", cache_policy=NO_CACHE)
def config_for_lineage_version(config: PipelineConfig, prepared: LineageVersion) -> PipelineConfig:
    """The pipeline config that trains on a prepared version: its input file, and the lineage's frozen test set kept."""
    data = config.data.model_copy(update={"path": prepared.input_path, "pilot": None})
    split = config.split.model_copy(update={"frozen_test": prepared.frozen_test})
    return config.model_copy(update={"data": data, "split": split})


@task(name="commit-lineage-version", cache_policy=NO_CACHE)
def commit_lineage_version(prepared: LineageVersion, run_dir: str, result: dict) -> LineageVersion:
    """Copy the data stages' output (run_dir/data) into the prepared version; record which feedback ids reached training."""
    from loraflow.tasks.data.lineage import commit_version

    committed = commit_version(prepared.manifest, RunFolder(run_dir).data, {"run_dir": str(run_dir), "mlflow_run_id": result["mlflow_run_id"]})
    ids = committed["feedback_ids"]
    create_markdown_artifact(key="dataset-lineage", description="The dataset version this retrain produced", markdown=(
        f"Lineage **v{committed['version']}** (parent v{committed['parent']}), content hash `{committed['content_hash'][:16]}`\n\n"
        f"| split | records |\n|---|---|\n" + "".join(f"| {k} | {v} |\n" for k, v in committed["counts"].items()) +
        f"\nFeedback of batch `{committed['batch_id']}`: {len(ids['trained'])} trained, {len(ids['dropped'])} dropped by the data "
        f"stages (duplicates, quarantine, test leakage), {len(ids['eval'])} held out; {len(committed['superseded'])} older records "
        f"superseded by corrections.\n\nFolder: `{committed['dir']}`"))
    return LineageVersion.from_manifest(committed)


@task(name="lineage-sets", cache_policy=NO_CACHE)
def lineage_sets(task_name: str, lineage_dir: str | None, test_path: str | None) -> EvaluationSets:
    """The frozen test set (test_path, else the lineage's) and the lineage's held-out feedback-eval set (None if empty)."""
    from loraflow.tasks.common.errors import LoraflowError
    from loraflow.tasks.data.lineage import EVAL_FILE, latest_version, lineage_root

    root = lineage_root(task_name, lineage_dir)
    latest = latest_version(root)
    if test_path is None and latest is None:
        raise LoraflowError(f"no frozen test set: the lineage {root} is empty; run the pipeline once to seed it or pass test_path.")
    feedback_eval = Path(latest["dir"]) / EVAL_FILE if latest else None
    has_eval = feedback_eval is not None and feedback_eval.is_file() and feedback_eval.stat().st_size > 0
    return EvaluationSets(test=test_path or str(Path(latest["dir"]) / "test.jsonl"),
                          feedback_eval=str(feedback_eval) if has_eval else None,
                          lineage_version=latest["version"] if latest else None)


@task(name="monitor-folder", cache_policy=NO_CACHE)
def monitor_folder(out_dir: str | None, task_name: str) -> str:
    """Where this pass writes predictions and its report: out_dir, else $LORAFLOW_HOME/monitor/<task>/<UTC time>."""
    from datetime import UTC, datetime

    from loraflow.tasks.common.settings import loraflow_home

    folder = Path(out_dir) if out_dir else loraflow_home() / "monitor" / task_name / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder)


@task(name="recent-feedback", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5, retry_condition_fn=not_user_error)
def recent_feedback(config: FeedbackConfig, days: float, out_dir: str) -> RecentFeedback:
    """The corrections of the last `days` as an evaluation set, and the share of badcases among recent feedback."""
    from loraflow.tasks.feedback.monitor import recent_feedback as gather

    found = gather(config.database_url, days, str(Path(out_dir) / "recent_feedback.jsonl"))
    share = found.badcase_share
    get_run_logger().info("recent feedback (%g days): %d items, %d corrections, badcase share %s", days, found.feedback,
                          found.corrections, "n/a" if share is None else f"{share:.2%}")
    return found


@task(name="record-monitoring", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5, retry_condition_fn=not_user_error)
def record_monitoring(config: PipelineConfig, champion: Champion, results: dict[str, ModelEvaluation],
                      feedback: RecentFeedback | None, out_dir: str) -> MonitorSummary:
    """Check the task card's threshold on every set, log the pass and its trend to MLflow, alert as artifact and log."""
    from loraflow.tasks.common.settings import mlflow_uri
    from loraflow.tasks.evaluation.target import quality_alerts
    from loraflow.tasks.feedback.monitor import log_monitoring, render_alert

    metrics = {name: result.metrics for name, result in results.items()}
    alerts = quality_alerts(metrics, config.task_card)
    experiment = f"{config.tracking.experiment or config.task_card.name}-monitoring"
    logged = log_monitoring(mlflow_uri(config.tracking.mlflow_tracking_uri), experiment, champion, metrics, feedback,
                            alerts, out_dir)
    metric = config.task_card.success_metric.metric
    create_table_artifact(key="monitoring-trend", description=f"Champion {metric} per monitoring pass (oldest first)",
                          table=[{"time": r["time"], "version": r["champion_version"],
                                  **{k: round(v, 4) for k, v in r.items() if k.endswith(f".{metric}") or k == "feedback.badcase_share"}}
                                 for r in logged["trend"]])
    create_markdown_artifact(key="monitoring-alert", description="Quality against the task card",
                             markdown=render_alert(config.task_card, champion, alerts, logged["trend"]))
    logger = get_run_logger()
    for alert in alerts:
        logger.warning("quality alert: %s", alert)
    if not alerts:
        logger.info("champion %s v%s meets the task card on %s", champion.name, champion.version, ", ".join(metrics))
    return MonitorSummary(champion=champion, metrics=metrics, feedback=feedback, alerts=alerts,
                          mlflow_run_id=logged["run_id"], experiment=experiment, report=logged["report"])


@task(name="send-alert-webhook", cache_policy=NO_CACHE, retries=3, retry_delay_seconds=10, retry_condition_fn=not_user_error)
def send_alert_webhook(url: str | None, summary: MonitorSummary) -> int | None:
    """POST the alerts to the webhook (url, else $LORAFLOW_ALERT_WEBHOOK); nothing when all is well or no webhook is set."""
    from loraflow.tasks.feedback.monitor import post_webhook, webhook_url

    target = webhook_url(url)
    if not summary.alerts or target is None:
        return None
    status = post_webhook(target, {"source": "loraflow-monitor", **summary.to_dict()})
    get_run_logger().info("alert posted to the webhook (HTTP %d)", status)
    return status
