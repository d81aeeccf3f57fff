"""Prefect wrappers for sweeps: the parent MLflow run, one finetune child run per trial, the best trial."""
from pathlib import Path

from prefect import get_run_logger, runtime, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from loraflow.schemas.config import PipelineConfig
from loraflow.tasks.common.settings import import_root
from loraflow.tasks.training import sweep as sweeps
from loraflow.tasks.tracking import runs as tracking
from loraflow.tasks.steps.tracking import write_run_json


@task(name="start-sweep", cache_policy=NO_CACHE)
def start_sweep(config: PipelineConfig, grid: dict[str, list[str]], out_dir: str) -> dict:
    """Open the parent MLflow run (the grid as params) and plan the trials: name, overrides, run folder."""
    from loraflow.tasks.common.settings import default_mlflow_uri
    from loraflow.tasks.common.config_files import dump_config

    uri = config.tracking.mlflow_tracking_uri or default_mlflow_uri()
    experiment = config.tracking.experiment or config.task_card.name
    params = {f"grid.{key}": ",".join(values) for key, values in grid.items()}
    tags = {"loraflow.sweep": "parent", "loraflow.out_dir": str(Path(out_dir).resolve()),
            "git.commit": tracking.git_commit(import_root())}
    run_id = tracking.start_run(uri, experiment, f"{config.task_card.name}-sweep-{Path(out_dir).name}", params, tags,
                                config.task_card.model_dump(mode="json"), dump_config(config))
    trials = [{"name": sweeps.trial_name(i + 1, overrides), "overrides": overrides}
              for i, overrides in enumerate(sweeps.expand_grid(grid))]
    for trial in trials:
        trial["out_dir"] = str(Path(out_dir) / trial["name"])
    # run.json names the parent run, so the flow's failure hook can end it (FAILED/KILLED) if the sweep stops early.
    write_run_json(out_dir, {"mlflow_tracking_uri": uri, "mlflow_run_id": run_id, "mlflow_experiment": experiment,
                             "prefect_flow_run_id": str(runtime.flow_run.id or "")})
    get_run_logger().info("sweep: %d trials under MLflow run %s", len(trials), run_id)
    return {"tracking_uri": uri, "run_id": run_id, "experiment": experiment, "trials": trials}


@task(name="sweep-trial", cache_policy=NO_CACHE)
def run_trial(config: PipelineConfig, trial: dict, input_path: str | None, parent: dict, index: int) -> dict:
    """Run the finetune flow for one trial (its own MLflow run, nested under the parent); record its val loss.

    A failed trial is recorded with its error and the sweep goes on with the others.
    """
    from loraflow.flows.finetune import finetune

    logger = get_run_logger()
    record = {**trial, "mlflow_run_id": None, "val_loss": None}
    try:
        result = finetune(config=sweeps.trial_config(config, trial["overrides"]), input_path=input_path,
                          out_dir=trial["out_dir"])
    except Exception as error:  # noqa: BLE001 - one broken trial must not stop the sweep
        logger.warning("sweep trial %s failed: %s", trial["name"], error)
        return {**record, "error": f"{type(error).__name__}: {error}"[:500]}
    record["mlflow_run_id"] = result["mlflow_run_id"]
    record["val_loss"] = sweeps.best_val_loss(trial["out_dir"])
    outcome = result.get("outcome") or {}
    record["success_metric"] = {"name": outcome.get("success_metric"), "value": outcome.get("candidate")}
    # MLflow nests a run under the run named by this tag (the UI shows it as a child).
    tracking.set_tags(result["mlflow_tracking_uri"], result["mlflow_run_id"],
                      {"mlflow.parentRunId": parent["run_id"], "loraflow.sweep.trial": trial["name"],
                       "loraflow.sweep.overrides": " ".join(trial["overrides"])})
    if record["val_loss"] is not None:
        tracking.log_metrics(parent["tracking_uri"], parent["run_id"], {"trial_val_loss": record["val_loss"]}, step=index)
    logger.info("sweep trial %s: val loss %s", trial["name"], record["val_loss"])
    return record


@task(name="finish-sweep", cache_policy=NO_CACHE)
def finish_sweep(parent: dict, trials: list[dict], grid: dict[str, list[str]], out_dir: str) -> dict:
    """Pick the best trial by val loss, write DIR/sweep.json, tag and close the parent run."""
    best = sweeps.pick_best(trials)
    summary_path = sweeps.write_summary(out_dir, trials, best, grid)
    markdown = sweeps.render_summary(trials, best)
    tags = {"loraflow.sweep.trials": str(len(trials)), "loraflow.sweep.failed": str(sum("error" in t for t in trials))}
    if best:
        tags.update({"best.trial": best["name"], "best.overrides": " ".join(best["overrides"]),
                     "best.mlflow_run_id": best["mlflow_run_id"]})
        tracking.log_metrics(parent["tracking_uri"], parent["run_id"], {"best_val_loss": best["val_loss"]})
    tracking.set_tags(parent["tracking_uri"], parent["run_id"], tags)
    tracking.log_artifacts(parent["tracking_uri"], parent["run_id"], summary_path)
    create_markdown_artifact(key="sweep-summary", markdown=markdown, description="Sweep trials by validation loss")
    tracking.finish_run(parent["tracking_uri"], parent["run_id"], "FINISHED" if best else "FAILED")
    get_run_logger().info("sweep best: %s", best["name"] if best else "none (no trial logged a val loss)")
    return {"parent_run_id": parent["run_id"], "tracking_uri": parent["tracking_uri"], "best": best, "trials": trials,
            "summary": str(summary_path)}
