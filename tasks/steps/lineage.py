"""Prefect wrappers for the dataset lineage: seed it from a finetune run, prepare and commit a version grown from feedback."""
from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from loraflow.schemas.config import PipelineConfig


@task(name="seed-lineage", cache_policy=NO_CACHE)
def seed(task_name: str, out_dir: str, run: dict, lineage_dir: str | None = None) -> dict | None:
    """Make this run's data version v1 of the task's lineage when the lineage is still empty (later runs leave it)."""
    from loraflow.tasks.data.lineage import lineage_root, seed_lineage

    root = lineage_root(task_name, lineage_dir)
    seeded = seed_lineage(root, Path(out_dir) / "data", {"run_dir": str(Path(out_dir).resolve()), "mlflow_run_id": run["run_id"]})
    if seeded:
        get_run_logger().info("dataset lineage seeded: %s (content hash %s)", seeded["dir"], seeded["content_hash"][:12])
    return seeded


@task(name="prepare-lineage-version", cache_policy=NO_CACHE)
def prepare(task_name: str, lineage_dir: str | None, exported: dict, eval_share: float, pairs: bool = False) -> dict:
    """Start the next dataset version: the parent's train/val plus the batch's corrections (an eval share held out).

    pairs: a preference objective trains on the batch's preference pairs instead of its supervised records.
    """
    from loraflow.tasks.data.lineage import lineage_root, prepare_version

    feedback_path = exported["pairs_path"] if pairs else exported["records_path"]
    prepared = prepare_version(lineage_root(task_name, lineage_dir), feedback_path, exported["batch_id"], eval_share,
                               exported.get("relabel_path"))
    ids = prepared["feedback_ids"]
    get_run_logger().info("lineage v%s from v%s: %d feedback %s offered for training, %d held out for feedback eval",
                          prepared["version"], prepared["parent"], len(ids["train"]), "pairs" if pairs else "records",
                          len(ids["eval"]))
    return prepared


@task(name="config-for-lineage-version", cache_policy=NO_CACHE)
def config_for_version(config: PipelineConfig, prepared: dict) -> PipelineConfig:
    """The pipeline config that trains on a prepared version: its input file, and the lineage's frozen test set kept."""
    data = config.data.model_copy(update={"path": prepared["input_path"], "pilot": None})
    split = config.split.model_copy(update={"frozen_test": prepared["frozen_test"]})
    return config.model_copy(update={"data": data, "split": split})


@task(name="commit-lineage-version", cache_policy=NO_CACHE)
def commit(prepared: dict, run_dir: str, result: dict) -> dict:
    """Copy the data stages' output (run_dir/data) into the prepared version; record which feedback ids reached training."""
    from loraflow.tasks.data.lineage import commit_version

    committed = commit_version(prepared, Path(run_dir) / "data", {"run_dir": str(run_dir), "mlflow_run_id": result["mlflow_run_id"]})
    ids = committed["feedback_ids"]
    create_markdown_artifact(key="dataset-lineage", description="The dataset version this retrain produced", markdown=(
        f"Lineage **v{committed['version']}** (parent v{committed['parent']}), content hash `{committed['content_hash'][:16]}`\n\n"
        f"| split | records |\n|---|---|\n" + "".join(f"| {k} | {v} |\n" for k, v in committed["counts"].items()) +
        f"\nFeedback of batch `{committed['batch_id']}`: {len(ids['trained'])} trained, {len(ids['dropped'])} dropped by the data "
        f"stages (duplicates, quarantine, test leakage), {len(ids['eval'])} held out; {len(committed['superseded'])} older records "
        f"superseded by corrections.\n\nFolder: `{committed['dir']}`"))
    return committed


@task(name="lineage-sets", cache_policy=NO_CACHE)
def evaluation_sets(task_name: str, lineage_dir: str | None, test_path: str | None) -> dict:
    """The frozen test set (test_path, else the lineage's) and the lineage's held-out feedback-eval set (None if empty)."""
    from loraflow.tasks.common.errors import LoraflowError
    from loraflow.tasks.data.lineage import EVAL_FILE, latest_version, lineage_root

    root = lineage_root(task_name, lineage_dir)
    latest = latest_version(root)
    if test_path is None and latest is None:
        raise LoraflowError(f"no frozen test set: the lineage {root} is empty; run the pipeline once to seed it or pass test_path.")
    feedback_eval = Path(latest["dir"]) / EVAL_FILE if latest else None
    has_eval = feedback_eval is not None and feedback_eval.is_file() and feedback_eval.stat().st_size > 0
    return {"test": test_path or str(Path(latest["dir"]) / "test.jsonl"), "feedback_eval": str(feedback_eval) if has_eval else None,
            "lineage_version": latest["version"] if latest else None}
