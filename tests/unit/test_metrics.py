"""Metrics: Chinese and English text scores, JSON field accuracy, and aggregation by slice."""
import pytest
import sacrebleu

from loraflow.tasks.evaluation.metrics import METRIC_NAMES, aggregate, detect_language, json_field_scores, parse_json_object, score_pair


def test_chinese_rouge_is_nonzero_for_overlapping_text_and_zero_with_rouge_default_tokenizer():
    from rouge_score import rouge_scorer

    pred, ref = "我的订单还没有发货，请帮我查询物流", "我的订单没有发货，请查询物流信息"
    default = rouge_scorer.RougeScorer(["rouge1"]).score(ref, pred)["rouge1"].fmeasure
    scores = score_pair(pred, ref, "zh")
    assert default == 0.0  # why jieba is needed at all
    assert 0.6 < scores["rouge1"] < 1.0
    assert 0.3 < scores["rouge2"] < scores["rouge1"]
    assert scores["bleu"] > 0.2 and scores["chrf"] > 0.3
    assert scores["exact_match"] == 0.0


def test_identical_text_scores_one_and_disjoint_text_scores_near_zero():
    same = score_pair("退款已经处理完毕", "退款已经处理完毕", "zh")
    assert all(same[m] == pytest.approx(1.0) for m in ("bleu", "rouge1", "rouge2", "rougeL", "chrf", "exact_match"))
    other = score_pair("The weather is nice today", "Your refund has been processed", "en")
    assert other["rouge1"] == 0.0 and other["exact_match"] == 0.0 and other["bleu"] < 0.05


def test_english_scores_match_sacrebleu_and_hand_computed_rouge():
    pred, ref = "the cat sat on the mat", "the cat sat on a mat"
    scores = score_pair(pred, ref, "en")
    assert scores["bleu"] == pytest.approx(sacrebleu.sentence_bleu(pred, [ref]).score / 100)
    # 5 of 6 unigrams shared (the, cat, sat, on, mat): P = R = 5/6
    assert scores["rouge1"] == pytest.approx(5 / 6)
    assert score_pair("Order  Shipped ", "order shipped", "en")["exact_match"] == 1.0


def test_json_field_accuracy_on_hand_made_cases():
    ref = '{"category": "billing", "priority": "high", "order_id": 4411, "customer": {"name": "Li Wei", "vip": true}}'
    # 5 leaf fields; the prediction gets category (case/space), order_id ("4411" == 4411) and name right,
    # priority and vip wrong, and adds one extra field.
    pred = '```json\n{"category": " Billing", "priority": "low", "order_id": "4411", "customer": {"name": "li wei", "vip": false}, "x": 1}\n```'
    scores = score_pair(pred, ref, "en")
    assert scores["json_valid"] == 1.0
    assert scores["json_field_accuracy"] == pytest.approx(3 / 5)
    precision, recall = 3 / 6, 3 / 5
    assert scores["json_field_f1"] == pytest.approx(2 * precision * recall / (precision + recall))
    assert scores["exact_match"] == 0.0


def test_json_same_object_other_order_is_exact_match_and_broken_json_scores_zero():
    ref = '{"a": "x", "b": [1, 2]}'
    assert score_pair('{"b": [1, 2], "a": "X"}', ref, "en")["exact_match"] == 1.0
    broken = score_pair('{"a": "x", "b": [1, 2]', ref, "en")
    assert broken["json_valid"] == 0.0 and broken["json_field_accuracy"] == 0.0 and broken["json_field_f1"] == 0.0
    assert "json_valid" not in score_pair("plain answer", "plain text reference", "en")


def test_json_helpers():
    assert parse_json_object("[1, 2]") is None and parse_json_object("sure: {}") is None
    assert parse_json_object('```\n{"k": 1}\n```') == {"k": 1}
    assert json_field_scores({}, {}) == {"json_field_accuracy": 1.0, "json_field_f1": 1.0}
    assert json_field_scores({"a": 1}, {"a": 1, "b": 2})["json_field_accuracy"] == 0.5
    assert set(METRIC_NAMES) >= {"bleu", "rougeL", "chrf", "exact_match", "json_field_accuracy"}


def test_detect_language():
    assert detect_language("请帮我查询订单 4411 status") == "zh"
    assert detect_language("Please check order 4411") == "en"


def _row(pred, ref, lang, category):
    return {"prediction": pred, "reference": ref, "metadata": {"language": lang, "category": category},
            "scores": score_pair(pred, ref, lang)}


def test_aggregate_overall_by_language_and_slice():
    rows = [
        _row("退款已处理", "退款已处理", "zh", "billing"),
        _row("我的订单没有到", "订单还没有到", "zh", "shipping"),
        _row("refund processed", "refund processed", "en", "billing"),
        _row("no idea", "the parcel is late", "en", "shipping"),
    ]
    result = aggregate(rows, slice_by=["language", "category"])
    overall = result["overall"]
    assert overall["n"] == 4
    assert overall["exact_match"] == pytest.approx(0.5)
    assert overall["rougeL"] == pytest.approx(sum(r["scores"]["rougeL"] for r in rows) / 4)
    assert 0 < overall["bleu"] < 1  # corpus BLEU, not the mean of sentence BLEU
    assert set(result["by_language"]) == {"en", "zh"}
    assert result["by_language"]["zh"]["rouge1"] > 0.5
    assert result["by_slice"]["category"]["billing"]["exact_match"] == 1.0
    assert result["by_slice"]["category"]["shipping"]["exact_match"] == 0.0
    assert result["by_slice"]["language"]["en"]["n"] == 2
    assert aggregate([])["overall"]["n"] == 0
