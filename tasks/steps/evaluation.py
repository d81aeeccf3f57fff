"""Prefect wrappers for evaluation: generate and score per model, baselines, preference accuracy, the gate, reports."""
import json

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from loraflow.schemas.run_folder import RunFolder
from loraflow.schemas.config import EvalConfig, JudgeConfig, PipelineConfig, TaskCard
from loraflow.schemas.config.grpo import GrpoConfig
from loraflow.schemas.results import EvaluationTarget, EvaluationVerdict, GateResult, JudgeSummary, ModelEvaluation, PreferenceAccuracy, TrackingRun
from loraflow.tasks.evaluation.evaluate import evaluation_table
from loraflow.tasks.steps import not_user_error
from loraflow.tasks.tracking import runs as tracking
from loraflow.tasks.tracking.headline import gate_verdict


@task(name="evaluate-model", task_run_name="evaluate-{label}", cache_policy=NO_CACHE)
def evaluate_model(label: str, model_path: str, adapter_path: str | None, test_path: str, config: EvalConfig,
                   task_card: TaskCard, out_dir: str) -> ModelEvaluation:
    """Batched greedy generation on the test split and per-example scores for one model."""
    from loraflow.tasks.evaluation import evaluate

    get_run_logger().info("stage: evaluate %s", label)
    return evaluate.evaluate_model(model_path, adapter_path, test_path, config, task_card, out_dir, label)


@task(name="score-baselines", cache_policy=NO_CACHE)
def score_baselines(train_path: str, test_path: str, config: EvalConfig, task_card: TaskCard, out_dir: str) -> dict[str, ModelEvaluation]:
    """Score the trivial predictors (majority class, stratified random per answer field) on the test set."""
    from loraflow.tasks.evaluation.evaluate import evaluate_baselines

    results = evaluate_baselines(train_path, test_path, config, task_card, out_dir)
    get_run_logger().info("stage: baselines %s", ", ".join(results) or "none (answers are not JSON objects)")
    return results


@task(name="preference-accuracy", cache_policy=NO_CACHE)
def preference_accuracy(models: dict[str, tuple[str, str | None] | None], test_path: str, out_dir: str) -> PreferenceAccuracy | None:
    """Score each (model path, adapter path) on the test pairs; None when the test split holds no pairs."""
    from loraflow.tasks.evaluation.preference import preference_summary, score_pairs

    scores = {label: score_pairs(*model, test_path) for label, model in models.items() if model}
    if not any(scores.values()):
        get_run_logger().info("preference accuracy: skipped, the test split holds no preference pairs (supervised data)")
        return None
    summary = preference_summary(scores)
    path = RunFolder(out_dir).eval / "preference.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"summary": summary.to_dict(), "scores": scores}, indent=1))
    get_run_logger().info("preference accuracy on %d held-out pairs: %s", summary.n,
                          ", ".join(f"{k} {v:.3f}" for k, v in summary.accuracy.items()))
    return summary


@task(name="compare-and-gate", cache_policy=NO_CACHE)
def compare_and_gate(results: dict[str, ModelEvaluation], train_path: str, tokenizer_path: str, task_card: TaskCard,
                     config: EvalConfig, out_dir: str, run: TrackingRun, preference: PreferenceAccuracy | None = None,
                     rewards: GrpoConfig | None = None) -> GateResult:
    """Compare candidate with base and champion, analyse badcases, apply the promotion gate; log it all.

    rewards (a GRPO run's train.grpo): each model's held-out reward and its components join the summary and MLflow.
    """
    from loraflow.tasks.evaluation.gate import compare_and_decide

    gate = compare_and_decide(results, train_path, tokenizer_path, task_card, config, out_dir, preference, rewards)
    decision = gate.decision
    tracking.log_metrics(run, gate.summary.mlflow_metrics)
    tracking.log_artifacts(run, RunFolder(out_dir).eval, "eval")
    tracking.set_tags(run, {"promotion.decision": "promote" if decision.promote else "keep",
                            "promotion.reasons": "\n".join(decision.reasons)})
    metric = task_card.success_metric.metric
    create_table_artifact(key="evaluation", table=evaluation_table(gate.summary, metric),
                          description=f"Success metric {metric} and every answer field's scores on the test split, per model and trivial baseline")
    verdict = gate_verdict(decision.promote, decision.reasons)
    create_markdown_artifact(key="promotion-decision", description="Promotion gate",
                             markdown=f"**{verdict}**\n\n" + "\n".join(f"- {r}" for r in decision.reasons))
    get_run_logger().info("promotion gate: %s", verdict.lower())
    return gate


@task(name="eval-report", cache_policy=NO_CACHE)
def eval_report(out_dir: str, run: TrackingRun) -> str:
    """The self-contained HTML evaluation report, logged to MLflow and linked from Prefect."""
    from loraflow.tasks.evaluation.report import write_eval_report
    from loraflow.tasks.tracking.links import local_store_note, report_link

    path = write_eval_report(out_dir)
    tracking.log_artifacts(run, path, "eval")
    link = report_link("eval/report.html", run, out_dir, "eval/report.html")
    create_markdown_artifact(key="evaluation-report", markdown="\n".join([f"Evaluation report: {link}", *local_store_note(run.tracking_uri)]),
                             description="HTML report (per answer field, baselines, slices, training, worst cases)")
    return path


@task(name="llm-judge", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=10, retry_condition_fn=not_user_error)
def llm_judge(out_dir: str, config: JudgeConfig) -> JudgeSummary | None:
    """Score the candidate's answers on the five rubric dimensions through an OpenAI-compatible judge (off by default)."""
    from loraflow.tasks.evaluation.llm_judge import judge_from_config

    if config.enabled:
        get_run_logger().info("stage: LLM-as-judge (%s)", config.model)
    else:
        get_run_logger().info("LLM judge: off (judge.enabled is false), nothing scored")
    return judge_from_config(out_dir, config)


@task(name="resolve-eval-target", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5, retry_condition_fn=not_user_error)
def resolve_eval_target(model: str, test_path: str | None, config: PipelineConfig) -> EvaluationTarget:
    """The model (and adapter) to evaluate and its test set: test_path, else the run folder's test split, else the lineage's."""
    from loraflow.tasks.common.settings import mlflow_uri
    from loraflow.tasks.deploy import model_sources
    from loraflow.tasks.evaluation.target import evaluation_target

    resolved = model_sources.resolve_eval_target(model, mlflow_uri(config.tracking.mlflow_tracking_uri))
    target = evaluation_target(model, resolved, test_path, config.task_card.name)
    get_run_logger().info("evaluating %s%s on %s", target.model_path, f" + {target.adapter_path}" if target.adapter_path else "",
                          target.test_path)
    return target


@task(name="evaluation-summary", cache_policy=NO_CACHE)
def evaluation_summary(result: ModelEvaluation, config: PipelineConfig, out_dir: str) -> EvaluationVerdict:
    """Write eval/metrics_<label>.json with the task card's verdict and show the metrics as a Prefect table."""
    from loraflow.tasks.evaluation.target import write_verdict

    verdict = write_verdict(result, config.task_card, out_dir)
    create_table_artifact(key="evaluation", description="Metrics on the test set",
                          table=[{"metric": k, "value": round(v, 4)} for k, v in result.metrics.items() if isinstance(v, (int, float))])
    return verdict
