"""Offline rewrite rules: request-template swaps and clause reordering in English and Chinese."""
import random

from loraflow.tasks.data.augment_rules import back_translation_by_rules, paraphrase_by_rules, reorder_clauses, swap_request_template


def test_english_request_forms_swap_and_keep_the_request():
    forms = {swap_request_template("Could you summarize the report below?\nSales rose.", "en", random.Random(s))
             for s in range(20)}
    assert "Could you summarize the report below?\nSales rose." not in forms
    assert "Please summarize the report below.\nSales rose." in forms
    assert "Summarize the report below.\nSales rose." in forms
    assert all(f.endswith("\nSales rose.") and "summarize the report below" in f.lower() for f in forms)


def test_english_imperative_keeps_its_colon_and_payload():
    text = "Extract the fields as JSON:\nAlice's mouse broke."
    for seed in range(10):
        out = swap_request_template(text, "en", random.Random(seed))
        assert out != text and out.endswith(":\nAlice's mouse broke.") and "extract the fields as json" in out.lower()


def test_text_that_is_no_request_is_left_alone():
    assert swap_request_template("The weather is nice today.", "en", random.Random(0)) == "The weather is nice today."
    assert swap_request_template("今天天气很好。", "zh", random.Random(0)) == "今天天气很好。"


def test_chinese_request_forms_swap():
    forms = {swap_request_template("请帮我取消订单。", "zh", random.Random(s)) for s in range(20)}
    assert "请帮我取消订单。" not in forms
    assert {"麻烦取消订单。", "能否取消订单？", "你能取消订单吗？"} <= forms


def test_clauses_move_within_a_sentence_only():
    assert reorder_clauses("If the order shipped, send me the tracking number.", "en") == \
        "Send me the tracking number if the order shipped."
    assert reorder_clauses("I want a refund because the screen is cracked.", "en") == \
        "Because the screen is cracked, I want a refund."
    ticket = "Summarize this:\nThe mouse stopped after two days."
    assert reorder_clauses(ticket, "en") == ticket  # "after" is a preposition here; nothing crosses the colon
    assert reorder_clauses("因为屏幕碎了，所以我想退款。", "zh") == "我想退款，因为屏幕碎了。"
    assert reorder_clauses("我想退款，因为屏幕碎了。", "zh") == "因为屏幕碎了，所以我想退款。"


def test_rule_rewrites_are_seeded_and_keep_protected_values():
    text = "Could you help me buy a new phone for Alice Smith? I need it quickly."
    a = paraphrase_by_rules(text, "en", random.Random(3), keep=["phone", "Alice Smith"])
    assert a == paraphrase_by_rules(text, "en", random.Random(3), keep=["phone", "Alice Smith"])
    for seed in range(10):
        for rewrite in (paraphrase_by_rules, back_translation_by_rules):
            out = rewrite(text, "en", random.Random(seed), keep=["phone", "Alice Smith"])
            assert "phone" in out and "Alice Smith" in out and out != text
