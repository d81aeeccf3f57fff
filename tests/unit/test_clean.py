"""Cleaning: normalisation, one hand-made record per removal reason, conflicts to review, 1k zh/en files."""
import random

import pytest

from loraflow.schemas.config.clean import CleanConfig
from loraflow.schemas.config.data import DataConfig
from loraflow.schemas.config.split import SplitConfig
from loraflow.tasks.data.clean import clean_records
from loraflow.tasks.data.ingest import ingest_records
from loraflow.tasks.common.jsonl import read_jsonl, write_jsonl
from loraflow.tasks.data.normalize import normalize_text
from loraflow.tasks.data.quality import detect_language
from loraflow.tasks.data.split import split_records
from loraflow.tasks.data.validate import validate_records
from tests.unit.data_support import chinese_record, english_record, write_records


@pytest.mark.parametrize("raw, clean", [
    ("ＡＢＣ１２３　ｘ", "ABC123 x"),                       # full width -> half width (NFKC)
    ("ｶﾀｶﾅ", "カタカナ"),                                  # half-width katakana -> full width
    ("cafÃ©", "café"),                                     # mojibake (ftfy)
    ("one<br>two &amp; <b>three</b> a < b", "one\ntwo & three a < b"),  # HTML remnants, a bare '<' kept
    ("a\x00b\u200bc\x7f", "abc"),                           # control and zero-width characters
    ("  many   spaces \t\r\n\r\n\r\n\r\nend  ", "many spaces\n\nend"),
])
def test_normalize_text(raw, clean):
    assert normalize_text(raw) == clean


def test_detect_language():
    assert detect_language("How do I reset the password for my account?") == "en"
    assert detect_language("请问我的订单什么时候发货？") == "zh"
    assert detect_language("Bonjour, je voudrais annuler ma commande aujourd'hui, merci beaucoup.") == "fr"
    assert detect_language("これは日本語の文章です。") == "ja"


def _rec(rid, user, answer, **meta):
    return {"id": rid, "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}],
            "metadata": {"source_line": int(rid[1:]) if rid[1:].isdigit() else 0, **meta}}


BASE_ANSWER = ("To reset your password, open the account settings page, choose security, then press the reset button "
               "and follow the link that we send to the email address on your account within ten minutes.")
BAD = {  # reason code -> a record that must be removed for it
    "too_short": _rec("b1", "What is the status of my order?", "<br>"),
    "too_long": _rec("b2", "Tell me about the weather in the city today.", "The weather is fine and sunny. " * 800),
    "wrong_language": _rec("b3", "Bonjour, je voudrais annuler ma commande aujourd'hui.", "Votre commande est annulée, merci beaucoup pour votre patience."),
    "refusal": _rec("b4", "Write a poem about the sea for my friend.", "As an AI language model, I cannot write poems."),
    "repetitive": _rec("b5", "Describe the product in a few words please.", "buy now " * 40),
    "copies_question": _rec("b6", "Please explain how the refund process works for my order", "Please explain how the refund process works for my order."),
    "exact_duplicate": _rec("b7", "How do I reset my password?", BASE_ANSWER),
    "near_duplicate": _rec("b8", "How do I reset my password?", BASE_ANSWER.replace("ten minutes", "ten minutes please")),
}


def _clean(tmp_path, records, config=None, languages=("en", "zh")):
    path = tmp_path / "in.jsonl"
    write_jsonl(path, records)
    return clean_records(str(path), config or CleanConfig(), list(languages), str(tmp_path))


@pytest.mark.parametrize("code", sorted(BAD))
def test_each_low_quality_record_is_removed_with_its_reason(tmp_path, code):
    keeper = _rec("k1", "How do I reset my password?", BASE_ANSWER)
    other = _rec("k2", "请问我的订单什么时候发货？", "您好，您的订单将在三天内发货，请耐心等待。")
    result = _clean(tmp_path, [keeper, other, BAD[code]])
    (removed,) = read_jsonl(result["removed"])
    assert removed["reason"] == code and removed["id"] == BAD[code]["id"] and removed["line"] == int(BAD[code]["id"][1:])
    assert removed["record"]["id"] == BAD[code]["id"] and removed["detail"]
    if code.endswith("duplicate"):
        assert removed["duplicate_of"] == "k1"
    assert result["counts"]["removed"] == {code: 1} and result["counts"]["kept"] == 2
    assert {r["id"] for r in read_jsonl(result["records"])} == {"k1", "k2"}


def test_each_filter_can_be_switched_off_or_rethresholded(tmp_path):
    config = CleanConfig(filter_language=False, filter_refusals=False, max_repeated_ngram_ratio=1.0, max_copy_similarity=1.0,
                         max_total_chars=100_000, min_answer_chars=0, exact_dedup=False, near_dedup=False,
                         conflicts_to_review=False)
    records = [r for code, r in BAD.items() if code != "too_short"]  # an empty turn is never kept
    result = _clean(tmp_path, records, config, languages=["en"])
    assert result["counts"]["removed_total"] == 0 and result["counts"]["kept"] == len(records)
    strict = _clean(tmp_path, records, CleanConfig(max_copy_similarity=0.5, max_total_chars=50_000), languages=["en"])
    assert {r["reason"] for r in read_jsonl(strict["removed"])} >= {"copies_question", "wrong_language", "refusal"}


def test_conflicting_answers_go_to_review_not_kept_or_dropped(tmp_path):
    a = _rec("c1", "Which plan includes phone support?", "The business plan includes phone support on weekdays.")
    b = _rec("c2", "Which plan includes phone support?", "Only the enterprise plan has phone support, around the clock.")
    c = _rec("c3", "What is the price of the basic plan?", "The basic plan costs five dollars a month.")
    result = _clean(tmp_path, [a, b, c])
    review = read_jsonl(result["review"])
    assert sorted(r["id"] for r in review) == ["c1", "c2"]
    assert review[0]["review"]["reason"] == "conflicting_answers" and review[0]["review"]["conflicts_with"] == ["c2"]
    assert [r["id"] for r in read_jsonl(result["records"])] == ["c3"]
    assert result["counts"]["input"] == result["counts"]["kept"] + result["counts"]["removed_total"] + result["counts"]["review"]


def test_cleaned_records_are_normalised_and_language_tagged(tmp_path):
    result = _clean(tmp_path, [_rec("n1", "Ｈｏｗ  do I <b>reset</b> it?", "Open  the settings&nbsp;page and press the reset button.")])
    (record,) = read_jsonl(result["records"])
    assert record["messages"][0]["content"] == "How do I reset it?"
    assert record["messages"][1]["content"] == "Open the settings page and press the reset button."
    assert record["metadata"]["language"] == "en"


@pytest.mark.parametrize("maker, language", [(english_record, "en"), (chinese_record, "zh")])
def test_a_1k_record_file_through_all_data_stages(tmp_path, maker, language):
    rng = random.Random(7)
    rows = [maker(rng, i) for i in range(1000)]
    rows += rows[:30]  # exact duplicates
    near = []
    for row in rows[100:130]:
        near.append({"instruction": row["instruction"], "output": row["output"] + ("!" if language == "en" else "！")})
    rows += [r if language == "zh" else {**r, "output": r["output"][:-1] + " now."} for r in near]
    path = write_records(tmp_path / "in.jsonl", rows)
    ingest = ingest_records(str(path), DataConfig(), str(tmp_path))
    valid = validate_records(ingest["records"], DataConfig(), [language], None, 4096, str(tmp_path))
    clean = clean_records(valid["records"], CleanConfig(), [language], str(tmp_path))
    split = split_records(clean["records"], SplitConfig(), str(tmp_path))
    removed = clean["counts"]["removed"]
    assert removed.get("exact_duplicate") == 30
    assert removed.get("near_duplicate", 0) >= 27  # one-character edits of 30 records: MinHash may miss a borderline one
    assert clean["counts"]["languages"] == {language: clean["counts"]["kept"]}
    total = valid["counts"]["quarantined"] + clean["counts"]["removed_total"] + clean["counts"]["review"]
    assert ingest["counts"]["input"] == 1060 == sum(split["counts"][s] for s in ("train", "val", "test")) + total
