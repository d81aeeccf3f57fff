"""Production monitoring: the champion on the frozen test set and recent feedback, its trend in MLflow, alerts."""
import json
import os
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

from loraflow.schemas.config.task_card import TaskCard
from loraflow.schemas.results import Champion, RecentFeedback
from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.common.jsonl import write_jsonl

WEBHOOK_ENV = "LORAFLOW_ALERT_WEBHOOK"
TREND_RUNS = 20


def recent_feedback(database_url: str | None, days: float, out_path: str, limit: int = 5000) -> RecentFeedback:
    """Write the corrections received in the last `days` as canonical records; count ratings for the badcase share
    (None without feedback)."""
    from loraflow.tasks.feedback.export import correction_record
    from loraflow.tasks.feedback.store import FeedbackStore

    since = datetime.now(UTC) - timedelta(days=days)
    store = FeedbackStore(database_url)
    try:
        rows, total = store.list_feedback(since=since, limit=limit)
    finally:
        store.dispose()
    records = [correction_record(r, r["batch_id"] or "unbatched") for r in rows if r["correction"] is not None]
    write_jsonl(out_path, records)
    # A correction is also a complaint about the answer, so it counts as a badcase here.
    bad = sum(1 for r in rows if r["kind"] in ("badcase", "correction"))
    return RecentFeedback(path=str(out_path), corrections=len(records), feedback=total, badcases=bad,
                          badcase_share=bad / len(rows) if rows else None)


def log_monitoring(tracking_uri: str, experiment: str, champion: Champion, results: dict[str, dict],
                   feedback: RecentFeedback | None, alerts: list[str], out_dir: str) -> dict:
    """One MLflow run per monitoring pass (metrics per set, tagged with the champion); returns the trend of recent passes.

    Returns {"run_id", "experiment", "trend": [{"run_id", "time", "champion_version", <set>.<metric>...}, ...] oldest first}.
    """
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    from loraflow.tasks.tracking.runs import ensure_experiment

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment_id = ensure_experiment(tracking_uri, experiment)
    tags = {"loraflow.kind": "monitoring", "champion.name": champion.name, "champion.version": str(champion.version),
            "monitor.alerts": str(len(alerts))}
    run = client.create_run(experiment_id, run_name=f"monitor-{champion.name}-v{champion.version}", tags=tags)
    now = int(datetime.now(UTC).timestamp() * 1000)
    values = {f"{name}.{key}": float(v) for name, metrics in results.items() for key, v in metrics.items()
              if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v}
    if feedback and feedback.badcase_share is not None:
        values["feedback.badcase_share"] = float(feedback.badcase_share)
        values["feedback.count"] = float(feedback.feedback)
    client.log_batch(run.info.run_id, metrics=[Metric(k, v, now, 0) for k, v in values.items()])
    previous = client.search_runs([experiment_id], "tags.`loraflow.kind` = 'monitoring'", max_results=TREND_RUNS,
                                  order_by=["attributes.start_time DESC"])
    trend = [{"run_id": r.info.run_id, "time": datetime.fromtimestamp(r.info.start_time / 1000, UTC).isoformat(timespec="seconds"),
              "champion_version": r.data.tags.get("champion.version"), **r.data.metrics} for r in reversed(previous)]
    report = {"champion": champion.to_dict(), "results": results, "feedback": feedback.to_dict() if feedback else None,
              "alerts": alerts, "trend": trend}
    path = Path(out_dir) / "monitor.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str))
    client.log_artifact(run.info.run_id, str(path))
    client.set_terminated(run.info.run_id, status="FINISHED")
    return {"run_id": run.info.run_id, "experiment": experiment, "trend": trend, "report": str(path)}


def webhook_url(explicit: str | None) -> str | None:
    """The alert webhook: the explicit URL, else $LORAFLOW_ALERT_WEBHOOK, else None (no webhook)."""
    return explicit or os.environ.get(WEBHOOK_ENV) or None


def post_webhook(url: str, payload: dict, timeout: float = 10.0) -> int:
    """POST the alert as JSON; returns the HTTP status, raises on a non-2xx answer or a network error."""
    if not url.startswith(("http://", "https://")):
        raise LoraflowError(f"alert webhook {url!r} is not an http(s) URL; fix the monitor's webhook_url or ${WEBHOOK_ENV}.")
    request = urllib.request.Request(url, data=json.dumps(payload, default=str).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "loraflow-monitor"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # raises HTTPError on 4xx/5xx
        return response.status


def render_alert(task_card: TaskCard, champion: Champion, alerts: list[str], trend: list[dict]) -> str:
    """Markdown for the Prefect artifact: the alerts (or all clear) and the success metric's recent trend."""
    metric = task_card.success_metric.metric
    head = f"**ALERT** — champion {champion.name} v{champion.version}" if alerts else \
        f"**OK** — champion {champion.name} v{champion.version} meets the task card"
    lines = [head, "", *(f"- {a}" for a in alerts), "", f"| time | version | test.{metric} | feedback.{metric} |", "|---|---|---|---|"]
    for row in trend[-10:]:
        cells = [row.get(f"{s}.{metric}") for s in ("test", "feedback")]
        lines.append(f"| {row['time']} | {row['champion_version']} | " + " | ".join("" if c is None else f"{c:.4f}" for c in cells) + " |")
    return "\n".join(lines)
