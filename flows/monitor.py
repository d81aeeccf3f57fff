"""Monitoring: re-evaluate the champion on the frozen test set and on feedback, log the trend, alert below the task card."""
from prefect import flow

from loraflow.flows import DEFAULT_CONFIG
from loraflow.tasks.common.settings import mlflow_uri
from loraflow.tasks.steps import deploy, evaluation, feedback, planning


@flow(name="monitor")
def monitor(config_path: str = DEFAULT_CONFIG, overrides: list[str] = [], recent_days: float = 7.0,  # noqa: B006
            webhook_url: str = "", test_path: str = "", lineage_dir: str = "", out_dir: str = "") -> dict:
    """Score the champion on the frozen test set, the held-out feedback and the last days' corrections; alert on a fall.

    Args:
        config_path: Pipeline YAML whose task card (threshold), eval, deploy and feedback sections apply, relative to the repository root.
        overrides: Any other setting as dotted.key=value, e.g. eval.max_samples=50.
        recent_days: How far back "recent feedback" reaches, in days.
        webhook_url: Where to POST alerts as JSON; empty: $LORAFLOW_ALERT_WEBHOOK, no webhook when that is unset too.
        test_path: The frozen test set; empty: the dataset lineage's.
        lineage_dir: Dataset lineage folder; empty: $LORAFLOW_HOME/lineage/<task name>.
        out_dir: Folder for predictions and the report; empty: $LORAFLOW_HOME/monitor/<task>/<time>.
    """
    config = planning.load_pipeline_config(config_path, overrides)
    champion = deploy.find_champion(config=config.deploy, task_name=config.task_card.name,
                                    tracking_uri=mlflow_uri(config.tracking.mlflow_tracking_uri))
    if champion is None:
        return {"champion": None, "alerts": [], "metrics": {}}
    out = feedback.monitor_folder(out_dir=out_dir or None, task_name=config.task_card.name)
    sets = feedback.lineage_sets(task_name=config.task_card.name, lineage_dir=lineage_dir or None, test_path=test_path or None)
    recent = feedback.recent_feedback(config=config.feedback, days=recent_days, out_dir=out)
    paths = {"test": sets.test, "feedback_eval": sets.feedback_eval, "recent_feedback": recent.path if recent.corrections else None}
    results = {name: evaluation.evaluate_model(label=f"monitor-{name}", model_path=champion.path, adapter_path=None,
                                               test_path=path, config=config.eval, task_card=config.task_card, out_dir=out)
               for name, path in paths.items() if path}
    summary = feedback.record_monitoring(config=config, champion=champion, results=results, feedback=recent, out_dir=out)
    feedback.send_alert_webhook(webhook_url or None, summary)
    return summary.to_dict()
