"""The main pipeline: data -> train -> evaluate (base, candidate, champion) -> gate -> register/promote."""
from prefect import flow

from flows.data import prepare_data
from schemas.config import PipelineConfig
from tasks.steps import deploy, evaluation, lineage, plan, preference, tracking, training


@flow(name="finetune")
def finetune(config: PipelineConfig, input_path: str | None = None, out_dir: str = "runs/latest",
             model_cache_dir: str | None = None) -> dict:
    """Fine-tune, evaluate and register a model from a raw instruction file, tracked in one MLflow run."""
    run = tracking.start_tracking(config, out_dir)
    train_config = plan.estimate(config, input_path, out_dir, run)
    data = prepare_data(config, input_path, out_dir, model_cache_dir)
    splits, base_model = data["splits"], data["base_model"]
    data_hash = tracking.log_data(run, splits, data["report"], config.task_card.name)

    trained = training.train(base_model, splits, config.lora, train_config, config.model.max_length, out_dir, run)

    results = {"candidate": evaluation.evaluate("candidate", trained["model_path"], trained["adapter_path"],
                                                splits["test"], config.eval, config.task_card, out_dir)}
    if config.eval.compare_base:
        results["base"] = evaluation.evaluate("base", base_model, None, splits["test"], config.eval, config.task_card, out_dir)
    results.update(evaluation.baselines(splits["train"], splits["test"], config.eval, config.task_card, out_dir))
    champion = deploy.find_champion(config.deploy, config.task_card.name, run)
    if champion:
        results["champion"] = evaluation.evaluate("champion", champion, None, splits["test"], config.eval, config.task_card, out_dir)
    # Preference data: does each model score the chosen answer above the rejected one (None for supervised data).
    preferred = preference.preference_accuracy({"candidate": (trained["model_path"], trained["adapter_path"]),
                                                "base": (base_model, None) if config.eval.compare_base else None,
                                                "champion": (champion, None) if champion else None}, splits["test"], out_dir)
    gate = evaluation.compare_and_gate(results, splits["train"], base_model, config.task_card, config.eval, out_dir, run,
                                       preferred)
    evaluation.judge(out_dir, config.judge)
    evaluation.eval_report(out_dir, run)

    registered = deploy.merge_and_register(base_model, trained, splits["test"], config.deploy, config.task_card.name,
                                           gate["decision"], data_hash, results["candidate"]["metrics"], out_dir, run)
    deploy.quantize_variants(registered, trained, splits["test"], config.deploy, config.eval, config.task_card,
                             results["candidate"]["metrics"], out_dir, run)
    lineage.seed(config.task_card.name, out_dir, run)  # the first run's data becomes v1 of the dataset lineage
    return tracking.finish_tracking(run, out_dir, config.task_card, gate["summary"], gate["decision"], registered, trained)
