"""Monitoring: re-evaluate the champion on the frozen test set and on feedback, log the trend, alert below the task card."""
from prefect import flow

from loraflow.tasks.common.settings import mlflow_uri
from loraflow.tasks.steps import deploy, evaluation, feedback

DEFAULT_CONFIG = "examples/quickstart/pipeline.yaml"


@flow(name="monitor")
def monitor(config_path: str = DEFAULT_CONFIG, overrides: list[str] | None = None, recent_days: float = 7.0,
            webhook_url: str | None = None, test_path: str | None = None, lineage_dir: str | None = None,
            out_dir: str | None = None) -> dict:
    """Score the champion on the frozen test set, the held-out feedback and the last days' corrections; alert on a fall.

    Args:
        config_path: pipeline YAML whose task card (threshold), eval, deploy and feedback sections apply.
        overrides: `dotted.key=value` overrides of the config.
        recent_days: how far back "recent feedback" reaches.
        webhook_url: where to POST alerts as JSON; default $LORAFLOW_ALERT_WEBHOOK, none when unset.
        test_path: the frozen test set; default the dataset lineage's.
        lineage_dir: dataset lineage folder; default $LORAFLOW_HOME/lineage/<task name>.
        out_dir: folder for predictions and the report; default $LORAFLOW_HOME/monitor/<task>/<time>.
    """
    config = feedback.load_pipeline_config(config_path, overrides or [])
    champion = deploy.find_champion(config.deploy, config.task_card.name, mlflow_uri(config.tracking.mlflow_tracking_uri))
    if champion is None:
        return {"champion": None, "alerts": [], "metrics": {}}
    out = feedback.monitor_folder(out_dir, config.task_card.name)
    sets = feedback.evaluation_sets(config.task_card.name, lineage_dir, test_path)
    recent = feedback.recent_feedback(config.feedback, recent_days, out)
    paths = {"test": sets.test, "feedback_eval": sets.feedback_eval, "recent_feedback": recent.path if recent.corrections else None}
    results = {name: evaluation.evaluate(f"monitor-{name}", champion.path, None, path, config.eval, config.task_card, out)
               for name, path in paths.items() if path}
    summary = feedback.record(config, champion, results, recent, out)
    feedback.send_webhook(webhook_url, summary)
    return summary.to_dict()
