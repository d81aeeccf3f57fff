"""The gate step's decisions: compare every model, add held-out preference accuracy, analyse badcases, decide promotion."""
import json

from loraflow.schemas.run_folder import RunFolder
from loraflow.schemas.config import EvalConfig, TaskCard
from loraflow.schemas.config.grpo import GrpoConfig
from loraflow.schemas.results import GateResult, ModelEvaluation, PreferenceAccuracy
from loraflow.tasks.evaluation.badcases import analyse_badcases
from loraflow.tasks.evaluation.evaluate import summarize_evaluation
from loraflow.tasks.evaluation.promotion import should_promote
from loraflow.tasks.evaluation.reward_eval import held_out_rewards


def compare_and_decide(results: dict[str, ModelEvaluation], train_path: str, tokenizer_path: str, task_card: TaskCard,
                       config: EvalConfig, out_dir: str, preference: PreferenceAccuracy | None = None,
                       rewards: GrpoConfig | None = None) -> GateResult:
    """Summarise the models against the task card, decide promotion, write eval/promotion.json; nothing is logged here.

    rewards (train.grpo of a GRPO run): the training rewards on each model's test answers, beside the field metrics.
    """
    summary = summarize_evaluation(results, task_card, config, out_dir)
    if preference:  # held-out preference accuracy per model: the gate checks it beside the task metric
        summary = summary.model_copy(update={"preference": preference,
                                             "mlflow_metrics": {**summary.mlflow_metrics, **preference.mlflow_metrics}})
    if rewards:
        reward = held_out_rewards({label: r.predictions for label, r in results.items()}, task_card, rewards, out_dir)
        summary = summary.model_copy(update={"reward": reward, "mlflow_metrics": {**summary.mlflow_metrics, **reward.mlflow_metrics}})
    badcases = analyse_badcases(summary.paths.predictions, train_path, task_card, config.badcases, out_dir, tokenizer_path)
    decision = should_promote(summary, task_card, config)
    promotion_path = RunFolder(out_dir).eval / "promotion.json"
    promotion_path.write_text(json.dumps(decision.to_dict(), indent=2, ensure_ascii=False))
    return GateResult(summary_path=summary.paths.metrics, summary=summary, decision=decision, badcases=badcases)
