"""Releasing a candidate: merge its adapter (parity-checked), register it as challenger, promote it when the gate says so."""
import logging

from loraflow.schemas.config import DeployConfig, TaskCard
from loraflow.schemas.results import PromotionDecision, RegisteredModel, TrackingRun, TrainingResult
from loraflow.tasks.common.jsonl import iter_jsonl

logger = logging.getLogger("loraflow.deploy")


def registered_model_name(config: DeployConfig, task_name: str) -> str:
    """The registry name of the task's models: deploy.registered_model_name, else the task card's name."""
    return config.registered_model_name or task_name


def release_candidate(base_model_path: str, trained: TrainingResult, test_path: str, config: DeployConfig,
                      task_card: TaskCard, decision: PromotionDecision, data_hash: str, metrics: dict, out_dir: str,
                      run: TrackingRun) -> RegisteredModel | None:
    """Merge, register and (gate passed, deploy.auto_promote on) promote; None when deploy.register_model is off."""
    from loraflow.tasks.deploy.merge import merge_adapter
    from loraflow.tasks.evaluation.constrained import write_answer_schema
    from loraflow.tasks.deploy.model_card import model_card_markdown, version_description
    from loraflow.tasks.deploy.registry import promote, register_model, version_aliases

    if not config.register_model:
        return None
    model_path, parity = trained.model_path, None
    if trained.adapter_path and config.merge:
        prompts = [r["messages"][:-1] for _, r in zip(range(config.parity_prompts), iter_jsonl(test_path))]
        merged = merge_adapter(base_model_path, trained.adapter_path, out_dir, trained.method, prompts,
                               config.parity_tolerance, dtype=config.merge_dtype, tolerance_16bit=config.parity_tolerance_16bit,
                               max_new_tokens=config.parity_max_new_tokens)
        model_path, parity = merged["merged_path"], merged["parity"]
    if trained.adapter_path is None or config.merge:  # a folder of full weights: the server reads the schema beside them
        write_answer_schema(model_path, task_card.fields)
    name = registered_model_name(config, task_card.name)
    tags = {"data.hash": data_hash, "mlflow.run_id": run.run_id, "train.method": trained.method,
            **{f"metric.{k}": f"{v:.6g}" for k, v in metrics.items() if isinstance(v, (int, float))}}
    card_args = (task_card, data_hash, metrics, decision, run.run_id)
    registered = register_model(model_path, run.run_id, name, tags, tracking_uri=run.tracking_uri,
                                description=version_description(*card_args), model_card=model_card_markdown(*card_args))
    if decision.promote and config.auto_promote:
        promote(name, registered["version"], "promotion gate passed: " + "; ".join(decision.reasons), tracking_uri=run.tracking_uri)
    # What run.json says must be what the registry holds: promotion moves `challenger` away from this version.
    aliases = version_aliases(name, registered["version"], tracking_uri=run.tracking_uri)
    return RegisteredModel(name=name, version=registered["version"], model_uri=registered["model_uri"],
                           source=registered["source"], merged_path=model_path, aliases=aliases,
                           alias=aliases[0] if aliases else None,
                           alias_uris={alias: f"models:/{name}@{alias}" for alias in aliases}, parity=parity)
