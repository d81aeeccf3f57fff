"""Paired bootstrap: the CI contains the true difference, covers it at about the nominal rate, and pairs by id."""
import numpy as np
import pytest

from loraflow.tasks.evaluation.compare import compare_predictions, paired_bootstrap, paired_scores
from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.common.jsonl import write_jsonl


def _simulate(rng, n, p_candidate, p_other):
    """Paired 0/1 scores whose true mean difference is p_candidate - p_other (shared difficulty per case)."""
    u = rng.random(n)
    return (u < p_candidate).astype(float), (u < p_other).astype(float)


def test_ci_contains_the_true_difference():
    cand, other = _simulate(np.random.default_rng(7), 500, 0.7, 0.5)
    result = paired_bootstrap(cand, other, samples=2000, seed=3)
    assert result["ci_low"] < 0.2 < result["ci_high"]
    assert result["ci_low"] > 0  # a 0.2 gain on 500 cases is clearly significant
    assert result["p_value"] < 0.01 and result["n"] == 500
    assert result["diff"] == pytest.approx(cand.mean() - other.mean())


def test_ci_covers_the_true_difference_at_about_the_nominal_rate():
    rng = np.random.default_rng(11)
    covered = 0
    for trial in range(60):
        cand, other = _simulate(rng, 200, 0.6, 0.55)
        result = paired_bootstrap(cand, other, samples=400, seed=trial)
        covered += result["ci_low"] <= 0.05 <= result["ci_high"]
    assert covered / 60 >= 0.85


def test_identical_models_tie_and_bad_input_is_rejected():
    scores = [0.2, 0.9, 0.4, 0.4]
    result = paired_bootstrap(scores, scores)
    assert result["diff"] == result["ci_low"] == result["ci_high"] == 0.0 and result["p_value"] == 1.0
    with pytest.raises(ValueError):
        paired_bootstrap([1.0, 0.0], [1.0])


def test_pairs_match_by_id_and_skip_cases_only_one_model_saw(tmp_path):
    cand = [{"id": i, "scores": {"rougeL": s}} for i, s in [("a", 1.0), ("b", 0.5), ("c", 0.0)]]
    other = [{"id": i, "scores": {"rougeL": s}} for i, s in [("c", 0.5), ("a", 0.0)]]
    assert paired_scores(cand, other, "rougeL") == ([1.0, 0.0], [0.0, 0.5])
    write_jsonl(tmp_path / "c.jsonl", cand)
    write_jsonl(tmp_path / "o.jsonl", other)
    result = compare_predictions(str(tmp_path / "c.jsonl"), str(tmp_path / "o.jsonl"), "rougeL", samples=100)
    assert result["diff"] == pytest.approx(0.25) and result["candidate_mean"] == 0.5 and result["other_mean"] == 0.25
    with pytest.raises(LoraflowError, match="success metric 'bleu'"):
        paired_scores(cand, other, "bleu")
