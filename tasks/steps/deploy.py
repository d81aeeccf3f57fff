"""Prefect wrappers for deployment: find the champion, merge with a parity check and register, build quantised variants,
move the champion alias by hand (promote, roll back)."""
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from loraflow.schemas.run_folder import RunFolder
from loraflow.schemas.config import DeployConfig, EvalConfig, TaskCard
from loraflow.schemas.results import (AliasMove, Champion, PromotionDecision, QuantizedVariant, RegisteredModel, TrackingRun,
                                      TrainingResult)
from loraflow.tasks.steps import not_user_error
from loraflow.tasks.tracking import runs as tracking

REGISTRY_TASK = dict(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5, retry_condition_fn=not_user_error)


@task(name="find-champion", **REGISTRY_TASK)
def find_champion(config: DeployConfig, task_name: str, tracking_uri: str) -> Champion | None:
    """The current champion (name, version, local folder downloaded once), or None when there is none yet."""
    from loraflow.tasks.deploy.registry import find_champion as champion_of
    from loraflow.tasks.deploy.release import registered_model_name

    name = registered_model_name(config, task_name)
    champion = champion_of(name, tracking_uri=tracking_uri)
    if champion is None:
        get_run_logger().info("no champion registered for %s yet", name)
    else:
        get_run_logger().info("champion: %s version %s (%s)", name, champion.version, champion.path)
    return champion


@task(name="merge-and-register", cache_policy=NO_CACHE, retries=1, retry_condition_fn=not_user_error)
def merge_and_register(base_model_path: str, trained: TrainingResult, test_path: str, config: DeployConfig, task_card: TaskCard,
                       decision: PromotionDecision, data_hash: str, metrics: dict, out_dir: str,
                       run: TrackingRun) -> RegisteredModel | None:
    """Merge the adapter (parity-checked), register the candidate as challenger, promote it when the gate says so."""
    from loraflow.tasks.deploy.merge import PARITY_REPORT
    from loraflow.tasks.deploy.release import release_candidate

    registered = release_candidate(base_model_path, trained, test_path, config, task_card, decision, data_hash, metrics,
                                   out_dir, run)
    if registered and registered.parity is not None:
        tracking.log_metrics(run, {f"merge.{k}": v for k, v in registered.parity.items()})
        tracking.log_artifacts(run, RunFolder(out_dir).model / PARITY_REPORT, "model")
    if registered:
        get_run_logger().info("registered %s version %s (aliases: %s)", registered.name, registered.version,
                              ", ".join(registered.aliases) or "none")
    return registered


@task(name="quantize-variants", cache_policy=NO_CACHE)
def quantize_variants(registered: RegisteredModel | None, trained: TrainingResult, test_path: str, config: DeployConfig,
                      eval_config: EvalConfig, task_card: TaskCard, candidate_metrics: dict, out_dir: str,
                      run: TrackingRun) -> list[QuantizedVariant]:
    """Build each configured INT8/INT4/GGUF variant of the merged model, evaluate it on the test set, gate its metric drop."""
    from loraflow.tasks.deploy.variants import build_variants, variant_metrics, variant_source

    if not (config.quantize or config.gguf):
        get_run_logger().info("quantised variants: none configured (deploy.quantize, deploy.gguf), nothing built")
        return []
    model_path = variant_source(registered, trained)
    if model_path is None:
        get_run_logger().warning("deploy.quantize needs a merged model: set deploy.merge and deploy.register_model")
        return []
    variants = build_variants(model_path, test_path, config, eval_config, task_card, candidate_metrics, out_dir)
    tracking.log_metrics(run, variant_metrics(variants, task_card.success_metric.metric))
    if variants:
        tracking.log_artifacts(run, RunFolder(out_dir).model / "variants.json", "model")
    return variants


def _record(event: AliasMove) -> AliasMove:
    get_run_logger().info("%s: %s champion is now version %s (was %s): %s", event.action, event.name, event.version,
                          event.previous, event.reason)
    create_markdown_artifact(key=f"champion-{event.action}", description="Champion alias moved", markdown=(
        f"**{event.action}** `{event.name}`: champion v{event.previous} → **v{event.version}** at {event.at}\n\n"
        f"Reason: {event.reason}"))
    return event


@task(name="promote-version", **REGISTRY_TASK)
def promote_version(model_name: str | None, version: str, reason: str, tracking_uri: str | None) -> AliasMove:
    """Point the champion alias at a registered version (model_name None: the only registered model)."""
    from loraflow.tasks.deploy.registry import only_model_name, promote

    name = model_name or only_model_name(tracking_uri=tracking_uri)
    return _record(promote(name, version, reason, tracking_uri=tracking_uri))


@task(name="rollback-champion", **REGISTRY_TASK)
def rollback_champion(model_name: str | None, to_version: str | None, reason: str, tracking_uri: str | None) -> AliasMove:
    """Move the champion alias back to to_version, or to the champion before the current one."""
    from loraflow.tasks.deploy.registry import only_model_name, rollback

    name = model_name or only_model_name(tracking_uri=tracking_uri)
    return _record(rollback(name, to_version, reason, tracking_uri=tracking_uri))
