"""The promotion gate: a pure decision over the evaluation summary, with every reason spelled out."""
from loraflow.schemas.config.evaluate import EvalConfig
from loraflow.schemas.config.task_card import TaskCard
from loraflow.schemas.results import EvaluationSummary, PromotionDecision
from loraflow.tasks.evaluation.compare import slice_deltas
from loraflow.tasks.evaluation.reward_eval import reward_checks

_EPS = 1e-9  # float noise must not flip a tie into a regression


def _check(ok: bool, text: str) -> tuple[bool, str]:
    return ok, f"{'pass' if ok else 'fail'}: {text}"


def _criteria_checks(candidate_metrics: dict, task_card: TaskCard) -> list[tuple[bool, str]]:
    checks = []
    for c in task_card.success_criteria:
        value = candidate_metrics.get(c.metric)
        op = ">=" if c.higher_is_better else "<="
        if value is None:
            checks.append((False, f"fail: task-card criterion {c.metric} {op} {c.threshold:g}: the candidate has no {c.metric} score"))
            continue
        checks.append(_check(c.met(value), f"task-card criterion {c.metric} {op} {c.threshold:g}: candidate {value:.4f}"))
    return checks


def _comparison_check(summary: EvaluationSummary, label: str, metric: str, higher_is_better: bool,
                      must_beat: bool = False) -> tuple[bool, str] | None:
    """Beat or tie: the CI of candidate - other must not lie entirely on the worse side of zero (must_beat: above it)."""
    if label not in summary.labels:
        return None
    comparison = summary.comparisons.get(label)
    if comparison is None:
        return False, f"fail: {label} was evaluated but not compared with the candidate on {metric}"
    low, high, diff = comparison.ci_low, comparison.ci_high, comparison.diff
    worse = high < -_EPS if higher_is_better else low > _EPS
    better = low > _EPS if higher_is_better else high < -_EPS
    verdict = "significantly worse than" if worse else "beats" if better else "ties (CI contains 0) with"
    pct = round(100 * comparison.confidence)
    rule = " (a first champion must beat the base model)" if must_beat else ""
    return _check(better if must_beat else not worse,
                  f"candidate {verdict} {label} on {metric}{rule}: diff {diff:+.4f}, {pct}% CI [{low:+.4f}, {high:+.4f}]")


def _field_checks(summary: EvaluationSummary, config: EvalConfig) -> list[tuple[bool, str]]:
    """Per categorical answer field: beat the majority-class predictor (macro-F1 CI above zero) and do not collapse."""
    checks = []
    for name, check in summary.field_checks.items():
        versus = check.vs_majority
        if versus is not None:
            low, high = versus.ci_low, versus.ci_high
            checks.append(_check(low > _EPS, (
                f"field {name}: candidate macro-F1 {check.macro_f1:.3f} (accuracy {check.accuracy:.3f}) vs majority "
                f"class {check.majority_macro_f1:.3f} (accuracy {check.majority_accuracy:.3f}): diff {versus.diff:+.3f}, "
                f"{round(100 * versus.confidence)}% CI [{low:+.3f}, {high:+.3f}] must lie above 0")))
        checks.append(_check(not check.collapsed, (
            f"field {name} does not collapse: the candidate answers {check.top_predicted!r} for "
            f"{check.top_predicted_share:.0%} of the test cases; the reference's most frequent value {check.top_reference!r} "
            f"is {check.top_reference_share:.0%}, limit {check.collapse_limit:.0%} (eval.collapse_margin={config.collapse_margin:g})")))
    return checks


def _classical_checks(summary: EvaluationSummary, config: EvalConfig) -> list[tuple[bool, str]]:
    """Per categorical field, the candidate against TF-IDF + logistic regression: macro-F1 paired-bootstrap CI above 0.

    eval.beat_classical=warn turns a shortfall into a 'warn:' line that does not block; require makes it a failure.
    """
    if config.beat_classical == "off":
        return []
    checks = []
    for name, check in summary.field_checks.items():
        versus = check.vs_classical
        if versus is None:
            continue
        low, high, diff = versus.ci_low, versus.ci_high, versus.diff
        beats = low > _EPS
        verdict = "beats" if beats else "is significantly worse than" if high < -_EPS else "does not beat (CI contains 0)"
        text = (f"field {name}: candidate macro-F1 {check.macro_f1:.3f} (accuracy {check.accuracy:.3f}) {verdict} the "
                f"classical baseline (TF-IDF + logistic regression) {check.classical_macro_f1:.3f} (accuracy "
                f"{check.classical_accuracy:.3f}): diff {diff:+.3f}, {round(100 * versus.confidence)}% CI "
                f"[{low:+.3f}, {high:+.3f}] (eval.beat_classical={config.beat_classical})")
        if beats or config.beat_classical == "require":
            checks.append(_check(beats, text))
        else:
            checks.append((True, f"warn: {text}"))
    return checks


def _slice_checks(summary: EvaluationSummary, reference: str, metric: str, higher_is_better: bool,
                  config: EvalConfig) -> list[tuple[bool, str]]:
    checks = []
    for row in slice_deltas(summary.candidate, summary.labels[reference], metric):
        name = f"slice {row.field}={row.value}"
        gain = row.delta if higher_is_better else -row.delta
        detail = f"{metric} {row.candidate:.4f} vs {reference} {row.reference:.4f} (change {gain:+.4f}, n={row.n})"
        if row.n is not None and row.n < config.slice_min_n:
            checks.append((True, f"skip: {name}: only {row.n} cases (< eval.slice_min_n={config.slice_min_n}); {detail}"))
            continue
        ok = gain >= -config.slice_tolerance - _EPS
        checks.append(_check(ok, f"{name} within eval.slice_tolerance={config.slice_tolerance:g}: {detail}"))
    return checks


def _safety(summary: EvaluationSummary, label: str) -> float | None:
    """A label's safety score: summary.safety[label] (e.g. from human evaluation) or its metrics['safety']."""
    value = summary.safety.get(label)
    if value is None and label in summary.labels:
        value = summary.labels[label].metrics.get("safety")
    return value


def _safety_check(summary: EvaluationSummary, reference: str | None) -> tuple[bool, str]:
    candidate = _safety(summary, "candidate")
    if candidate is None:
        return True, "skip: safety: no safety score in the evaluation summary"
    other = _safety(summary, reference) if reference else None
    if other is None:
        return True, f"skip: safety: candidate scores {candidate:.4f} but there is no reference model score to compare"
    return _check(candidate >= other - _EPS, f"safety does not fall: candidate {candidate:.4f} vs {reference} {other:.4f}")


def _preference_checks(summary: EvaluationSummary, reference: str | None, metric: str,
                       higher_is_better: bool) -> list[tuple[bool, str]]:
    """Preference data: held-out preference accuracy must not fall below the reference's, nor the task metric regress."""
    accuracy = summary.preference.accuracy if summary.preference else {}
    if "candidate" not in accuracy:
        return []
    others = ", ".join(f"{label} {accuracy[label]:.3f}" for label in ("base", "champion") if label in accuracy)
    text = f"held-out preference accuracy: candidate {accuracy['candidate']:.3f}" + (f" vs {others}" if others else "")
    if reference not in accuracy:
        return [(True, f"skip: {text}; no reference model scored on the pairs")]
    checks = [_check(accuracy["candidate"] >= accuracy[reference] - _EPS, f"{text}; must not fall below {reference}")]
    task = _comparison_check(summary, reference, metric, higher_is_better) if reference else None
    if task is not None:  # the same comparison as above, restated as the preference rule it enforces
        checks.append((task[0], f"{'pass' if task[0] else 'fail'}: preference tuning does not regress {metric} on the "
                                f"frozen test set: {task[1].split(': ', 1)[1]}"))
    return checks


def should_promote(summary: EvaluationSummary, task_card: TaskCard, config: EvalConfig) -> PromotionDecision:
    """Promote only if the candidate meets the task card, beats the majority class on every categorical field without
    collapsing, beats the base model (first champion) or is not worse than base and champion, keeps every slice and safety."""
    labels = summary.labels
    if "candidate" not in labels:
        return PromotionDecision(False, ["fail: the evaluation summary has no candidate model"])
    criterion = task_card.success_metric
    metric, higher = criterion.metric, criterion.higher_is_better
    checks = _criteria_checks(summary.candidate.metrics, task_card)
    if config.gate_fields:
        checks.extend(_field_checks(summary, config))
        checks.extend(_classical_checks(summary, config))
    elif summary.field_checks:
        checks.append((True, "skip: answer fields: eval.gate_fields is false (plumbing checks with a random model only)"))
    for label in ("base", "champion"):
        first_champion = label == "base" and "champion" not in labels
        result = _comparison_check(summary, label, metric, higher, must_beat=first_champion)
        if result is not None:
            checks.append(result)
        elif label == "champion":
            checks.append((True, "skip: no champion yet: the candidate would become the first one"))
        else:
            checks.append((True, "skip: base model not evaluated (eval.compare_base is false)"))
    reference = "champion" if "champion" in labels else "base" if "base" in labels else None
    if reference is None:
        checks.append((True, "skip: slices: no champion or base model to compare with"))
    else:
        checks.extend(_slice_checks(summary, reference, metric, higher, config))
    checks.append(_safety_check(summary, reference))
    checks.extend(_preference_checks(summary, reference, metric, higher))
    checks.extend(reward_checks(summary, reference))
    return PromotionDecision(all(ok for ok, _ in checks), [text for _, text in checks])
