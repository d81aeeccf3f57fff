"""Evaluate one model (run folder, model folder or registry URI) on a test file, against the task card."""
from prefect import flow

from loraflow.schemas.config import PipelineConfig
from loraflow.tasks.steps import evaluation


@flow(name="evaluate")
def evaluate(config: PipelineConfig, model: str, test_path: str | None = None, out_dir: str = "runs/evaluate") -> dict:
    """Generate and score on the test set; report the task card's success metric against its threshold.

    Args:
        config: the pipeline config whose task card and eval section apply.
        model: a run folder, a model or adapter folder, or models:/NAME@champion / models:/NAME/VERSION.
        test_path: test file in canonical JSON Lines; default the run folder's data/test.jsonl, else the lineage's frozen test set.
        out_dir: folder for eval/predictions_model.jsonl and eval/metrics_model.json.
    """
    target = evaluation.resolve_target(model, test_path, config)
    result = evaluation.evaluate("model", target.model_path, target.adapter_path, target.test_path, config.eval,
                                 config.task_card, out_dir)
    return evaluation.evaluation_summary(result, config, out_dir).to_dict()
