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
    run = tracking.start_tracking(config=config, out_dir=out_dir)
    train_config = planning.estimate_resources(config=config, input_path=input_path, out_dir=out_dir, run=run)
    data = subflow_result(prepare_data(config=config, input_path=input_path, out_dir=out_dir, model_cache_dir=model_cache_dir))
    splits, base_model = data.splits, data.base_model
    data_hash = tracking.log_data(run=run, splits=splits, report=data.report, dataset_name=config.task_card.name)
    train_config = planning.plan_schedule(train=train_config, train_path=splits.train, fields=config.task_card.fields, run=run)

    trained = training.train(model_path=base_model, splits=splits, lora=config.lora, config=train_config,
                             max_length=data.max_length, out_dir=out_dir, run=run, task_card=config.task_card,
                             judge=config.judge)

    def evaluate_on_test(label: str, model_path: str, adapter_path: str | None = None):
        return evaluation.evaluate_model(label=label, model_path=model_path, adapter_path=adapter_path, test_path=splits.test,
                                         config=config.eval, task_card=config.task_card, out_dir=out_dir)

    results = {"candidate": evaluate_on_test("candidate", trained.model_path, trained.adapter_path)}
    if config.eval.compare_base:
        results["base"] = evaluate_on_test("base", base_model)
    results.update(evaluation.score_baselines(train_path=splits.train, test_path=splits.test, config=config.eval,
                                              task_card=config.task_card, out_dir=out_dir))
    champion = deploy.find_champion(config=config.deploy, task_name=config.task_card.name, tracking_uri=run.tracking_uri)
    if champion:
        results["champion"] = evaluate_on_test("champion", champion.path)
    # Preference data: does each model score the chosen answer above the rejected one (None for supervised data).
    preferred = evaluation.preference_accuracy(models={"candidate": (trained.model_path, trained.adapter_path),
                                                       "base": (base_model, None) if config.eval.compare_base else None,
                                                       "champion": (champion.path, None) if champion else None},
                                               test_path=splits.test, out_dir=out_dir)
    gate = evaluation.compare_and_gate(results=results, train_path=splits.train, tokenizer_path=base_model,
                                       task_card=config.task_card, config=config.eval, out_dir=out_dir, run=run,
                                       preference=preferred, rewards=train_config.grpo_rewards)
    evaluation.llm_judge(out_dir=out_dir, config=config.judge)
    evaluation.eval_report(out_dir=out_dir, run=run)

    registered = deploy.merge_and_register(base_model_path=base_model, trained=trained, test_path=splits.test,
                                           config=config.deploy, task_card=config.task_card, decision=gate.decision,
                                           data_hash=data_hash, metrics=results["candidate"].metrics, out_dir=out_dir, run=run)
    deploy.quantize_variants(registered=registered, trained=trained, test_path=splits.test, config=config.deploy,
                             eval_config=config.eval, task_card=config.task_card,
                             candidate_metrics=results["candidate"].metrics, out_dir=out_dir, run=run)
    # The first run's data becomes v1 of the dataset lineage.
    feedback.seed_lineage(task_name=config.task_card.name, out_dir=out_dir, run=run)
    return tracking.finish_tracking(run=run, out_dir=out_dir, task_card=config.task_card, summary=gate.summary,
                                    decision=gate.decision, registered=registered, trained=trained).index


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
    config = planning.load_pipeline_config(config_path, [*chosen, *overrides])
    return finetune.fn(config=config, input_path=input_path or None, out_dir=out_dir)
