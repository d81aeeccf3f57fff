"""Quantised variants of the merged model: build each INT8/INT4/GGUF variant, score it on the test set, gate its drop."""
import json
import logging

from loraflow.schemas.run_folder import RunFolder
from loraflow.schemas.config import DeployConfig, EvalConfig, TaskCard
from loraflow.schemas.results import QuantizedVariant, RegisteredModel, TrainingResult

logger = logging.getLogger("loraflow.deploy")


def variant_source(registered: RegisteredModel | None, trained: TrainingResult) -> str | None:
    """The full model the variants are built from: the merged model, else a fully fine-tuned one; None for a bare adapter."""
    if registered is not None:
        return registered.merged_path
    return None if trained.adapter_path else trained.model_path


def build_variants(model_path: str, test_path: str, config: DeployConfig, eval_config: EvalConfig, task_card: TaskCard,
                   candidate_metrics: dict, out_dir: str) -> list[QuantizedVariant]:
    """Build, evaluate and gate every configured variant; write out_dir/model/variants.json."""
    from loraflow.tasks.deploy.quantize import quantize_model, variant_size_gate
    from loraflow.tasks.evaluation.evaluate import evaluate_model

    metric = task_card.success_metric
    variants = []
    for bits in [*config.quantize, *(f"gguf-{kind}" for kind in config.gguf)]:
        logger.info("stage: quantize %s", bits)
        built = quantize_model(model_path, out_dir, bits)
        result = evaluate_model(built["path"], None, test_path, eval_config, task_card, out_dir, f"variant-{bits}")
        gate = variant_size_gate(candidate_metrics[metric.metric], result.metrics[metric.metric], config.quantize_tolerance,
                                 metric.higher_is_better)
        variants.append(QuantizedVariant(bits=bits, path=built["path"], size_bytes=built["size_bytes"],
                                         metrics=result.metrics, gate=gate))
        if not gate["passed"]:
            logger.warning("variant %s drops %s by %.4f (> deploy.quantize_tolerance %.4f): not for serving",
                           bits, metric.metric, gate["drop"], config.quantize_tolerance)
    if variants:
        path = RunFolder(out_dir).model / "variants.json"
        path.write_text(json.dumps([v.to_dict() for v in variants], indent=2))
    return variants


def variant_metrics(variants: list[QuantizedVariant], metric: str) -> dict[str, float]:
    """What MLflow records per variant: size, the success metric, its drop and whether the gate passed."""
    logged = {}
    for v in variants:
        logged.update({f"variant.{v.bits}.size_mb": v.size_bytes / 1e6, f"variant.{v.bits}.{metric}": v.metrics[metric],
                       f"variant.{v.bits}.drop": v.gate["drop"], f"variant.{v.bits}.gate_passed": float(v.gate["passed"])})
    return logged
