"""Preference pairs through the data stages: every input layout, the contract, review, dedup and leak-free splits."""
import pytest

from loraflow.schemas.config.clean import CleanConfig
from loraflow.schemas.config.data import DataConfig
from loraflow.schemas.config.split import SplitConfig
from loraflow.tasks.data.clean import clean_records
from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.data.ingest import detect_format, ingest_records
from loraflow.tasks.common.jsonl import read_jsonl
from loraflow.tasks.data.split import split_records
from loraflow.tasks.data.validate import validate_records
from tests.unit.data_support import write_records

SYSTEM = "Extract the support ticket as JSON with keys category, priority, product."


def ticket(i: int) -> str:
    return f"Ticket {i}: my order number {i * 7919} for the Router X{i} never arrived and I need it before friday {i}."


def answer(i: int, priority: str) -> str:
    return f'{{"category": "shipping", "priority": "{priority}", "product": "Router X{i}"}}'


def layouts(i: int) -> dict:
    """One pair in each supported layout (cycled by i)."""
    user, good, bad = ticket(i), answer(i, "high"), answer(i, "low")
    turns = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]
    return [
        {"prompt": user, "chosen": good, "rejected": bad},
        {"prompt": turns, "chosen": [{"role": "assistant", "content": good}], "rejected": [{"role": "assistant", "content": bad}]},
        {"chosen": [*turns, {"role": "assistant", "content": good}], "rejected": [*turns, {"role": "assistant", "content": bad}]},
        {"input": {"messages": turns}, "preferred_output": [{"role": "assistant", "content": good}],
         "non_preferred_output": [{"role": "assistant", "content": bad}]},
        {"id": f"p{i}", "messages": [*turns, {"role": "assistant", "content": good}], "rejected": bad, "metadata": {}},
    ][i % 5]


def test_detect_format_of_pair_layouts():
    assert [detect_format(layouts(i)) for i in range(5)] == [
        "preference", "preference", "preference", "openai_preference", "canonical_preference"]


def test_every_layout_becomes_the_same_canonical_pair(tmp_path):
    path = write_records(tmp_path / "pairs.jsonl", [layouts(i) for i in range(5)])
    result = ingest_records(str(path), DataConfig(), str(tmp_path))
    records = read_jsonl(result["records"])
    assert result["kind"] == "preference" and result["counts"]["quarantined"] == 0
    for i, record in enumerate(records):
        assert record["messages"][-1] == {"role": "assistant", "content": answer(i, "high")}
        assert record["messages"][-2] == {"role": "user", "content": ticket(i)}
        assert record["rejected"] == answer(i, "low")
    # the conversational layouts keep their system turn; the plain string one has none
    assert [r["messages"][0]["role"] for r in records] == ["user", "system", "system", "system", "system"]


def test_malformed_pairs_are_quarantined_with_reasons(tmp_path):
    turns = [{"role": "user", "content": "hi"}]
    rows = [layouts(0),
            {"prompt": "q", "chosen": 5, "rejected": "b"},  # chosen is not text
            {"chosen": [*turns, {"role": "assistant", "content": "a"}],  # the two sides ask different things
             "rejected": [{"role": "user", "content": "other"}, {"role": "assistant", "content": "b"}]},
            {"prompt": "q", "chosen": [{"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"}],
             "rejected": "c"},  # two answers on one side
            {"id": "x", "messages": [*turns, {"role": "assistant", "content": "a"}], "rejected": "", "metadata": {}}]
    ingested = ingest_records(str(write_records(tmp_path / "bad.jsonl", rows)), DataConfig(), str(tmp_path))
    checks = {q["line"]: q["reasons"][0]["check"] for q in read_jsonl(ingested["quarantine"])}
    assert checks == {2: "one_answer_or_conversation", 3: "prompt_mismatch", 4: "one_answer"}
    validated = validate_records(ingested["records"], DataConfig(max_invalid_share=1.0), ["en"], None, 512, str(tmp_path))
    reasons = [r["check"] for q in read_jsonl(validated["quarantine"]) for r in q["reasons"]]
    assert reasons == ["rejected_is_text"] and validated["counts"]["kept"] == 1


def test_kind_sft_keeps_chosen_and_kind_preference_quarantines_plain_records(tmp_path):
    plain = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    path = write_records(tmp_path / "mixed.jsonl", [layouts(0), plain])
    with pytest.raises(LoraflowError, match="data.kind"):
        ingest_records(str(path), DataConfig(), str(tmp_path))
    sft = ingest_records(str(path), DataConfig(kind="sft"), str(tmp_path))
    assert sft["kind"] == "sft" and all("rejected" not in r for r in read_jsonl(sft["records"]))
    pref = ingest_records(str(path), DataConfig(kind="preference"), str(tmp_path))
    assert [q["reasons"][0]["check"] for q in read_jsonl(pref["quarantine"])] == ["not_a_pair"]


def test_clean_reviews_pairs_without_contrast_and_removes_duplicates_then_splits_without_leaks(tmp_path):
    rows = []
    for i in range(40):
        user, good, bad = ticket(i), answer(i, "high"), answer(i, "low")
        rows.append({"id": f"p{i}", "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": good}],
                     "rejected": bad, "metadata": {}})
    same = dict(rows[0], id="same", rejected=rows[0]["messages"][-1]["content"])
    flipped = dict(rows[1], id="flip", messages=[rows[1]["messages"][0], {"role": "assistant", "content": rows[1]["rejected"]}],
                   rejected=rows[1]["messages"][-1]["content"])
    exact = dict(rows[2], id="copy")
    # the same prompt and chosen answer with another rejected answer is a new pair, not a duplicate
    other_rejected = dict(rows[3], id="other", rejected=answer(3, "medium"))
    path = write_records(tmp_path / "pairs.jsonl", rows + [same, flipped, exact, other_rejected])
    ingested = ingest_records(str(path), DataConfig(), str(tmp_path))
    validated = validate_records(ingested["records"], DataConfig(), ["en"], None, 512, str(tmp_path))
    cleaned = clean_records(validated["records"], CleanConfig(near_dedup=False), ["en"], str(tmp_path))
    review = {r["id"]: r["review"]["reason"] for r in read_jsonl(cleaned["review"])}
    assert review == {"same": "chosen_equals_rejected", "p1": "contradicting_preferences", "flip": "contradicting_preferences"}
    assert cleaned["counts"]["removed"] == {"exact_duplicate": 1}
    kept = read_jsonl(cleaned["records"])
    assert "other" in {r["id"] for r in kept} and all(r["rejected"] for r in kept)
    splits = split_records(cleaned["records"], SplitConfig(seed=1), str(tmp_path))
    where = {r["id"]: name for name in ("train", "val", "test") for r in read_jsonl(splits[name])}
    assert where["other"] == where["p3"]  # pairs of one prompt never straddle splits
    assert all("rejected" in r for name in ("train", "val", "test") for r in read_jsonl(splits[name]))


def test_augmented_children_of_a_pair_keep_both_answers(tmp_path):
    from loraflow.schemas.config.augment import AugmentConfig
    from loraflow.tasks.data.augment import augment_records
    from loraflow.tasks.common.jsonl import write_jsonl

    pairs = [{"id": f"p{i}", "messages": [{"role": "user", "content": ticket(i)}, {"role": "assistant", "content": answer(i, "high")}],
              "rejected": answer(i, "low"), "metadata": {"language": "en", "source_line": i + 1}} for i in range(6)]
    path = tmp_path / "data" / "train.jsonl"
    write_jsonl(path, pairs)
    result = augment_records(str(path), AugmentConfig(synonym=True, paraphrase=True, ratio=1.0), ["en"], str(tmp_path))
    children = [r for r in read_jsonl(result.records) if r["metadata"].get("augment_method")]
    parents = {p["id"]: p for p in pairs}
    assert children and all(c["rejected"] == parents[c["metadata"]["parent_id"]]["rejected"] for c in children)
