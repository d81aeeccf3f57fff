"""The main pipeline: data -> train -> evaluate (base, candidate, champion) -> gate -> register/promote."""
from prefect import flow

from loraflow.flows import DEFAULT_CONFIG, DEPLOYED_RUN, subflow_result
from loraflow.flows.data import prepare_data
from loraflow.schemas.config import PipelineConfig
from loraflow.tasks.steps import deploy, evaluation, feedback, planning, tracking, training


# Every way the flow can end early also ends its MLflow run (FAILED, or KILLED on Ctrl-C, SIGTERM, cancellation).
@flow(name="finetune", on_failure=[tracking.end_mlflow_run], on_crashed=[tracking.end_mlflow_run],
      on_cancellation=[tracking.end_mlflow_run])
def finetune(config: PipelineConfig, input_path: str | None = None, out_dir: str = "runs/latest",
             model_cache_dir: str | None = None) -> dict:
    """Fine-tune, evaluate and register a model from a raw instruction file, tracked in one MLflow run (returns run.json)."""
    run = tracking.start_tracking(config, out_dir)
    train_config = planning.estimate(config, input_path, out_dir, run)
    data = subflow_result(prepare_data(config, input_path, out_dir, model_cache_dir))
    splits, base_model = data.splits, data.base_model
    data_hash = tracking.log_data(run, splits, data.report, config.task_card.name)
    train_config = planning.plan_schedule(train_config, splits.train, config.task_card.fields, run)

    trained = training.train(base_model, splits, config.lora, train_config, data.max_length, out_dir, run,
                             config.task_card, config.judge)

    results = {"candidate": evaluation.evaluate("candidate", trained.model_path, trained.adapter_path, splits.test,
                                                config.eval, config.task_card, out_dir)}
    if config.eval.compare_base:
        results["base"] = evaluation.evaluate("base", base_model, None, splits.test, config.eval, config.task_card, out_dir)
    results.update(evaluation.baselines(splits.train, splits.test, config.eval, config.task_card, out_dir))
    champion = deploy.find_champion(config.deploy, config.task_card.name, run.tracking_uri)
    if champion:
        results["champion"] = evaluation.evaluate("champion", champion.path, None, splits.test, config.eval, config.task_card,
                                                  out_dir)
    # Preference data: does each model score the chosen answer above the rejected one (None for supervised data).
    preferred = evaluation.preference_accuracy({"candidate": (trained.model_path, trained.adapter_path),
                                                "base": (base_model, None) if config.eval.compare_base else None,
                                                "champion": (champion.path, None) if champion else None}, splits.test, out_dir)
    gate = evaluation.compare_and_gate(results, splits.train, base_model, config.task_card, config.eval, out_dir, run,
                                       preferred, train_config.grpo_rewards)
    evaluation.judge(out_dir, config.judge)
    evaluation.eval_report(out_dir, run)

    registered = deploy.merge_and_register(base_model, trained, splits.test, config.deploy, config.task_card,
                                           gate.decision, data_hash, results["candidate"].metrics, out_dir, run)
    deploy.quantize_variants(registered, trained, splits.test, config.deploy, config.eval, config.task_card,
                             results["candidate"].metrics, out_dir, run)
    feedback.seed(config.task_card.name, out_dir, run)  # the first run's data becomes v1 of the dataset lineage
    return tracking.finish_tracking(run, out_dir, config.task_card, gate.summary, gate.decision, registered, trained).index


@flow(name="finetune")
def finetune_from_file(config_path: str = DEFAULT_CONFIG, input_path: str = "", out_dir: str = DEPLOYED_RUN,
                       base_model: str = "", max_steps: int = 0, overrides: list[str] = []) -> dict:  # noqa: B006 (never mutated)
    """The finetune deployment's Run form: a config file plus the settings people change most; no edits runs the example.

    Args:
        config_path: Pipeline YAML, relative to the repository root; the bundled quickstart example by default.
        input_path: Input data file (.jsonl/.json/.csv/.parquet); empty: the config's data.path.
        out_dir: Run folder, relative to the repository root (data/, model/, eval/, run.json).
        base_model: The base model, model.name_or_path (a hub id, a local folder, smollm2-135m-instruct, tiny-random); empty: the config's.
        max_steps: A cap (train.max_steps) on optimizer steps for a quick run; 0: the config's (epochs decide).
        overrides: Any other setting as dotted.key=value, e.g. train.epochs=5 or lora.r=16 (`loraflow config schema` lists every key).
    """
    chosen = [*([f"model.name_or_path={base_model}"] if base_model else []), *([f"train.max_steps={max_steps}"] if max_steps else [])]
    config = feedback.load_pipeline_config(config_path, [*chosen, *overrides])
    return finetune.fn(config, input_path or None, out_dir)
