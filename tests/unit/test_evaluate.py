"""Evaluation end to end on a tiny model, and the summary's comparisons and criteria on hand-made predictions."""
import json

import pytest
from tests.unit.eval_support import build_adapter, build_model, write_records

from loraflow.schemas.config import EvalConfig, TaskCard
from loraflow.tasks.common.errors import LoraflowError
from loraflow.schemas.results import EvaluationSummary, ModelEvaluation
from loraflow.tasks.evaluation.evaluate import evaluate_model, score_rows, summarize_evaluation
from loraflow.tasks.common.jsonl import read_jsonl, write_jsonl
from loraflow.tasks.evaluation.metrics import aggregate

CARD = TaskCard(success_criteria=[{"metric": "json_field_accuracy", "threshold": 0.5}, {"metric": "chrf", "threshold": 0.1}])


def test_evaluate_model_and_summary_on_a_tiny_model(tmp_path):
    model_dir = build_model(tmp_path)
    adapter = build_adapter(model_dir, tmp_path / "adapter")
    test = write_records(tmp_path / "test.jsonl")
    config = EvalConfig(max_new_tokens=6, batch_size=2, slice_by=["language", "category"], bootstrap_samples=200)
    out = tmp_path / "run"
    results = {
        "candidate": evaluate_model(str(model_dir), str(adapter), str(test), config, CARD, str(out), "candidate"),
        "base": evaluate_model(str(model_dir), None, str(test), config, CARD, str(out), "base"),
    }
    cand = results["candidate"]
    assert cand.label == "candidate" and cand.metrics["n"] == 3
    assert set(cand.by_language) == {"en", "zh"}
    assert set(cand.by_slice["category"]) == {"damage", "defect"}
    rows = read_jsonl(out / "eval" / "predictions_candidate.jsonl")
    assert [r["id"] for r in rows] == ["t1", "t2", "t3"]
    for row in rows:
        assert {"id", "messages", "reference", "prediction", "metadata", "scores"} <= set(row)
        assert row["messages"][-1]["role"] == "user"
        assert {"rougeL", "bleu", "json_valid", "json_field_accuracy"} <= set(row["scores"])

    summary = summarize_evaluation(results, CARD, config, str(out))
    assert json.loads((out / "eval" / "metrics.json").read_text()) == summary.model_dump(mode="json")
    assert EvaluationSummary.model_validate_json((out / "eval" / "metrics.json").read_text()) == summary  # reads back as written
    assert read_jsonl(out / "eval" / "predictions.jsonl") == rows
    comparison = summary.comparisons["base"]
    assert comparison.n == 3 and comparison.ci_low <= comparison.diff <= comparison.ci_high
    assert "champion" not in summary.comparisons
    assert summary.slices.reference == "base"
    assert summary.mlflow_metrics["candidate.json_field_accuracy"] == cand.metrics["json_field_accuracy"]
    assert "base.zh.json_field_accuracy" in summary.mlflow_metrics
    assert "candidate_vs_base.json_field_accuracy.ci_low" in summary.mlflow_metrics


def _result(out, label, answers, references, languages):
    """A hand-made evaluate_model result: scored rows written as predictions_<label>.jsonl."""
    rows = [
        {"id": f"r{i}", "messages": [{"role": "user", "content": "q"}], "reference": ref, "prediction": ans,
         "metadata": {"language": lang}}
        for i, (ans, ref, lang) in enumerate(zip(answers, references, languages, strict=True))
    ]
    score_rows(rows)
    path = out / "eval" / f"predictions_{label}.jsonl"
    write_jsonl(path, rows)
    metrics = aggregate(rows)
    return ModelEvaluation(label=label, predictions=str(path), metrics=metrics["overall"], by_language=metrics["by_language"],
                           by_slice=metrics["by_slice"])


def test_summary_criteria_comparisons_and_slices_on_hand_made_predictions(tmp_path):
    refs = ['{"order": "%d", "product": "kettle"}' % i for i in range(20)]
    langs = ["en"] * 10 + ["zh"] * 10
    good = refs[:]  # candidate: every field right
    half = ['{"order": "%d", "product": "cup"}' % i for i in range(20)]  # base: half the fields
    champ = refs[:10] + half[10:]  # champion: perfect on en, half on zh
    results = {
        "candidate": _result(tmp_path, "candidate", good, refs, langs),
        "base": _result(tmp_path, "base", half, refs, langs),
        "champion": _result(tmp_path, "champion", champ, refs, langs),
    }
    summary = summarize_evaluation(results, CARD, EvalConfig(bootstrap_samples=300), str(tmp_path))
    assert summary.criteria_met is True
    assert [c.value for c in summary.criteria][0] == pytest.approx(1.0)
    base = summary.comparisons["base"]
    assert base.diff == pytest.approx(0.5) and base.ci_low == pytest.approx(0.5)  # every pair differs by 0.5
    champion = summary.comparisons["champion"]
    assert champion.diff == pytest.approx(0.25) and champion.ci_low > 0
    assert summary.slices.reference == "champion"
    deltas = {(r.field, r.value): r.delta for r in summary.slices.rows}
    assert deltas == {("language", "en"): pytest.approx(0.0), ("language", "zh"): pytest.approx(0.5)}

    strict = TaskCard(success_criteria=[{"metric": "json_field_accuracy", "threshold": 0.5}, {"metric": "bleu", "threshold": 1.01}])
    assert summarize_evaluation(results, strict, EvalConfig(), str(tmp_path)).criteria_met is False


def test_unknown_success_metric_fails_with_the_config_key(tmp_path):
    card = TaskCard(success_criteria=[{"metric": "accuracy", "threshold": 0.5}])
    with pytest.raises(LoraflowError, match=r"task_card.success_criteria\[0\].metric"):
        evaluate_model("nowhere", None, "nowhere.jsonl", EvalConfig(), card, str(tmp_path), "candidate")
