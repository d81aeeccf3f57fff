"""Prefect wrappers for MLflow tracking: start the run, log the data version, finish with run.json."""
import inspect
import json
from pathlib import Path

from prefect import get_run_logger, runtime, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from loraflow.schemas.config import PipelineConfig, TaskCard
from loraflow.schemas.results import (DataReport, EvaluationSummary, FinishedRun, PromotionDecision, RegisteredModel, RunOutcome,
                                      Splits, TrackingRun, TrainingResult)
from loraflow.tasks.common.settings import import_root
from loraflow.tasks.tracking import runs as tracking
from loraflow.tasks.tracking.headline import headline_lines
from loraflow.tasks.tracking.links import local_store_note, markdown_link, mlflow_run_url, run_links_markdown
from loraflow.tasks.tracking.run_extras import read_run_info, write_run_json


@task(name="start-tracking", cache_policy=NO_CACHE)
def start_tracking(config: PipelineConfig, out_dir: str) -> TrackingRun:
    """Open the pipeline's MLflow run (whole config as params: the one task that sees all of it)."""
    from loraflow.tasks.common.config_files import dump_config, flatten_config
    from loraflow.tasks.common.settings import mlflow_uri

    uri = mlflow_uri(config.tracking.mlflow_tracking_uri)
    experiment = config.tracking.experiment or config.task_card.name
    flow_run_id = str(runtime.flow_run.id or "")
    continues = tracking.close_previous_run(read_run_info(out_dir))
    tags = {"prefect.flow_run_id": flow_run_id, "prefect.flow_name": str(runtime.flow_run.flow_name or ""),
            "git.commit": tracking.git_commit(import_root()), "loraflow.out_dir": str(Path(out_dir).resolve()),
            "model.base": config.model.name_or_path, "train.method": config.train.method}
    if continues:  # a rerun after a failure or a kill: the link MLflow otherwise lacks
        tags["loraflow.continues_run_id"] = continues
    run_id = tracking.start_run(uri, experiment, f"{config.task_card.name}-{Path(out_dir).name}", flatten_config(config),
                                tags, config.task_card.model_dump(mode="json"), dump_config(config))
    experiment_id = tracking.ensure_experiment(uri, experiment)
    if flow_run_id:  # carry the MLflow run id back to Prefect, visible on the flow run page
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            client.update_flow_run_labels(flow_run_id, {"mlflow.run_id": run_id, "mlflow.experiment": experiment})
        run_link = markdown_link(f"MLflow run {run_id}", mlflow_run_url(uri, experiment_id, run_id), uri)
        create_markdown_artifact(key="mlflow-run", markdown="\n".join([f"{run_link} in experiment `{experiment}`",
                                                                         *local_store_note(uri)]),
                                 description="Where this pipeline run is tracked")
    write_run_json(out_dir, {"mlflow_tracking_uri": uri, "mlflow_run_id": run_id, "mlflow_experiment": experiment,
                             "mlflow_experiment_id": experiment_id, "prefect_flow_run_id": flow_run_id,
                             "continues_mlflow_run_id": continues, "resumed_from_checkpoint": None})
    get_run_logger().info("MLflow run %s (experiment %s, %s)%s", run_id, experiment, uri,
                          f", continuing run {continues} that did not finish" if continues else "")
    return TrackingRun(tracking_uri=uri, run_id=run_id, experiment=experiment, experiment_id=experiment_id)


@task(name="log-data", cache_policy=NO_CACHE)
def log_data(run: TrackingRun, splits: Splits, report: DataReport, dataset_name: str) -> str:
    """Log the splits as MLflow dataset inputs with their content hash, plus the data report; return the data hash."""
    paths = {"train": splits.train, "val": splits.val, "test": splits.test}
    data_hash = tracking.log_dataset(run, paths, dataset_name)
    tracking.log_metrics(run, report.metrics)
    for path in [report.report_json, report.report_html]:
        tracking.log_artifacts(run, path, "data")
    quarantine = Path(report.report_json).with_name("quarantine.jsonl")
    for path in [quarantine, *paths.values()]:  # the exact split files the model was trained and tested on
        if path and Path(path).is_file():
            tracking.log_artifacts(run, path, "data")
    if report.markdown:
        create_markdown_artifact(key="data-report", markdown=report.markdown, description="Data stages: counts per stage and reason")
    if Path(report.report_json).is_file():
        counts = json.loads(Path(report.report_json).read_text())
        rows = [{"count": key, "records": counts[key]} for key in ("input", "kept", "quarantined", "review", "augmented",
                                                                   "train", "val", "test") if isinstance(counts.get(key), int)]
        rows += [{"count": f"removed: {reason}", "records": n} for reason, n in (counts.get("removed") or {}).items()]
        create_table_artifact(key="data-counts", table=rows, description="Records per stage and removal reason")
    return data_hash


@task(name="finish-tracking", cache_policy=NO_CACHE)
def finish_tracking(run: TrackingRun, out_dir: str, task_card: TaskCard, summary: EvaluationSummary,
                    decision: PromotionDecision, registered: RegisteredModel | None, trained: TrainingResult) -> FinishedRun:
    """Write run.json, tag the run with the outcome, mark it finished, and return what the CLI prints."""
    from loraflow.tasks.evaluation.evaluate import field_outcome

    metric = task_card.success_metric.metric
    base = summary.labels.get("base")
    outcome = RunOutcome(success_metric=metric, base=base.metrics.get(metric) if base else None,
                         candidate=summary.candidate.metrics.get(metric), criteria_met=summary.criteria_met,
                         criteria=summary.criteria, fields=field_outcome(summary), promotion=decision,
                         registered_model=registered)
    path = write_run_json(out_dir, {"outcome": outcome.model_dump(mode="json"), "base_model_path": trained.base_model_path,
                                    "model_path": trained.model_path, "adapter_path": trained.adapter_path,
                                    "merged_model_path": registered.merged_path if registered else None})
    tracking.log_artifacts(run, path)
    tracking.log_headline(run, outcome, task_card.name)
    create_markdown_artifact(key="run-links", markdown=run_links_markdown(run, out_dir, registered),
                             description="The MLflow run, its reports and the registered model version")
    tracking.finish_run(run)
    logger = get_run_logger()
    for line in headline_lines(outcome):  # the flow's last lines say what came of it
        logger.info("%s", line)
    return FinishedRun(run_json=str(path), outcome=outcome, index=json.loads(path.read_text()))


def end_mlflow_run(flow, flow_run, state) -> None:
    """Flow hook for failure, crash (Ctrl-C, SIGTERM) and cancellation: end this run's MLflow run FAILED or KILLED.

    Without it a failed or interrupted pipeline leaves its MLflow run RUNNING forever, with no end time.
    """
    out_dir = flow_run.parameters.get("out_dir") or inspect.signature(flow.fn).parameters["out_dir"].default
    info = read_run_info(out_dir)
    if not info.get("mlflow_run_id") or info.get("prefect_flow_run_id") != str(flow_run.id):
        return  # failed before start-tracking wrote this run's run.json: no MLflow run of this flow run exists
    status = "FAILED" if state.is_failed() else "KILLED"
    tracking.end_unfinished_run(info["mlflow_tracking_uri"], info["mlflow_run_id"], status,
                                f"{state.name}: {state.message or ''}")
