"""Diagnosis for reinforcement learning (GRPO) over trl's log history: the loss of a policy-gradient step says little,
so these rules read the reward, its per-group spread, the held-out field rewards, the KL and the completion lengths."""
import statistics
from dataclasses import dataclass

from loraflow.tasks.training.diagnosis import Finding, _finite, _series, is_rl_history


@dataclass(frozen=True)
class RlThresholds:
    """Where the RL rules draw their lines."""

    min_points: int = 6  # reward logs needed before judging a trend
    reward_min_rise: float = 0.02  # a reward that rose less than this (x max(1, |first|)) from the first to the last fifth is flat
    zero_advantage_share: float = 0.5  # most groups scoring all alike (trl's frac_reward_zero_std) over the last logs
    field_fall: float = 0.05  # held-out field reward falling this much (absolute share) while the training reward rises
    kl_max: float = 1.0  # KL to the reference past this: the policy ran away (GRPO runs stay around 0.001-0.1)
    clipped_share: float = 0.5  # completions cut at max_completion_length over the last logs
    recent: int = 3  # logs averaged for "the last logs"


def _ends(values: list[float]) -> tuple[float, float]:
    k = max(1, len(values) // 5)
    return statistics.fmean(values[:k]), statistics.fmean(values[-k:])


def diagnose_rl(history: list[dict], t: RlThresholds | None = None) -> list[Finding]:
    """Findings of GRPO's curves: flat reward, zero-advantage groups, reward hacking, KL runaway, length-limit completions."""
    if not is_rl_history(history):
        return []
    t = t or RlThresholds()
    train = [h for h in history if "eval_loss" not in h and not any(k.startswith("eval_") for k in h)]
    reward = [(s, v) for s, v in _series(train, "reward") if _finite(v)]
    findings = []
    if len(reward) >= t.min_points:
        first, last = _ends([v for _, v in reward])
        if last - first < t.reward_min_rise * max(1.0, abs(first)):
            findings.append(Finding(
                "reward_flat", "warning",
                f"GRPO's reward did not rise ({first:.3g} -> {last:.3g} from step {reward[0][0]} to {reward[-1][0]}): raise "
                "the learning rate (train.grpo.learning_rate), sample more diverse completions (train.grpo.temperature, "
                "num_generations), or check that the rewards can tell the completions apart (train.grpo.weights)",
                reward[-1][0], {"first": first, "last": last}))
        findings += _field_falls(history, first, last, reward[-1][0], t)
    findings += _recent_share(train, "frac_reward_zero_std", t.zero_advantage_share, t, "zero_advantage_groups", (
        "of the prompt groups scored every completion the same (zero advantage: no learning signal); raise "
        "train.grpo.temperature or num_generations, or give partial credit (per-field rewards), or the prompts are all "
        "too easy or too hard for the model"))
    findings += _recent_share(train, "completions/clipped_ratio", t.clipped_share, t, "completions_at_length_limit", (
        "of the completions reached train.grpo.max_completion_length and were cut: raise it if answers need the room, "
        "else the model rambles (weight train.grpo.weights.no_extra_text, end answers with EOS in the supervised phase)"))
    kl = [(s, v) for s, v in _series(train, "kl") if _finite(v)]
    if kl and kl[-1][1] > t.kl_max:
        step, value = kl[-1]
        findings.append(Finding(
            "kl_runaway", "warning",
            f"the KL to the reference policy reached {value:.3g} at step {step} (over {t.kl_max:g}): the policy runs away "
            "from what it started from and may exploit the reward; raise train.grpo.beta or lower the learning rate",
            step, {"kl": value}))
    return findings


def _recent_share(train: list[dict], key: str, limit: float, t: RlThresholds, code: str, advice: str) -> list[Finding]:
    values = [(s, v) for s, v in _series(train, key) if _finite(v)]
    if len(values) < t.recent:
        return []
    share = statistics.fmean(v for _, v in values[-t.recent:])
    if share < limit:
        return []
    step = values[-1][0]
    return [Finding(code, "warning", f"{share:.0%} {advice} (last {t.recent} logs up to step {step})", step, {"share": share})]


def _field_falls(history: list[dict], first: float, last: float, step: int, t: RlThresholds) -> list[Finding]:
    """Reward hacking: the training reward rose while the held-out field rewards (each field's share right) fell."""
    evals = [h for h in history if any(k.startswith("eval_rewards/field_") and k.endswith("/mean") for k in h)]
    if len(evals) < 2 or last - first < t.reward_min_rise * max(1.0, abs(first)):
        return []

    def fields_mean(h: dict) -> float:
        values = [v for k, v in h.items() if k.startswith("eval_rewards/field_") and k.endswith("/mean") and _finite(v)]
        return statistics.fmean(values) if values else float("nan")

    before, after = fields_mean(evals[0]), fields_mean(evals[-1])
    if not (_finite(before) and _finite(after)) or before - after < t.field_fall:
        return []
    return [Finding(
        "reward_hacking", "critical",
        f"the training reward rose ({first:.3g} -> {last:.3g}) while the held-out answer fields fell ({before:.1%} -> "
        f"{after:.1%} right): the policy is learning to please the reward, not the task; check the reward weights "
        "(train.grpo.weights, a custom train.grpo.reward_function or the judge), raise train.grpo.beta, train fewer steps",
        step, {"field_reward_before": before, "field_reward_after": after, "reward_first": first, "reward_last": last})]
