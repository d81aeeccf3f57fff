"""A record (or prompt) longer than any limit is found too long without tokenizing all of it (issue 24, item 7)."""
from transformers import AutoTokenizer

from loraflow.schemas.config.data import DataConfig
from loraflow.tasks.common.jsonl import read_jsonl, write_jsonl
from loraflow.tasks.common.token_budget import capped_token_counts, char_limit, longest_token_chars
from loraflow.tasks.data.validate import validate_records


def test_a_text_past_the_character_bound_is_counted_only_as_far_as_it_must_be(tiny_model_path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_path)
    word = "x" * 200_000  # one single word: the case that tokenized for a minute at 40 MB
    whole = len(tokenizer(word, add_special_tokens=False)["input_ids"])
    (capped,) = capped_token_counts(tokenizer, [word], max_tokens=64)
    assert 64 < capped < whole  # certainly over the limit, yet not the whole text's count
    assert capped == len(tokenizer(word[:char_limit(tokenizer, 64)], add_special_tokens=False)["input_ids"])
    assert longest_token_chars(tokenizer) == max(len(t) for t in tokenizer.get_vocab())
    # Below the bound nothing changes.
    short = "a short ticket about a refund " * 3
    assert capped_token_counts(tokenizer, [short], 64) == [len(tokenizer(short, add_special_tokens=False)["input_ids"])]


def test_the_bound_holds_for_every_text_over_it(tiny_model_path):
    """Text longer than char_limit has more tokens than the limit, whatever it is made of."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_path)
    limit = 32
    for piece in ("x", "ab ", "我的云盘", "{\"category\": \"billing\"} ", "\n", "<|im_start|>"):
        text = piece * (char_limit(tokenizer, limit) // len(piece) + 1)
        assert len(tokenizer(text, add_special_tokens=False)["input_ids"]) > limit, piece


def test_a_huge_single_word_record_is_quarantined_as_too_long(tmp_path, tiny_model_path):
    huge = {"id": "huge", "messages": [{"role": "user", "content": "y" * 2_000_000}, {"role": "assistant", "content": "ok"}],
            "metadata": {"source_line": 2}}
    good = {"id": "good", "messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}],
            "metadata": {"source_line": 1}}
    path = tmp_path / "in.jsonl"
    write_jsonl(path, [good, huge])
    result = validate_records(str(path), DataConfig(max_invalid_share=1.0), ["en"], str(tiny_model_path), 128, str(tmp_path))
    (row,) = read_jsonl(result["quarantine"])
    assert row["id"] == "huge"
    assert [(r["check"], r["field"]) for r in row["reasons"]] == [("max_tokens", "n_tokens")]
    assert row["reasons"][0]["value"] > 128
    assert [r["id"] for r in read_jsonl(result["records"])] == ["good"]
