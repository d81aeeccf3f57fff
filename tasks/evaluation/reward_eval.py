"""Held-out GRPO rewards: the training rewards scored on each model's greedy test answers, and the gate's field rule.

The answers are the ones evaluation already generated (eval/predictions_<label>.jsonl), so this costs no generation.
The LLM judge is left out (one request per answer; `judge.enabled` scores the candidate separately), and the rejected
component applies only where a test record carries a rejected answer.
"""
import statistics

from loraflow.schemas.config.grpo import GrpoConfig
from loraflow.schemas.config.task_card import TaskCard
from loraflow.schemas.results.evaluation import EvaluationSummary, HeldOutRewards, RewardScores
from loraflow.schemas.run_folder import RunFolder
from loraflow.tasks.common.jsonl import read_jsonl
from loraflow.tasks.evaluation.rewards import reward_functions, reward_names

LABELS = ("candidate", "base", "champion")
_EPS = 1e-9
# The field score a field reward stands for, per kind: what the gate compares.
FIELD_STAT = {"categorical": "accuracy", "text": "normalized_match"}


def score_rewards(rows: list[dict], task_card: TaskCard, grpo: GrpoConfig) -> RewardScores:
    """Mean weighted reward and each component's mean over prediction rows (components that never apply: None)."""
    references = [row.get("reference") for row in rows]
    functions, weights = reward_functions(task_card.fields, [r for r in references if r], grpo, with_judge=False)
    columns = {"prompts": [row.get("messages") or [] for row in rows], "completions": [row.get("prediction") or "" for row in rows],
               "reference": references, "rejected": [row.get("rejected") for row in rows], "id": [row.get("id") for row in rows]}
    per_row = [0.0] * len(rows)
    components = {}
    for name, function, weight in zip(reward_names(functions), functions, weights):
        scores = function(**columns)
        applied = [s for s in scores if s is not None]
        components[name] = statistics.fmean(applied) if applied else None
        per_row = [total + weight * (s or 0.0) for total, s in zip(per_row, scores)]
    return RewardScores(n=len(rows), mean_reward=statistics.fmean(per_row) if rows else 0.0, components=components,
                        weights=dict(zip(reward_names(functions), weights)))


def held_out_rewards(predictions: dict[str, str], task_card: TaskCard, grpo: GrpoConfig, out_dir: str) -> HeldOutRewards:
    """Rewards of base, candidate and champion on their test answers (MLflow: <label>.reward, <label>.reward.<name>);
    writes eval/rewards.json.

    Args:
        predictions: label -> predictions file (evaluation's per-model rows).
    """
    labels = {label: score_rewards(read_jsonl(path), task_card, grpo) for label, path in predictions.items() if label in LABELS}
    metrics = {}
    for label, scored in labels.items():
        metrics[f"{label}.reward"] = scored.mean_reward
        metrics.update({f"{label}.reward.{name}": v for name, v in scored.components.items() if v is not None})
    result = HeldOutRewards(labels=labels, mlflow_metrics=metrics)
    path = RunFolder(out_dir).eval / "rewards.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(result.model_dump_json(indent=1))
    return result


def reward_checks(summary: EvaluationSummary, reference: str | None) -> list[tuple[bool, str]]:
    """GRPO's gate lines: the held-out reward beside each model's, and no answer field scoring below the reference's."""
    rewards = summary.reward.labels if summary.reward else {}
    if "candidate" not in rewards:
        return []
    shown = ", ".join(f"{label} {rewards[label].mean_reward:.3f}" for label in LABELS if label in rewards)
    parts = ", ".join(f"{k} {v:.2f}" for k, v in rewards["candidate"].components.items() if v is not None)
    checks = [(True, f"skip: held-out GRPO reward (reported, not gated): {shown}; candidate's components: {parts}")]
    labels = summary.labels
    if reference not in labels:
        return [*checks, (True, "skip: answer fields after GRPO: no champion or base model to compare with")]
    candidate_fields, other_fields = summary.candidate.fields, labels[reference].fields
    for name, report in candidate_fields.items():
        stat = FIELD_STAT.get(report.kind)
        if stat is None or name not in other_fields:
            continue
        mine, theirs = getattr(report, stat), getattr(other_fields[name], stat)
        ok = mine >= theirs - _EPS
        checks.append((ok, f"{'pass' if ok else 'fail'}: GRPO does not lower field {name}: {stat} candidate {mine:.3f} "
                           f"vs {reference} {theirs:.3f}"))
    return checks
