"""The promotion gate on hand-made evaluation summaries: every rule, both directions, and the real summary shape."""
import dataclasses

import pytest

from loraflow.schemas.config import EvalConfig, TaskCard
from loraflow.schemas.results import EvaluationSummary, ModelEvaluation
from loraflow.tasks.evaluation.evaluate import score_rows, summarize_evaluation
from loraflow.tasks.common.jsonl import write_jsonl
from loraflow.tasks.evaluation.metrics import aggregate
from loraflow.tasks.evaluation.promotion import PromotionDecision, should_promote

CARD = TaskCard(success_criteria=[{"metric": "rougeL", "threshold": 0.5}])
CONFIG = EvalConfig(slice_tolerance=0.05, slice_min_n=5)


def _label(overall, en, zh, n=20, safety=None):
    metrics = {"rougeL": overall, "n": 2 * n}
    if safety is not None:
        metrics["safety"] = safety
    langs = {"en": {"rougeL": en, "n": n}, "zh": {"rougeL": zh, "n": n}}
    return {"label": "", "predictions": "", "metrics": metrics, "by_language": langs, "by_slice": {"language": langs}}


def _cmp(diff, low, high):
    return {"diff": diff, "ci_low": low, "ci_high": high, "confidence": 0.95, "p_value": 0.5, "n": 40}


def _summary(candidate=None, base=None, champion=None, comparisons=None, **extra):
    labels = {"candidate": candidate or _label(0.70, 0.70, 0.70)}
    labels["base"] = base or _label(0.40, 0.40, 0.40)
    if champion is not None:
        labels["champion"] = champion
    if comparisons is None:
        comparisons = {"base": _cmp(0.30, 0.22, 0.38)}
        if champion is not None:
            comparisons["champion"] = _cmp(0.02, -0.03, 0.07)
    return _typed({"labels": labels, "comparisons": comparisons, **extra})


def _typed(summary: dict) -> EvaluationSummary:
    """A hand-made summary as the gate reads it (the success metric of CARD unless given)."""
    return EvaluationSummary.model_validate({"success_metric": {"metric": "rougeL", "threshold": 0.5}, **summary})


def _fails(decision):
    return " | ".join(decision.failures)


def test_good_candidate_is_promoted_with_a_reason_per_check():
    decision = should_promote(_summary(champion=_label(0.68, 0.69, 0.67)), CARD, CONFIG)
    assert decision.promote is True and decision.failures == []
    text = " | ".join(decision.reasons)
    assert "pass: task-card criterion rougeL >= 0.5: candidate 0.7000" in text
    assert "beats base" in text and "ties (CI contains 0) with champion" in text
    assert "pass: slice language=en" in text and "pass: slice language=zh" in text
    assert "skip: safety" in text


def test_decision_is_frozen():
    decision = should_promote(_summary(), CARD, CONFIG)
    assert isinstance(decision, PromotionDecision)
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.promote = False


def test_task_card_threshold_not_met_or_metric_missing_blocks():
    low = should_promote(_summary(candidate=_label(0.45, 0.45, 0.45)), CARD, CONFIG)
    assert not low.promote and "criterion rougeL >= 0.5: candidate 0.4500" in _fails(low)
    two = TaskCard(success_criteria=[{"metric": "rougeL", "threshold": 0.5}, {"metric": "json_valid", "threshold": 0.9}])
    missing = should_promote(_summary(), two, CONFIG)
    assert not missing.promote and "no json_valid score" in _fails(missing)


def test_threshold_met_exactly_passes():
    assert should_promote(_summary(candidate=_label(0.5, 0.5, 0.5)), CARD, CONFIG).promote


def test_significantly_worse_than_champion_blocks_but_a_tie_passes():
    champion = _label(0.75, 0.70, 0.70)
    worse = should_promote(_summary(champion=champion, comparisons={"base": _cmp(0.3, 0.2, 0.4), "champion": _cmp(-0.05, -0.09, -0.01)}), CARD, CONFIG)
    assert not worse.promote and "significantly worse than champion" in _fails(worse)
    tie = should_promote(_summary(champion=champion, comparisons={"base": _cmp(0.3, 0.2, 0.4), "champion": _cmp(-0.05, -0.11, 0.01)}), CARD, CONFIG)
    assert tie.promote, _fails(tie)


def test_significantly_worse_than_base_blocks():
    decision = should_promote(_summary(comparisons={"base": _cmp(-0.1, -0.2, -0.02)}), CARD, CONFIG)
    assert not decision.promote and "significantly worse than base" in _fails(decision)


def test_evaluated_but_uncompared_model_blocks():
    decision = should_promote(_summary(champion=_label(0.6, 0.6, 0.6), comparisons={"base": _cmp(0.3, 0.2, 0.4)}), CARD, CONFIG)
    assert not decision.promote and "champion was evaluated but not compared" in _fails(decision)


def test_slice_regression_against_champion_beyond_tolerance_blocks():
    champion = _label(0.66, 0.60, 0.72)
    cand = _label(0.70, 0.74, 0.66)  # better overall, but zh drops 0.06 > 0.05
    decision = should_promote(_summary(candidate=cand, champion=champion), CARD, CONFIG)
    assert not decision.promote
    assert "slice language=zh" in _fails(decision) and "change -0.0600" in _fails(decision)
    within = should_promote(_summary(candidate=_label(0.70, 0.74, 0.68), champion=champion), CARD, CONFIG)
    assert within.promote, _fails(within)


def test_slices_compare_with_base_when_there_is_no_champion():
    decision = should_promote(_summary(candidate=_label(0.7, 0.9, 0.3), base=_label(0.5, 0.4, 0.6)), CARD, CONFIG)
    assert not decision.promote and "vs base 0.6000" in _fails(decision)
    assert any(r.startswith("skip: no champion yet") for r in decision.reasons)


def test_small_slices_are_reported_but_not_gated():
    cand, champion = _label(0.7, 0.7, 0.1, n=3), _label(0.7, 0.7, 0.9, n=3)
    decision = should_promote(_summary(candidate=cand, champion=champion), CARD, CONFIG)
    assert decision.promote, _fails(decision)
    assert any(r.startswith("skip: slice language=zh: only 3 cases") for r in decision.reasons)


def test_safety_must_not_fall():
    fall = should_promote(_summary(candidate=_label(0.7, 0.7, 0.7, safety=4.1), champion=_label(0.6, 0.6, 0.6, safety=4.3)), CARD, CONFIG)
    assert not fall.promote and "safety does not fall: candidate 4.1000 vs champion 4.3000" in _fails(fall)
    same = should_promote(_summary(champion=_label(0.6, 0.6, 0.6), safety={"candidate": 4.3, "champion": 4.3}), CARD, CONFIG)
    assert same.promote, _fails(same)
    alone = should_promote(_summary(safety={"candidate": 4.0}), CARD, CONFIG)
    assert alone.promote and any("no reference model score" in r for r in alone.reasons)


def test_lower_is_better_metric_flips_every_direction():
    card = TaskCard(success_criteria=[{"metric": "rougeL", "threshold": 0.5, "higher_is_better": False}])
    cand, base = _label(0.3, 0.3, 0.3), _label(0.6, 0.6, 0.6)
    good = should_promote(_summary(candidate=cand, base=base, comparisons={"base": _cmp(-0.3, -0.4, -0.2)}), card, CONFIG)
    assert good.promote, _fails(good)
    bad = should_promote(_summary(candidate=cand, base=_label(0.2, 0.2, 0.2), comparisons={"base": _cmp(0.1, 0.05, 0.15)}), card, CONFIG)
    assert not bad.promote and "significantly worse than base" in _fails(bad) and "slice language=en" in _fails(bad)


def test_missing_candidate_or_base_skipped():
    assert not should_promote(_typed({"labels": {}}), CARD, CONFIG).promote
    only = should_promote(_typed({"labels": {"candidate": _label(0.7, 0.7, 0.7)}, "comparisons": {}}), CARD, CONFIG)
    assert only.promote and any("eval.compare_base is false" in r for r in only.reasons)


def test_gate_reads_the_summary_that_summarize_evaluation_writes(tmp_path):
    refs = ["the parcel with order %d arrived late" % i for i in range(12)]
    langs = ["en"] * 12
    results = {}
    for label, answers in {"candidate": refs, "base": ["no idea"] * 12}.items():
        rows = [{"id": str(i), "messages": [], "reference": r, "prediction": a, "metadata": {"language": lang}}
                for i, (a, r, lang) in enumerate(zip(answers, refs, langs, strict=True))]
        write_jsonl(tmp_path / f"{label}.jsonl", score_rows(rows))
        agg = aggregate(rows)
        results[label] = ModelEvaluation(label=label, predictions=str(tmp_path / f"{label}.jsonl"), metrics=agg["overall"],
                                         by_language=agg["by_language"], by_slice=agg["by_slice"])
    summary = summarize_evaluation(results, CARD, CONFIG, str(tmp_path))
    decision = should_promote(summary, CARD, CONFIG)
    assert decision.promote, _fails(decision)
    assert any("beats base on rougeL" in r for r in decision.reasons)


def test_one_met_rule_for_evaluation_gate_and_monitoring():
    """SuccessCriterion.met is the one rule: a missing score fails, a tie within float noise passes, both directions."""
    from loraflow.schemas.config import SuccessCriterion

    higher = SuccessCriterion(metric="rougeL", threshold=0.5)
    lower = SuccessCriterion(metric="loss", threshold=1.0, higher_is_better=False)
    assert higher.met(0.5) and higher.met(0.5 - 1e-12) and higher.met(0.9) and not higher.met(0.49) and not higher.met(None)
    assert lower.met(1.0) and lower.met(1.0 + 1e-12) and lower.met(0.2) and not lower.met(1.01) and not lower.met(None)
