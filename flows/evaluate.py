"""Evaluate one model (run folder, model folder or registry URI) on a test file, against the task card."""
from prefect import flow

from loraflow.flows import DEFAULT_CONFIG, DEPLOYED_RUN
from loraflow.schemas.config import PipelineConfig
from loraflow.tasks.steps import evaluation, planning


@flow(name="evaluate")
def evaluate(config: PipelineConfig, model: str, test_path: str | None = None, out_dir: str = "runs/evaluate") -> dict:
    """Generate and score on the test set; report the task card's success metric against its threshold.

    Args:
        config: the pipeline config whose task card and eval section apply.
        model: a run folder, a model or adapter folder, or models:/NAME@champion / models:/NAME/VERSION.
        test_path: test file in canonical JSON Lines; default the run folder's data/test.jsonl, else the lineage's frozen test set.
        out_dir: folder for eval/predictions_model.jsonl and eval/metrics_model.json.
    """
    target = evaluation.resolve_eval_target(model=model, test_path=test_path, config=config)
    result = evaluation.evaluate_model(label="model", model_path=target.model_path, adapter_path=target.adapter_path,
                                       test_path=target.test_path, config=config.eval, task_card=config.task_card,
                                       out_dir=out_dir)
    return evaluation.evaluation_summary(result=result, config=config, out_dir=out_dir).to_dict()


@flow(name="evaluate")
def evaluate_from_file(model: str = DEPLOYED_RUN, config_path: str = DEFAULT_CONFIG, test_path: str = "",
                       out_dir: str = "runs/evaluate", overrides: list[str] = []) -> dict:  # noqa: B006 (never mutated)
    """The evaluate deployment's Run form: which model, the config whose task card applies, and where to write.

    Args:
        model: A run folder, a model or adapter folder, or models:/NAME@champion / models:/NAME/VERSION; by default the finetune deployment's run folder (run finetune once first).
        config_path: Pipeline YAML whose task card and eval section apply, relative to the repository root; the bundled quickstart example by default.
        test_path: Test file in canonical JSON Lines; empty: the run folder's data/test.jsonl, else the dataset lineage's frozen test set.
        out_dir: Folder for eval/predictions_model.jsonl and eval/metrics_model.json, relative to the repository root.
        overrides: Any other setting as dotted.key=value, e.g. eval.max_samples=50 or eval.batch_size=8.
    """
    config = planning.load_pipeline_config(config_path, overrides)
    return evaluate.fn(config=config, model=model, test_path=test_path or None, out_dir=out_dir)
