"""Prefect wrappers for planning: the config every flow runs with, and the resource estimate (the first step of a
run, stopping early when training cannot fit)."""
import json
from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from loraflow.schemas.run_folder import RunFolder
from loraflow.schemas.config import PipelineConfig, TrainConfig
from loraflow.schemas.results import TrackingRun
from loraflow.tasks.tracking import runs as tracking


@task(name="load-pipeline-config", cache_policy=NO_CACHE)
def load_pipeline_config(config_path: str, overrides: list[str]) -> PipelineConfig:
    """Read the pipeline YAML with `key=value` overrides (paths in it resolve against the file); log guide warnings."""
    from loraflow.tasks.common import config_files

    config, warnings = config_files.load_pipeline_config(config_path, overrides)
    for warning in warnings:
        get_run_logger().warning("config: %s", warning)
    return config


@task(name="estimate-resources", cache_policy=NO_CACHE)
def estimate_resources(config: PipelineConfig, input_path: str | None, out_dir: str, run: TrackingRun) -> TrainConfig:
    """Estimate GPU memory, time and disk; fail before any work when it cannot fit; return the train config in force.

    With `train.method: auto` the returned config names the method the estimate chose.
    """
    from loraflow.tasks.common.config_files import with_input
    from loraflow.tasks.planning.estimate import require_fit
    from loraflow.tasks.planning.estimate_config import estimate_for_config

    found = estimate_for_config(with_input(config, input_path))
    data = found.to_dict()
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    (RunFolder(out_dir).estimate_json).write_text(json.dumps(data, indent=2))
    tracking.log_artifacts(run, RunFolder(out_dir).estimate_json)
    summary = {k: data[k] for k in ("peak_gpu_memory_gib", "train_hours", "disk_gib")}
    tracking.log_metrics(run, {f"estimate.{k}": v for k, v in summary.items()})
    tracking.set_tags(run, {"estimate.method": found.method})
    create_markdown_artifact(key="resource-estimate", description="Resources needed before anything runs", markdown=(
        f"| method | peak GPU GiB | train hours | disk GiB |\n|---|---|---|---|\n"
        f"| {found.method} | {found.peak_gpu_memory_gib:.2f} | {found.train_hours:.3f} | {found.disk_gib:.2f} |\n\n"
        + "\n".join(f"- {note}" for note in found.notes)))
    get_run_logger().info("estimate: %s, peak %.2f GiB, %.3f h, disk %.2f GiB", found.method,
                          found.peak_gpu_memory_gib, found.train_hours, found.disk_gib)
    require_fit(found)
    return config.train.model_copy(update={"method": found.method})


@task(name="plan-schedule", cache_policy=NO_CACHE)
def plan_schedule(train: TrainConfig, train_path: str, fields: dict, run: TrackingRun) -> TrainConfig:
    """train.schedule auto: epochs, batch and learning rate from the training records and declared classes."""
    from loraflow.tasks.common.jsonl import iter_jsonl
    from loraflow.tasks.planning.schedule import declared_classes, resolve_schedule

    n_train = sum(1 for _ in iter_jsonl(train_path))
    resolved, note = resolve_schedule(train, n_train, declared_classes(fields))
    get_run_logger().info("schedule: %s", note)
    # Tags, not params: the config's params were logged at the start and MLflow refuses to change a param.
    tracking.set_tags(run, {"train.schedule": note[:5000], **{f"train.resolved.{k}": str(v) for k, v in (
        ("epochs", resolved.epochs), ("effective_batch_size", resolved.effective_batch_size),
        ("micro_batch_size", resolved.micro_batch_size), ("learning_rate", resolved.resolved_learning_rate))}})
    return resolved
