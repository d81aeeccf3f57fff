"""The classical baseline (TF-IDF + logistic regression per categorical field) and the gate rule eval.beat_classical."""
import json
import random

import pytest

from loraflow.schemas.config import EvalConfig, TaskCard
from loraflow.tasks.common.jsonl import read_jsonl, write_jsonl
from loraflow.tasks.evaluation.baselines import baseline_rows
from loraflow.tasks.evaluation.classical import fit_predict, request_text, word_ngrams
from loraflow.schemas.results import ModelEvaluation
from loraflow.tasks.evaluation.evaluate import answer_fields, evaluate_baselines, evaluation_table, score_rows, summarize_evaluation
from loraflow.tasks.evaluation.metrics import aggregate
from loraflow.tasks.evaluation.promotion import should_promote

# The category is said by a keyword in the request (a classifier learns it); the priority is not in the text at all.
KEYWORDS = {"billing": ["invoice", "charged twice", "发票"], "shipping": ["parcel", "delivery", "快递"],
            "account": ["password", "login", "账号"], "refund": ["money back", "refund", "退款"]}
FIELDS = {"category": list(KEYWORDS), "priority": ["low", "high"], "product": "text"}
CARD = TaskCard(fields=FIELDS, success_criteria=[{"metric": "json_field_score", "threshold": 0.3}])


def _records(n: int, seed: int, ambiguous: float = 0.0) -> list[dict]:
    rng = random.Random(seed)
    records = []
    for i in range(n):
        category = list(KEYWORDS)[i % 4]
        keyword = rng.choice(KEYWORDS[category]) if rng.random() >= ambiguous else "something"
        text = f"Hello, about my {keyword} for order {rng.randint(100, 999)}, {rng.choice(['thanks', 'please help', '谢谢'])}"
        answer = {"category": category, "priority": rng.choice(["low", "high"]), "product": f"P{i}"}
        records.append({"id": f"r{seed}-{i}", "messages": [
            {"role": "system", "content": "Extract the ticket as JSON: refund shipping billing account."},
            {"role": "user", "content": text}, {"role": "assistant", "content": json.dumps(answer)}],
            "metadata": {"language": "en"}})
    return records


def _split(tmp_path, ambiguous: float = 0.0):
    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    write_jsonl(train, _records(80, 1))
    write_jsonl(test, _records(48, 2, ambiguous))
    return str(train), str(test)


def test_request_text_is_the_user_turns_only_and_chinese_is_segmented_into_words():
    turns = [{"role": "system", "content": "S"}, {"role": "user", "content": "a"}, {"role": "assistant", "content": "x"},
             {"role": "user", "content": "b"}]
    assert request_text(turns) == "a\nb"
    assert "退款" in word_ngrams("我要退款，谢谢") and "hello world" in word_ngrams("Hello world!")


def test_fit_predict_learns_keywords_and_a_single_class_is_answered_as_is():
    texts = ["my invoice is wrong", "parcel is late", "invoice twice", "late parcel delivery"] * 5
    labels = ["billing", "shipping", "billing", "shipping"] * 5
    assert fit_predict(texts, labels, ["wrong invoice again", "where is the parcel"]) == ["billing", "shipping"]
    assert fit_predict(["a", "b"], ["x", "x"], ["c"]) == ["x"]


def test_classical_rows_predict_categorical_fields_from_the_request_never_text_fields(tmp_path):
    train, test = _split(tmp_path)
    rows = baseline_rows(train, test, answer_fields(test, CARD))
    answers = [json.loads(r["prediction"]) for r in rows["classical"]]
    assert all(set(a) == {"category", "priority"} for a in answers)  # no guess at the free-text product
    right = sum(a["category"] == json.loads(r["reference"])["category"] for a, r in zip(answers, rows["classical"]))
    assert right == len(answers)  # the keyword decides the category: a classifier gets every one
    # the system prompt names every class: if it leaked into the features it could not separate them; it does not


def test_evaluation_scores_classical_on_categorical_fields_and_shows_it_in_the_table(tmp_path):
    train, test = _split(tmp_path)
    results = evaluate_baselines(train, test, EvalConfig(bootstrap_samples=200), CARD, str(tmp_path))
    assert list(results) == ["classical", "majority", "stratified"]
    assert set(results["classical"].fields) == {"category", "priority"}
    assert results["classical"].fields["category"].accuracy == 1.0
    assert results["majority"].fields["category"].accuracy == pytest.approx(0.25)


def _candidate(records: list[dict], answer, tmp_path, fields) -> ModelEvaluation:
    rows = [{"id": r["id"], "messages": r["messages"][:-1], "reference": r["messages"][-1]["content"],
             "prediction": answer(json.loads(r["messages"][-1]["content"])), "metadata": r["metadata"]} for r in records]
    score_rows(rows, fields)
    path = tmp_path / "eval" / "predictions_candidate.jsonl"
    write_jsonl(path, rows)
    metrics = aggregate(rows)
    return ModelEvaluation(label="candidate", predictions=str(path), metrics=metrics["overall"], by_language=metrics["by_language"],
                           by_slice=metrics["by_slice"], fields=metrics["fields"])


def _gate(tmp_path, config: EvalConfig, ambiguous: float, answer):
    train, test = _split(tmp_path, ambiguous)
    results = {"candidate": _candidate(read_jsonl(test), answer, tmp_path, answer_fields(test, CARD))}
    results.update(evaluate_baselines(train, test, config, CARD, str(tmp_path)))
    summary = summarize_evaluation(results, CARD, config, str(tmp_path))
    return summary, should_promote(summary, CARD, config)


def _perfect(ref: dict) -> str:
    return json.dumps(ref)


def test_a_candidate_no_better_than_the_classifier_is_promoted_with_a_warning_under_warn(tmp_path):
    summary, decision = _gate(tmp_path, EvalConfig(bootstrap_samples=300), 0.0, _perfect)
    assert summary.field_checks["category"].classical_accuracy == 1.0
    assert decision.promote is True, decision.failures
    warnings = " | ".join(decision.warnings)
    assert "field category" in warnings and "does not beat (CI contains 0) the classical baseline" in warnings
    assert "eval.beat_classical=warn" in warnings
    row = {r["model"]: r for r in evaluation_table(summary, "json_field_score")}
    assert row["classical"]["category accuracy"] == 1.0 and "product exact_match" not in row["classical"]


def test_require_refuses_a_candidate_that_does_not_beat_the_classifier(tmp_path):
    _, decision = _gate(tmp_path, EvalConfig(bootstrap_samples=300, beat_classical="require"), 0.0, _perfect)
    assert decision.promote is False
    assert any("field category" in f and "classical baseline" in f for f in decision.failures)


def test_a_candidate_that_beats_the_classifier_passes_the_rule(tmp_path):
    # half the test requests carry no keyword: the classifier guesses; the candidate answers right
    summary, decision = _gate(tmp_path, EvalConfig(bootstrap_samples=300, beat_classical="require"), 0.5, _perfect)
    check = summary.field_checks["category"]
    assert check.classical_accuracy < 0.85 and check.vs_classical.ci_low > 0
    assert any(r.startswith("pass: field category") and "beats the classical baseline" in r for r in decision.reasons)
    assert summary.mlflow_metrics["candidate_vs_classical.field.category.macro_f1.diff"] > 0


def test_off_skips_the_rule(tmp_path):
    _, decision = _gate(tmp_path, EvalConfig(bootstrap_samples=300, beat_classical="off"), 0.0, _perfect)
    assert not any("classical" in r for r in decision.reasons)
