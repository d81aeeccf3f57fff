"""Prefect wrappers for evaluation: generate and score per model, compare, analyse badcases, decide promotion."""
import json
from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from loraflow.schemas.config import EvalConfig, JudgeConfig, TaskCard
from loraflow.tasks.tracking import runs as tracking
from loraflow.tasks.evaluation.evaluate import evaluation_table
from loraflow.tasks.steps import not_user_error


@task(name="evaluate-model", task_run_name="evaluate-{label}", cache_policy=NO_CACHE)
def evaluate(label: str, model_path: str, adapter_path: str | None, test_path: str, config: EvalConfig,
             task_card: TaskCard, out_dir: str) -> dict:
    """Batched greedy generation on the test split and per-example scores for one model."""
    from loraflow.tasks.evaluation.evaluate import evaluate_model

    get_run_logger().info("stage: evaluate %s", label)
    return evaluate_model(model_path, adapter_path, test_path, config, task_card, out_dir, label)


@task(name="score-baselines", cache_policy=NO_CACHE)
def baselines(train_path: str, test_path: str, config: EvalConfig, task_card: TaskCard, out_dir: str) -> dict[str, dict]:
    """Score the trivial predictors (majority class, stratified random per answer field) on the test set."""
    from loraflow.tasks.evaluation.evaluate import evaluate_baselines

    results = evaluate_baselines(train_path, test_path, config, task_card, out_dir)
    get_run_logger().info("stage: baselines %s", ", ".join(results) or "none (answers are not JSON objects)")
    return results


@task(name="compare-and-gate", cache_policy=NO_CACHE)
def compare_and_gate(results: dict[str, dict], train_path: str, tokenizer_path: str, task_card: TaskCard,
                     config: EvalConfig, out_dir: str, run: dict, preference: dict | None = None) -> dict:
    """Compare candidate with base and champion, analyse badcases, apply the promotion gate; log it all."""
    from loraflow.tasks.evaluation.badcases import analyse_badcases
    from loraflow.tasks.evaluation.evaluate import summarize_evaluation
    from loraflow.tasks.evaluation.promotion import should_promote

    summary = summarize_evaluation(results, task_card, config, out_dir)
    if preference:  # held-out preference accuracy per model: the gate checks it beside the task metric
        summary["preference"] = preference
        summary["mlflow_metrics"].update(preference["mlflow_metrics"])
    badcases = analyse_badcases(summary["paths"]["predictions"], train_path, task_card, config.badcases, out_dir, tokenizer_path)
    decision = should_promote(summary, task_card, config)
    decision_dict = {"promote": decision.promote, "reasons": decision.reasons}
    promotion_path = Path(out_dir) / "eval" / "promotion.json"
    promotion_path.write_text(json.dumps(decision_dict, indent=2, ensure_ascii=False))

    uri, run_id = run["tracking_uri"], run["run_id"]
    tracking.log_metrics(uri, run_id, summary["mlflow_metrics"])
    tracking.log_artifacts(uri, run_id, Path(out_dir) / "eval", "eval")
    tracking.set_tags(uri, run_id, {"promotion.decision": "promote" if decision.promote else "keep",
                                    "promotion.reasons": "\n".join(decision.reasons)})
    metric = task_card.success_metric.metric
    create_table_artifact(key="evaluation", table=evaluation_table(summary, metric),
                          description=f"Success metric {metric} and every answer field's scores on the test split, per model and trivial baseline")
    create_markdown_artifact(key="promotion-decision", description="Promotion gate",
                             markdown=f"**{'PROMOTE' if decision.promote else 'KEEP CHAMPION'}**\n\n" + "\n".join(f"- {r}" for r in decision.reasons))
    get_run_logger().info("promotion gate: %s", "promote" if decision.promote else "keep champion")
    return {"summary_path": summary["paths"]["metrics"], "summary": summary, "decision": decision_dict, "badcases": badcases}


@task(name="eval-report", cache_policy=NO_CACHE)
def eval_report(out_dir: str, run: dict) -> str:
    """The self-contained HTML evaluation report, logged to MLflow and linked from Prefect."""
    from loraflow.tasks.evaluation.report import write_eval_report

    path = write_eval_report(out_dir)
    tracking.log_artifacts(run["tracking_uri"], run["run_id"], path, "eval")
    from loraflow.tasks.tracking.links import markdown_link, mlflow_run_url

    url = mlflow_run_url(run["tracking_uri"], run.get("experiment_id", ""), run["run_id"], "artifacts/eval/report.html")
    create_markdown_artifact(key="evaluation-report", markdown="Evaluation report: " + markdown_link("report.html", url, path),
                             description="HTML report (per answer field, baselines, slices, training, worst cases)")
    return path


@task(name="llm-judge", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=10, retry_condition_fn=not_user_error)
def judge(out_dir: str, config: JudgeConfig) -> dict | None:
    """Score the candidate's answers on the five rubric dimensions through an OpenAI-compatible judge (off by default)."""
    from loraflow.tasks.evaluation.llm_judge import judge_from_config

    if config.enabled:
        get_run_logger().info("stage: LLM-as-judge (%s)", config.model)
    return judge_from_config(out_dir, config)
