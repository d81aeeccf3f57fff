"""Prefect wrappers for deployment: find the champion, merge with a parity check, register, promote."""
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from schemas.config import DeployConfig
from tasks import tracking
from tasks.jsonl import iter_jsonl
from tasks.steps import not_user_error


def _registry_name(config: DeployConfig, task_name: str) -> str:
    return config.registered_model_name or task_name


@task(name="find-champion", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5, retry_condition_fn=not_user_error)
def find_champion(config: DeployConfig, task_name: str, run: dict) -> str | None:
    """Local folder of the current champion model, or None when there is none yet."""
    from tasks.registry import champion_version, resolve_model

    name = _registry_name(config, task_name)
    version = champion_version(name, tracking_uri=run["tracking_uri"])
    if version is None:
        get_run_logger().info("no champion registered for %s yet", name)
        return None
    get_run_logger().info("champion: %s version %s", name, version)
    return resolve_model(f"models:/{name}@champion", tracking_uri=run["tracking_uri"])


@task(name="merge-and-register", cache_policy=NO_CACHE, retries=1, retry_condition_fn=not_user_error)
def merge_and_register(base_model_path: str, trained: dict, test_path: str, config: DeployConfig, task_name: str,
                       decision: dict, data_hash: str, metrics: dict, out_dir: str, run: dict) -> dict | None:
    """Merge the adapter (parity-checked), register the candidate as challenger, promote it when the gate says so."""
    from tasks.merge import merge_adapter
    from tasks.registry import promote, register_model

    if not config.register_model:
        return None
    model_path = trained["model_path"]
    if trained["adapter_path"] and config.merge:
        prompts = [r["messages"][:-1] for _, r in zip(range(4), iter_jsonl(test_path))]
        merged = merge_adapter(base_model_path, trained["adapter_path"], out_dir, trained["method"], prompts, config.parity_tolerance)
        tracking.log_metrics(run["tracking_uri"], run["run_id"], {f"merge.{k}": v for k, v in merged["parity"].items()})
        model_path = merged["merged_path"]
    name = _registry_name(config, task_name)
    tags = {"data.hash": data_hash, "mlflow.run_id": run["run_id"], "train.method": trained["method"],
            **{f"metric.{k}": f"{v:.6g}" for k, v in metrics.items() if isinstance(v, (int, float))}}
    registered = {**register_model(model_path, run["run_id"], name, tags, tracking_uri=run["tracking_uri"]), "merged_path": model_path}
    if decision["promote"] and config.auto_promote:
        promote(name, registered["version"], "promotion gate passed: " + "; ".join(decision["reasons"]), tracking_uri=run["tracking_uri"])
        registered["alias"] = "champion"
    get_run_logger().info("registered %s version %s as %s", name, registered["version"], registered.get("alias", "challenger"))
    return registered
