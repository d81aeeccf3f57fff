"""Prefect wrappers for monitoring: find the champion, gather recent feedback, log the trend, alert."""
from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from loraflow.schemas.config import FeedbackConfig, PipelineConfig
from loraflow.tasks.steps import not_user_error


def _tracking_uri(config: PipelineConfig) -> str:
    from loraflow.tasks.common.settings import default_mlflow_uri

    return config.tracking.mlflow_tracking_uri or default_mlflow_uri()


@task(name="monitor-folder", cache_policy=NO_CACHE)
def monitor_folder(out_dir: str | None, task_name: str) -> str:
    """Where this pass writes predictions and its report: out_dir, else $LORAFLOW_HOME/monitor/<task>/<UTC time>."""
    from datetime import UTC, datetime

    from loraflow.tasks.common.settings import loraflow_home

    folder = Path(out_dir) if out_dir else loraflow_home() / "monitor" / task_name / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder)


@task(name="find-champion-model", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5, retry_condition_fn=not_user_error)
def find_champion(config: PipelineConfig) -> dict | None:
    """The champion's name, version and local folder (downloaded once), or None when nothing is promoted yet."""
    from loraflow.tasks.deploy.registry import champion_version, resolve_model

    uri = _tracking_uri(config)
    name = config.deploy.registered_model_name or config.task_card.name
    version = champion_version(name, tracking_uri=uri)
    if version is None:
        get_run_logger().info("no champion registered for %s yet: nothing to monitor", name)
        return None
    path = resolve_model(f"models:/{name}/{version}", tracking_uri=uri)
    get_run_logger().info("monitoring champion %s version %s (%s)", name, version, path)
    return {"name": name, "version": version, "path": path}


@task(name="recent-feedback", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5, retry_condition_fn=not_user_error)
def recent_feedback(config: FeedbackConfig, days: float, out_dir: str) -> dict:
    """The corrections of the last `days` as an evaluation set, and the share of badcases among recent feedback."""
    from loraflow.tasks.feedback.monitor import recent_feedback as gather

    found = gather(config.database_url, days, str(Path(out_dir) / "recent_feedback.jsonl"))
    share = found["badcase_share"]
    get_run_logger().info("recent feedback (%g days): %d items, %d corrections, badcase share %s", days, found["feedback"],
                          found["corrections"], "n/a" if share is None else f"{share:.2%}")
    return found


@task(name="record-monitoring", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5, retry_condition_fn=not_user_error)
def record(config: PipelineConfig, champion: dict, results: dict[str, dict], feedback: dict | None, out_dir: str) -> dict:
    """Check the task card's threshold on every set, log the pass and its trend to MLflow, alert as artifact and log."""
    from loraflow.tasks.feedback.monitor import log_monitoring, quality_alerts, render_alert

    metrics = {name: result["metrics"] for name, result in results.items()}
    alerts = quality_alerts(metrics, config.task_card)
    experiment = f"{config.tracking.experiment or config.task_card.name}-monitoring"
    logged = log_monitoring(_tracking_uri(config), experiment, champion, metrics, feedback, alerts, out_dir)
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
        logger.info("champion %s v%s meets the task card on %s", champion["name"], champion["version"], ", ".join(metrics))
    return {"champion": champion, "metrics": metrics, "feedback": feedback, "alerts": alerts, "mlflow_run_id": logged["run_id"],
            "experiment": experiment, "report": logged["report"]}


@task(name="send-alert-webhook", cache_policy=NO_CACHE, retries=3, retry_delay_seconds=10, retry_condition_fn=not_user_error)
def send_webhook(url: str | None, summary: dict) -> int | None:
    """POST the alerts to the webhook (url, else $LORAFLOW_ALERT_WEBHOOK); nothing when all is well or no webhook is set."""
    from loraflow.tasks.feedback.monitor import post_webhook, webhook_url

    target = webhook_url(url)
    if not summary["alerts"] or target is None:
        return None
    status = post_webhook(target, {"source": "loraflow-monitor", **summary})
    get_run_logger().info("alert posted to the webhook (HTTP %d)", status)
    return status


@task(name="resolve-eval-target", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5, retry_condition_fn=not_user_error)
def resolve_target(model: str, test_path: str | None, config: PipelineConfig) -> dict:
    """The model (and adapter) to evaluate and its test set: test_path, else the run folder's test split, else the lineage's."""
    from loraflow.tasks.common.errors import LoraflowError
    from loraflow.tasks.data.lineage import latest_version, lineage_root
    from loraflow.tasks.feedback.monitor import resolve_eval_target

    target = resolve_eval_target(model, _tracking_uri(config))
    if test_path is None and target["run_dir"] and (Path(target["run_dir"]) / "data" / "test.jsonl").is_file():
        test_path = str(Path(target["run_dir"]) / "data" / "test.jsonl")
    if test_path is None:
        latest = latest_version(lineage_root(config.task_card.name))
        if latest is None:
            raise LoraflowError(f"no test set for {model}: pass test_path, or a run folder, or seed the lineage of {config.task_card.name} with a pipeline run.")
        test_path = str(Path(latest["dir"]) / "test.jsonl")
    get_run_logger().info("evaluating %s%s on %s", target["model_path"], f" + {target['adapter_path']}" if target["adapter_path"] else "", test_path)
    return {**target, "test_path": test_path}


@task(name="evaluation-summary", cache_policy=NO_CACHE)
def evaluation_summary(result: dict, config: PipelineConfig, out_dir: str) -> dict:
    """Write eval/metrics_<label>.json with the task card's verdict and show the metrics as a Prefect table."""
    import json

    from loraflow.tasks.feedback.monitor import quality_alerts

    alerts = quality_alerts({"test": result["metrics"]}, config.task_card)
    summary = {**result, "criteria_met": not alerts, "alerts": alerts}
    path = Path(out_dir) / "eval" / f"metrics_{result['label']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    create_table_artifact(key="evaluation", description="Metrics on the test set",
                          table=[{"metric": k, "value": round(v, 4)} for k, v in result["metrics"].items() if isinstance(v, (int, float))])
    return {**summary, "summary_path": str(path)}
