"""Validation: one hand-made bad record per reason code, the invalid-share stop, pilot mode, token lengths."""
import pytest

from loraflow.schemas.config.data import DataConfig
from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.common.jsonl import read_jsonl, write_jsonl
from loraflow.tasks.data.validate import invalid_share, validate_records

GOOD = {"id": "good", "messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}],
        "metadata": {"source_line": 1}}


def _rec(rid, messages, line, metadata=None):
    return {"id": rid, "messages": messages, "metadata": {"source_line": line} if metadata is None else metadata}


BAD = {  # reason code -> (record, field named in the reason, value named in the reason)
    "roles_valid": (_rec("r1", [{"role": "user", "content": "q"}, {"role": "bot", "content": "a"}, {"role": "assistant", "content": "b"}], 2),
                    "messages[1].role", "bot"),
    "ends_with_assistant": (_rec("r2", [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}, {"role": "user", "content": "again"}], 3),
                            "messages[2].role", "user"),
    "has_user_turn": (_rec("r3", [{"role": "system", "content": "s"}, {"role": "assistant", "content": "a"}], 4),
                      "messages[*].role", ["system", "assistant"]),
    "no_empty_content": (_rec("r4", [{"role": "user", "content": "q"}, {"role": "assistant", "content": "  "}], 5),
                         "messages[1].content", "  "),
    "messages_structure": (_rec("r5", [{"role": "user", "content": 7}, {"role": "assistant", "content": "a"}], 6),
                           "messages[0].content", 7),
    "unique_id": (_rec("good", [{"role": "user", "content": "other"}, {"role": "assistant", "content": "x"}], 7), "id", "good"),
    "id_is_text": (_rec(" ", [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], 8), "id", " "),
    "metadata_is_object": ({"id": "r8", "messages": GOOD["messages"], "metadata": "oops"}, "metadata", "oops"),
}


def _run(tmp_path, records, config=None, **kw):
    path = tmp_path / "in.jsonl"
    write_jsonl(path, records)
    return validate_records(str(path), config or DataConfig(max_invalid_share=1.0), ["en"], kw.pop("tokenizer", None),
                            kw.pop("max_tokens", 512), str(tmp_path), **kw)


@pytest.mark.parametrize("code", sorted(BAD))
def test_each_bad_record_is_quarantined_with_its_reason(tmp_path, code):
    record, field, value = BAD[code]
    result = _run(tmp_path, [GOOD, record])
    assert result["counts"]["kept"] == 1 and result["counts"]["quarantined"] == 1
    (row,) = read_jsonl(result["quarantine"])
    assert {"check": code, "field": field, "value": value} in row["reasons"]
    assert row["line"] == (record["metadata"].get("source_line") if isinstance(record["metadata"], dict) else None)
    assert read_jsonl(result["records"])[0]["id"] == "good"


def test_all_failures_of_a_row_are_collected(tmp_path):
    record = _rec("multi", [{"role": "bot", "content": ""}], 9)
    (row,) = read_jsonl(_run(tmp_path, [GOOD, record])["quarantine"])
    assert {r["check"] for r in row["reasons"]} == {"roles_valid", "ends_with_assistant", "has_user_turn", "no_empty_content"}


def test_over_the_invalid_share_stops_with_exit_code_2_after_writing(tmp_path):
    records = [dict(GOOD, id=f"g{i}") for i in range(9)] + [BAD["roles_valid"][0]]
    with pytest.raises(LoraflowError) as err:
        _run(tmp_path, records, DataConfig(max_invalid_share=0.05))
    assert err.value.exit_code == 2 and "10.0%" in str(err.value) and "roles_valid" in str(err.value)
    assert len(read_jsonl(err.value.result["quarantine"])) == 1 and len(read_jsonl(err.value.result["records"])) == 9


def test_ingest_quarantine_counts_toward_the_share(tmp_path):
    records = [dict(GOOD, id=f"g{i}") for i in range(95)]
    assert _run(tmp_path, records, DataConfig(max_invalid_share=0.05), prior_quarantined=5, prior_input=100)["counts"]["invalid_share"] == 0.05
    with pytest.raises(LoraflowError):
        _run(tmp_path, records[:94], DataConfig(max_invalid_share=0.05), prior_quarantined=6, prior_input=100)
    assert invalid_share(10, 100, 9, 90) == pytest.approx(0.19)


def test_pilot_mode_samples_reproducibly(tmp_path):
    records = [dict(GOOD, id=f"g{i}", metadata={"source_line": i + 1}) for i in range(500)]
    first = _run(tmp_path / "a", records, DataConfig(pilot=100, seed=3))
    second = _run(tmp_path / "b", records, DataConfig(pilot=100, seed=3))
    assert first["counts"]["kept"] == 100 and first["counts"]["pilot_skipped"] == 400 and first["pilot"]
    assert [r["id"] for r in read_jsonl(first["records"])] == [r["id"] for r in read_jsonl(second["records"])]
    other = _run(tmp_path / "c", records, DataConfig(pilot=100, seed=4))
    assert [r["id"] for r in read_jsonl(other["records"])] != [r["id"] for r in read_jsonl(first["records"])]


def test_token_length_uses_the_model_tokenizer_and_its_chat_template(tmp_path, tiny_model_path):
    long = _rec("long", [{"role": "user", "content": "word " * 300}, {"role": "assistant", "content": "ok"}], 2)
    result = _run(tmp_path, [GOOD, long], tokenizer=str(tiny_model_path), max_tokens=64)
    (row,) = read_jsonl(result["quarantine"])
    (reason,) = row["reasons"]
    assert reason["check"] == "max_tokens" and reason["field"] == "n_tokens" and reason["value"] > 64
    (kept,) = read_jsonl(result["records"])
    assert 2 < kept["metadata"]["n_tokens"] <= 64  # the template's role markers count too


def test_a_missing_tokenizer_is_a_clear_error(tmp_path):
    with pytest.raises(LoraflowError, match="cannot load a tokenizer"):
        _run(tmp_path, [GOOD], tokenizer=str(tmp_path / "nope"))
