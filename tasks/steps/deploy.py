"""Prefect wrappers for deployment: find the champion, merge with a parity check, register, promote."""
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from loraflow.schemas.config import DeployConfig, EvalConfig, TaskCard
from loraflow.tasks.tracking import runs as tracking
from loraflow.tasks.common.jsonl import iter_jsonl
from loraflow.tasks.steps import not_user_error


def _registry_name(config: DeployConfig, task_name: str) -> str:
    return config.registered_model_name or task_name


@task(name="find-champion", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5, retry_condition_fn=not_user_error)
def find_champion(config: DeployConfig, task_name: str, run: dict) -> str | None:
    """Local folder of the current champion model, or None when there is none yet."""
    from loraflow.tasks.deploy.registry import champion_version, resolve_model

    name = _registry_name(config, task_name)
    version = champion_version(name, tracking_uri=run["tracking_uri"])
    if version is None:
        get_run_logger().info("no champion registered for %s yet", name)
        return None
    get_run_logger().info("champion: %s version %s", name, version)
    return resolve_model(f"models:/{name}@champion", tracking_uri=run["tracking_uri"])


@task(name="merge-and-register", cache_policy=NO_CACHE, retries=1, retry_condition_fn=not_user_error)
def merge_and_register(base_model_path: str, trained: dict, test_path: str, config: DeployConfig, task_card: TaskCard,
                       decision: dict, data_hash: str, metrics: dict, out_dir: str, run: dict) -> dict | None:
    """Merge the adapter (parity-checked), register the candidate as challenger, promote it when the gate says so."""
    from loraflow.tasks.deploy.merge import PARITY_REPORT, merge_adapter
    from loraflow.tasks.deploy.model_card import model_card_markdown, version_description
    from loraflow.tasks.deploy.registry import promote, register_model, version_aliases

    if not config.register_model:
        return None
    model_path = trained["model_path"]
    if trained["adapter_path"] and config.merge:
        prompts = [r["messages"][:-1] for _, r in zip(range(config.parity_prompts), iter_jsonl(test_path))]
        merged = merge_adapter(base_model_path, trained["adapter_path"], out_dir, trained["method"], prompts,
                               config.parity_tolerance, dtype=config.merge_dtype, tolerance_16bit=config.parity_tolerance_16bit,
                               max_new_tokens=config.parity_max_new_tokens)
        tracking.log_metrics(run["tracking_uri"], run["run_id"], {f"merge.{k}": v for k, v in merged["parity"].items()})
        tracking.log_artifacts(run["tracking_uri"], run["run_id"], Path(out_dir) / PARITY_REPORT, "model")
        model_path = merged["merged_path"]
    name = _registry_name(config, task_card.name)
    tags = {"data.hash": data_hash, "mlflow.run_id": run["run_id"], "train.method": trained["method"],
            **{f"metric.{k}": f"{v:.6g}" for k, v in metrics.items() if isinstance(v, (int, float))}}
    card_args = (task_card, data_hash, metrics, decision, run["run_id"])
    registered = {**register_model(model_path, run["run_id"], name, tags, tracking_uri=run["tracking_uri"],
                                   description=version_description(*card_args), model_card=model_card_markdown(*card_args)),
                  "merged_path": model_path}
    if decision["promote"] and config.auto_promote:
        promote(name, registered["version"], "promotion gate passed: " + "; ".join(decision["reasons"]), tracking_uri=run["tracking_uri"])
    # What run.json says must be what the registry holds: promotion moves `challenger` away from this version.
    aliases = version_aliases(name, registered["version"], tracking_uri=run["tracking_uri"])
    registered.pop("challenger_uri", None)
    registered.update(aliases=aliases, alias=aliases[0] if aliases else None,
                      alias_uris={alias: f"models:/{name}@{alias}" for alias in aliases})
    get_run_logger().info("registered %s version %s (aliases: %s)", name, registered["version"], ", ".join(aliases) or "none")
    return registered


@task(name="quantize-variants", cache_policy=NO_CACHE)
def quantize_variants(registered: dict | None, trained: dict, test_path: str, config: DeployConfig, eval_config: EvalConfig,
                      task_card: TaskCard, candidate_metrics: dict, out_dir: str, run: dict) -> list[dict]:
    """Build each configured INT8/INT4/GGUF variant of the merged model, evaluate it on the test set, gate its metric drop."""
    import json

    if not (config.quantize or config.gguf):
        return []
    model_path = (registered or {}).get("merged_path") or (None if trained["adapter_path"] else trained["model_path"])
    if model_path is None:
        get_run_logger().warning("deploy.quantize needs a merged model: set deploy.merge and deploy.register_model")
        return []

    from loraflow.tasks.evaluation.evaluate import evaluate_model
    from loraflow.tasks.deploy.quantize import quantize_model, variant_size_gate

    metric = task_card.success_metric
    variants = []
    for bits in [*config.quantize, *(f"gguf-{kind}" for kind in config.gguf)]:
        get_run_logger().info("stage: quantize %s", bits)
        built = quantize_model(model_path, out_dir, bits)
        result = evaluate_model(built["path"], None, test_path, eval_config, task_card, out_dir, f"variant-{bits}")
        gate = variant_size_gate(candidate_metrics[metric.metric], result["metrics"][metric.metric], config.quantize_tolerance,
                                 metric.higher_is_better)
        variants.append({"bits": bits, "path": built["path"], "size_bytes": built["size_bytes"], "metrics": result["metrics"], "gate": gate})
        tracking.log_metrics(run["tracking_uri"], run["run_id"], {
            f"variant.{bits}.size_mb": built["size_bytes"] / 1e6, f"variant.{bits}.{metric.metric}": result["metrics"][metric.metric],
            f"variant.{bits}.drop": gate["drop"], f"variant.{bits}.gate_passed": float(gate["passed"])})
        if not gate["passed"]:
            get_run_logger().warning("variant %s drops %s by %.4f (> deploy.quantize_tolerance %.4f): not for serving",
                                     bits, metric.metric, gate["drop"], config.quantize_tolerance)
    if variants:
        path = Path(out_dir) / "model" / "variants.json"
        path.write_text(json.dumps(variants, indent=2))
        tracking.log_artifacts(run["tracking_uri"], run["run_id"], path, "model")
    return variants
