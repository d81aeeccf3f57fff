"""Field-aware evaluation of JSON answers: per-field scores, trivial baselines, and a gate that refuses collapse."""
import json
import random

import numpy as np
import pytest

from loraflow.schemas.config import EvalConfig, TaskCard
from loraflow.tasks.evaluation.baselines import baseline_rows
from loraflow.tasks.evaluation.compare import compare_predictions
from loraflow.schemas.results import ModelEvaluation
from loraflow.tasks.evaluation.evaluate import check_task_card_metrics, evaluate_baselines, score_rows, summarize_evaluation, answer_fields
from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.evaluation.field_metrics import categorical_report, resampled_headline, resolve_fields
from loraflow.tasks.common.jsonl import read_jsonl, write_jsonl
from loraflow.tasks.evaluation.metrics import aggregate
from loraflow.tasks.evaluation.promotion import should_promote

CATEGORIES = ["billing", "technical", "account", "shipping", "refund"]
PRIORITIES = ["low", "medium", "medium", "high"]
FIELDS = {"category": CATEGORIES, "priority": ["low", "medium", "high"], "product": "text"}
CARD = TaskCard(fields=FIELDS, success_criteria=[{"metric": "json_field_score", "threshold": 0.5}])


def _records(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    records = []
    for i in range(n):
        answer = {"category": CATEGORIES[i % 5], "priority": rng.choice(PRIORITIES), "product": rng.choice(["CloudDrive", "云盘", "FitBand"])}
        records.append({"id": f"r{seed}-{i}", "messages": [{"role": "system", "content": "Extract the ticket as JSON."},
                                                           {"role": "user", "content": f"ticket {i}"},
                                                           {"role": "assistant", "content": json.dumps(answer, ensure_ascii=False)}],
                        "metadata": {"language": "en"}})
    return records


def _rows(records: list[dict], answer) -> list[dict]:
    """Prediction rows as evaluation writes them, with the answer made from the reference object."""
    return [{"id": r["id"], "messages": r["messages"][:-1], "reference": r["messages"][-1]["content"],
             "prediction": answer(json.loads(r["messages"][-1]["content"])), "metadata": r["metadata"]} for r in records]


def _result(tmp_path, label: str, rows: list[dict], fields) -> ModelEvaluation:
    score_rows(rows, fields)
    path = tmp_path / "eval" / f"predictions_{label}.jsonl"
    write_jsonl(path, rows)
    metrics = aggregate(rows)
    return ModelEvaluation(label=label, predictions=str(path), metrics=metrics["overall"], by_language=metrics["by_language"],
                           by_slice=metrics["by_slice"], fields=metrics["fields"])


@pytest.fixture()
def split(tmp_path):
    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    write_jsonl(train, _records(60, 1))
    write_jsonl(test, _records(40, 2))
    return train, test


def test_categorical_report_counts_every_class_and_the_wrong_values():
    report = categorical_report(["a", "a", "b", "c"], ["a", "b", "b", "(missing)"])
    assert report["accuracy"] == 0.5
    # a: P 1/1 R 1/2 F1 2/3; b: P 1/2 R 1/1 F1 2/3; c: never answered F1 0 -> macro (2/3 + 2/3 + 0) / 3
    assert report["macro_f1"] == pytest.approx(4 / 9)
    assert report["confusion"]["labels"] == ["a", "b", "c", "(missing)"] and report["confusion"]["matrix"][2][3] == 1
    assert report["predicted_distribution"] == {"a": 1, "b": 2, "(missing)": 1}
    assert report["top_reference"] == "a" and report["top_reference_share"] == 0.5


def test_resampled_headline_on_the_full_sample_equals_the_report():
    rng = np.random.default_rng(0)
    refs = rng.integers(0, 4, 50)
    preds = np.where(rng.random(50) < 0.7, refs, rng.integers(0, 6, 50))
    labels = [str(i) for i in range(6)]
    report = categorical_report([labels[i] for i in refs], [labels[i] for i in preds])
    assert resampled_headline("categorical", refs, preds, np.arange(50)[None, :])[0] == pytest.approx(report["macro_f1"])


def test_fields_are_inferred_from_references_when_the_card_declares_none():
    refs = [{"category": CATEGORIES[i % 5], "product": f"product {i}", "n": i % 2} for i in range(40)]
    kinds = {spec.name: spec.kind for spec in resolve_fields({}, refs)}
    assert kinds == {"category": "categorical", "product": "text", "n": "categorical"}


def test_unknown_field_metric_names_the_allowed_ones():
    with pytest.raises(LoraflowError, match="field.<name>.<stat>"):
        check_task_card_metrics(TaskCard(fields=FIELDS, success_criteria=[{"metric": "field.product.macro_f1", "threshold": 0.5}]))
    check_task_card_metrics(TaskCard(fields=FIELDS, success_criteria=[{"metric": "field.category.accuracy", "threshold": 0.5}]))


def test_majority_baseline_answers_the_most_frequent_training_value(split):
    train, test = split
    rows = baseline_rows(str(train), str(test), answer_fields(str(test), CARD))
    answers = {json.loads(r["prediction"])["priority"] for r in rows["majority"]}
    assert answers == {"medium"}
    assert len({r["prediction"] for r in rows["stratified"]}) > 3  # draws vary


def _evaluate(tmp_path, split, candidate_answer, base_answer=lambda ref: "I cannot help with that."):
    train, test = split
    config = EvalConfig(bootstrap_samples=300)
    fields = answer_fields(str(test), CARD)
    records = read_jsonl(test)
    results = {"candidate": _result(tmp_path, "candidate", _rows(records, candidate_answer), fields),
               "base": _result(tmp_path, "base", _rows(records, base_answer), fields)}
    results.update(evaluate_baselines(str(train), str(test), config, CARD, str(tmp_path)))
    summary = summarize_evaluation(results, CARD, config, str(tmp_path))
    return summary, should_promote(summary, CARD, config)


def test_gate_refuses_a_candidate_that_answers_one_class_for_everything(tmp_path, split):
    def collapsed(ref):  # the format and the product right, the classes constant: the failure the average hid
        return json.dumps({"category": "billing", "priority": "medium", "product": ref["product"]}, ensure_ascii=False)

    summary, decision = _evaluate(tmp_path, split, collapsed)
    assert summary.candidate.metrics["json_field_accuracy"] > 0.6  # the old headline looked fine
    failures = " | ".join(decision.failures)
    assert decision.promote is False
    assert "field category does not collapse: the candidate answers 'billing' for 100%" in failures
    assert "field category: candidate macro-F1" in failures and "must lie above 0" in failures
    assert "field priority does not collapse" in failures


def test_gate_promotes_a_candidate_that_learned_every_field(tmp_path, split):
    summary, decision = _evaluate(tmp_path, split, lambda ref: json.dumps(ref, ensure_ascii=False))
    assert decision.promote is True, decision.failures
    assert summary.field_checks["category"].vs_majority.ci_low > 0
    table = summary.labels
    assert table["candidate"].fields["category"].macro_f1 == 1.0
    assert table["majority"].fields["category"].macro_f1 < 0.4


def test_a_first_champion_must_beat_the_base_model_not_tie_it(tmp_path, split):
    def nothing(ref):
        return "no idea"

    _, decision = _evaluate(tmp_path, split, nothing, base_answer=nothing)
    assert decision.promote is False
    assert any("ties (CI contains 0) with base on json_field_score (a first champion must beat the base model)" in f
               for f in decision.failures)


def test_comparison_on_json_field_score_recomputes_macro_f1_per_resample(tmp_path, split):
    summary, _ = _evaluate(tmp_path, split, lambda ref: json.dumps(ref, ensure_ascii=False))
    base = summary.comparisons["base"]
    assert base.metric == "json_field_score" and base.candidate_mean == 1.0 and base.other_mean == 0.0
    again = compare_predictions(summary.candidate.predictions, summary.labels["majority"].predictions,
                                "field.category.macro_f1", 200)
    assert again["diff"] == pytest.approx(1.0 - summary.labels["majority"].fields["category"].macro_f1)
