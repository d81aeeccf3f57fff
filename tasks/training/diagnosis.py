"""Training diagnosis: the fine-tuning guide's rules for loss and grad-norm curves, as code over HF log history."""
import math
import statistics
from dataclasses import asdict, dataclass, field
from typing import Literal

Severity = Literal["info", "warning", "critical"]
# Findings about one moment (reported once per step) rather than about the curve's trend (reported once per run).
EVENT_CODES = frozenset({"non_finite", "loss_spike", "exploding_grad_norm"})
_SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}


@dataclass(frozen=True)
class Finding:
    """One diagnosed problem: a stable code, how bad it is, the guide's advice, and the step it points at."""

    code: str
    severity: Severity
    message: str
    step: int | None
    data: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Identity for de-duplication while training runs: events per step, trends once."""
        return f"{self.code}@{self.step}" if self.code in EVENT_CODES else self.code

    def to_dict(self) -> dict:
        """Plain JSON-able dict."""
        return asdict(self)


@dataclass(frozen=True)
class Thresholds:
    """Where the rules draw their lines; the defaults suit losses logged as averages over `logging_steps`."""

    min_points: int = 8  # train-loss logs needed before judging a trend
    min_drop: float = 0.02  # a loss that fell less than 2% from the first to the last fifth is not falling
    spike_ratio: float = 1.5  # a loss 50% above the running median of the previous logs is a spike
    spike_window: int = 5
    oscillation_sign_changes: float = 0.6  # share of successive differences that flip sign
    oscillation_amplitude: float = 0.1  # mean |difference| relative to the mean loss
    overfit_patience: int = 2  # evaluations after the best one, all worse, before calling it overfitting
    overfit_min_rise: float = 0.01
    explode_ratio: float = 10.0  # grad norm this many times its running median
    vanish_norm: float = 1e-6
    vanish_ratio: float = 1e-3
    # DPO/ORPO reward margins (beta x log-ratio difference): past this the policy has run far from its reference
    margin_explode: float = 20.0
    margin_collapse_ratio: float = 0.25  # the last margins all under this share of their peak: the preference fades
    # DPO's chosen reward (beta x log-ratio to the reference) this far below 0: the chosen answers lost likelihood too
    chosen_fall: float = -1.0


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _series(history: list[dict], key: str, skip: str | None = None) -> list[tuple[int, float]]:
    return [(int(h.get("step", i)), h[key]) for i, h in enumerate(history) if key in h and not (skip and skip in h)]


def diagnose(history: list[dict], thresholds: Thresholds | None = None,
             batch_records: dict[int, list[str]] | None = None) -> list[Finding]:
    """Findings for an HF-style log history (dicts with step, loss, eval_loss, learning_rate, grad_norm), worst first.

    batch_records maps a step to the record ids trained at it, so a spike can name the suspect batch.
    """
    t = thresholds or Thresholds()
    train = _series(history, "loss", skip="eval_loss")
    evals = _series(history, "eval_loss")
    grads = _series(history, "grad_norm")
    lrs = dict(_series(history, "learning_rate"))
    findings = _non_finite(train, evals, grads)
    if findings:
        # Everything after a NaN is noise; judge the curve only up to it.
        stop = findings[0].step
        train, evals, grads = ([p for p in s if p[0] < stop] for s in (train, evals, grads))
    finite_train = [(s, v) for s, v in train if _finite(v)]
    if not is_rl_history(history):  # GRPO's loss is a policy-gradient surrogate: its rules are in diagnosis_rl.py
        findings += _not_falling(finite_train, lrs, t)
        findings += _spikes(finite_train, lrs, t, batch_records or {})
        findings += _oscillation(finite_train, t)
        findings += _overfitting(evals, finite_train, t)
    findings += _grad_norm(grads, t)
    findings += _reward_margins([(s, v) for s, v in _series(history, "rewards/margins") if _finite(v)], t)
    findings += _falling_chosen([(s, v) for s, v in _series(history, "rewards/chosen", skip="eval_loss") if _finite(v)], t)
    return sorted(findings, key=lambda f: (_SEVERITY_ORDER[f.severity], f.step if f.step is not None else -1))


def is_rl_history(history: list[dict]) -> bool:
    """Whether the log history is GRPO's (trl's GRPOTrainer logs a reward per step)."""
    return any("reward" in h for h in history)


def _non_finite(train, evals, grads) -> list[Finding]:
    bad = sorted((step, name) for name, series in (("loss", train), ("eval_loss", evals), ("grad_norm", grads))
                 for step, value in series if not _finite(value))
    if not bad:
        return []
    step, name = bad[0]
    return [Finding(
        "non_finite", "critical",
        f"{name} became NaN/inf at step {step}: training stops at once and the last good checkpoint is kept; "
        "lower the learning rate, keep gradient clipping on, prefer bf16 over fp16, and look for empty or corrupt records",
        step, {"metric": name},
    )]


def _not_falling(train, lrs, t: Thresholds) -> list[Finding]:
    if len(train) < t.min_points:
        return []
    k = max(2, len(train) // 5)
    first = statistics.fmean(v for _, v in train[:k])
    last = statistics.fmean(v for _, v in train[-k:])
    if first <= 0 or (first - last) / first >= t.min_drop:
        return []
    lr = max((v for v in lrs.values() if _finite(v)), default=None)
    lr_text = f" (peak {lr:.2g})" if lr else ""
    return [Finding(
        "loss_not_falling", "warning",
        f"training loss did not fall ({first:.4g} -> {last:.4g} from step {train[0][0]} to {train[-1][0]}): "
        f"the learning rate{lr_text} may be too small, or the data has a problem "
        "(labels masked, wrong chat template, answers not matching questions)",
        train[-1][0], {"first": first, "last": last, "max_learning_rate": lr},
    )]


def _spikes(train, lrs, t: Thresholds, batch_records) -> list[Finding]:
    found = []
    for i in range(3, len(train)):
        step, value = train[i]
        reference = statistics.median(v for _, v in train[max(0, i - t.spike_window):i])
        if reference > 0 and value > reference * t.spike_ratio:
            records = batch_records.get(step, [])
            lr = lrs.get(step)
            where = f"; records in that batch: {', '.join(records[:20])}" if records else ""
            found.append(Finding(
                "loss_spike", "warning",
                f"loss spiked at step {step} ({value:.4g} vs a running median of {reference:.4g}): the learning rate"
                f"{f' ({lr:.2g})' if lr else ''} may be too large, or that batch is bad{where}",
                step, {"loss": value, "median_before": reference, "record_ids": records},
            ))
    return found


def _oscillation(train, t: Thresholds) -> list[Finding]:
    # Judge the second half: the start of training is dominated by the fast initial drop.
    tail = train[len(train) // 2:]
    if len(train) < t.min_points or len(tail) < 4:
        return []
    values = [v for _, v in tail]
    diffs = [b - a for a, b in zip(values, values[1:])]
    flips = sum(1 for a, b in zip(diffs, diffs[1:]) if a * b < 0) / max(1, len(diffs) - 1)
    amplitude = statistics.fmean(abs(d) for d in diffs) / max(statistics.fmean(values), 1e-12)
    if flips < t.oscillation_sign_changes or amplitude < t.oscillation_amplitude:
        return []
    return [Finding(
        "oscillation", "warning",
        f"loss oscillates strongly from step {tail[0][0]} to {tail[-1][0]} (mean jump {amplitude:.0%} of its level between logs): "
        "lower the learning rate or raise the (effective) batch size",
        tail[-1][0], {"sign_change_share": flips, "relative_amplitude": amplitude},
    )]


def _overfitting(evals, train, t: Thresholds) -> list[Finding]:
    evals = [(s, v) for s, v in evals if _finite(v)]
    if len(evals) < t.overfit_patience + 1:
        return []
    best = min(range(len(evals)), key=lambda i: evals[i][1])
    best_step, best_loss = evals[best]
    after = evals[best + 1:]
    if len(after) < t.overfit_patience or after[-1][1] < best_loss * (1 + t.overfit_min_rise):
        return []
    span = [v for s, v in train if s >= best_step]
    before = [v for s, v in train if s <= best_step]
    if not span or not before or span[-1] >= before[-1]:
        return []  # train loss is not falling either: that is not overfitting
    return [Finding(
        "overfitting", "warning",
        f"overfitting: validation loss rose from {best_loss:.4g} (step {best_step}) to {after[-1][1]:.4g} while training loss "
        f"fell from {before[-1]:.4g} to {span[-1]:.4g}; early stopping restores the best checkpoint (step {best_step}); "
        "train fewer epochs, add data, or raise dropout/weight decay",
        best_step, {"best_eval_loss": best_loss, "last_eval_loss": after[-1][1]},
    )]


def _grad_norm(grads, t: Thresholds) -> list[Finding]:
    values = [(s, v) for s, v in grads if _finite(v)]
    found = []
    for i in range(3, len(values)):
        step, value = values[i]
        reference = statistics.median(v for _, v in values[:i])
        if reference > 0 and value > reference * t.explode_ratio:
            found.append(Finding(
                "exploding_grad_norm", "warning",
                f"gradient norm exploded at step {step} ({value:.3g} vs a median of {reference:.3g}): lower the learning "
                "rate, keep clipping on (train.max_grad_norm), and check that batch for bad records",
                step, {"grad_norm": value, "median_before": reference},
            ))
    if len(values) >= t.min_points // 2:
        early = statistics.median(v for _, v in values[: max(3, len(values) // 4)])
        recent = values[-3:]
        if all(v < t.vanish_norm or v < early * t.vanish_ratio for _, v in recent):
            found.append(Finding(
                "vanishing_grad_norm", "warning",
                f"gradient norm vanished (last {recent[-1][1]:.2g}, early {early:.2g}): the adapter gets no signal; "
                "check that labels are not all masked, the learning rate is not zero, and the LoRA modules are trainable",
                recent[-1][0], {"recent": [v for _, v in recent], "early_median": early},
            ))
    return found


def _reward_margins(margins: list[tuple[int, float]], t: Thresholds) -> list[Finding]:
    """Preference objectives: margins that explode (over-optimisation) or collapse (the preference is not learned)."""
    if not margins:
        return []
    step, last = margins[-1]
    if last > t.margin_explode:
        return [Finding("exploding_reward_margin", "warning",
                        f"reward margin reached {last:.3g} at step {step} (over {t.margin_explode:g}): the policy runs far "
                        "from its reference and may forget the task; raise train.preference_beta, lower the learning "
                        "rate or train fewer epochs", step, {"margin": last})]
    if len(margins) < t.min_points // 2:
        return []
    peak = max(v for _, v in margins)
    recent = [v for _, v in margins[-3:]]
    if all(v <= 0 for v in recent) or (peak > 0 and all(v < peak * t.margin_collapse_ratio for v in recent)):
        return [Finding("collapsing_reward_margin", "warning",
                        f"reward margin collapsed to {last:.3g} at step {step} (peak {peak:.3g}): the model is not learning "
                        "to prefer the chosen answers; check that chosen and rejected are not swapped or contradicting "
                        "(data/review.jsonl), and lower the learning rate", step, {"recent": recent, "peak": peak})]
    return []


def _falling_chosen(chosen: list[tuple[int, float]], t: Thresholds) -> list[Finding]:
    """DPO: the margin grows by pushing the chosen answers down with the rejected ones (greedy answers then degrade)."""
    recent = chosen[-3:]
    if len(recent) < 3 or not all(v < t.chosen_fall for _, v in recent):
        return []
    step, last = recent[-1]
    return [Finding("falling_chosen_reward", "warning",
                    f"the chosen answers' reward fell to {last:.3g} at step {step} (beta x log-probability ratio to the "
                    "reference): DPO widens the margin by making the chosen answers less likely too, which breaks greedy "
                    "answers; set train.preference_sft_weight (e.g. 1.0) or lower train.preference_learning_rate",
                    step, {"recent": [v for _, v in recent]})]


def render_diagnosis_markdown(findings: list[Finding]) -> str:
    """diagnosis.md: one table row per finding, or a line saying none were found."""
    lines = ["# Training diagnosis", ""]
    if not findings:
        return "\n".join([*lines, "No problems found: loss and gradient norm look healthy.", ""])
    lines += ["| severity | finding | step | advice |", "|---|---|---|---|"]
    for f in findings:
        message = f.message.replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {f.severity} | {f.code} | {'' if f.step is None else f.step} | {message} |")
    return "\n".join([*lines, ""])


def diagnosis_tags(findings: list[Finding]) -> dict[str, str]:
    """MLflow tags: `diagnosis.status` (ok/warning/critical) plus `diagnosis.<code>` = severity and the steps."""
    status = min((f.severity for f in findings), key=_SEVERITY_ORDER.__getitem__, default="ok")
    steps: dict[str, list[str]] = {}
    severity: dict[str, str] = {}
    for f in findings:
        steps.setdefault(f.code, []).append("" if f.step is None else str(f.step))
        severity[f.code] = f.severity
    tags = {"diagnosis.status": status}
    for code, at in steps.items():
        tags[f"diagnosis.{code}"] = f"{severity[code]}; steps {','.join(at)}"[:500]
    return tags
