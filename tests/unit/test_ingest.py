"""Ingest: every file type and format to canonical records; unreadable rows quarantined with reasons."""
import json

import pandas as pd
import pytest

from loraflow.schemas.config.data import DataConfig
from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.data.ingest import detect_format, ingest_records
from loraflow.tasks.common.jsonl import read_jsonl
from tests.unit.data_support import chat, write_records

ROWS = [
    chat("Hi", "Hello!", topic="greeting"),
    {"instruction": "Translate", "input": "cat", "output": "猫", "system": "Be brief.", "category": "tr"},
    {"conversations": [{"from": "system", "value": "S"}, {"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"}]},
    {"prompt": "2+2?", "completion": "4"},
    {"prompt": [{"role": "user", "content": "P"}], "completion": [{"role": "assistant", "content": "C"}]},
    {"id": "keep-me", "messages": [{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}], "metadata": {"lang": "x"}},
    {"messages": [{"role": "user", "content": [{"type": "text", "text": "part1 "}, {"type": "text", "text": "part2"}]},
                  {"role": "assistant", "content": "ok"}]},
]


def test_every_format_becomes_a_canonical_record(tmp_path):
    result = ingest_records(str(write_records(tmp_path / "in.jsonl", ROWS)), DataConfig(), str(tmp_path))
    recs = read_jsonl(result["records"])
    assert result["counts"] == {"input": 7, "kept": 7, "quarantined": 0,
                                "formats": {"openai": 2, "alpaca": 1, "sharegpt": 1, "prompt_completion": 2, "canonical": 1},
                                "lines": 7}
    assert recs[0]["messages"][-1] == {"role": "assistant", "content": "Hello!"}
    assert recs[0]["metadata"]["topic"] == "greeting" and recs[0]["metadata"]["source_line"] == 1
    assert recs[1]["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Translate\n\ncat"},
                                   {"role": "assistant", "content": "猫"}]
    assert recs[1]["metadata"]["category"] == "tr"
    assert [m["role"] for m in recs[2]["messages"]] == ["system", "user", "assistant"]
    assert recs[3]["messages"] == [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]
    assert recs[4]["messages"][1]["content"] == "C"
    assert recs[5]["id"] == "keep-me" and recs[5]["metadata"]["lang"] == "x"
    assert recs[6]["messages"][0]["content"] == "part1 part2"


def test_ids_are_stable_across_runs_and_distinct_for_repeated_content(tmp_path):
    rows = [chat("same", "same"), chat("same", "same")]
    a = read_jsonl(ingest_records(str(write_records(tmp_path / "a.jsonl", rows)), DataConfig(), str(tmp_path / "a"))["records"])
    b = read_jsonl(ingest_records(str(write_records(tmp_path / "b.jsonl", rows)), DataConfig(), str(tmp_path / "b"))["records"])
    assert [r["id"] for r in a] == [r["id"] for r in b]
    assert a[0]["id"] != a[1]["id"]


def test_bad_rows_are_quarantined_with_line_and_reason(tmp_path):
    rows = [chat("ok", "fine"), "{not json", "[1, 2]", {"text": "no known fields"},
            {"instruction": "x", "output": 5}, {"conversations": [{"from": "robot", "value": "hi"}]},
            {"id": ["bad"], "messages": [{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}]},
            {"messages": "not a list"}]
    result = ingest_records(str(write_records(tmp_path / "in.jsonl", rows)), DataConfig(), str(tmp_path))
    quarantine = {q["line"]: q for q in read_jsonl(result["quarantine"])}
    assert result["counts"]["input"] == 8 and result["counts"]["kept"] == 1 and result["counts"]["quarantined"] == 7
    checks = {line: [r["check"] for r in q["reasons"]] for line, q in quarantine.items()}
    assert checks == {2: ["parse_json"], 3: ["not_an_object"], 4: ["unknown_format"], 5: ["is_text"],
                      6: ["sharegpt_roles_valid"], 7: ["wrong_type"], 8: ["messages_are_turns"]}
    assert quarantine[5]["reasons"][0] == {"check": "is_text", "field": "output", "value": 5}
    assert quarantine[6]["reasons"][0]["field"] == "conversations[0].from" and quarantine[6]["reasons"][0]["value"] == "robot"
    assert quarantine[2]["raw"] == "{not json"


def test_a_named_format_requires_its_fields(tmp_path):
    rows = [{"instruction": "x", "output": "y"}, chat("a", "b")]
    result = ingest_records(str(write_records(tmp_path / "in.jsonl", rows)), DataConfig(format="alpaca"), str(tmp_path))
    (bad,) = read_jsonl(result["quarantine"])
    assert bad["line"] == 2 and {r["field"] for r in bad["reasons"]} == {"instruction", "output"}


def test_json_csv_and_parquet_files(tmp_path):
    (tmp_path / "in.json").write_text(json.dumps({"data": [chat("j1", "a"), chat("j2", "b")]}), encoding="utf-8")
    pd.DataFrame([{"instruction": "c1", "input": "", "output": "o1"},
                  {"instruction": "c2", "input": "more", "output": "o2"}]).to_csv(tmp_path / "in.csv", index=False)
    pd.DataFrame([{"messages": json.dumps(chat("m", "n")["messages"]), "tag": "t"}]).to_csv(tmp_path / "chat.csv", index=False)
    pd.DataFrame([{"prompt": "p", "completion": "c", "ts": 5}]).to_parquet(tmp_path / "in.parquet")
    out = {}
    for name in ("in.json", "in.csv", "chat.csv", "in.parquet"):
        out[name] = read_jsonl(ingest_records(str(tmp_path / name), DataConfig(), str(tmp_path / name.replace(".", "_")))["records"])
    assert [r["messages"][0]["content"] for r in out["in.json"]] == ["j1", "j2"]
    assert [r["messages"][0]["content"] for r in out["in.csv"]] == ["c1", "c2\n\nmore"]
    assert out["in.csv"][0]["metadata"]["source_line"] == 2  # line 1 is the header
    assert out["chat.csv"][0]["messages"][1]["content"] == "n" and out["chat.csv"][0]["metadata"]["tag"] == "t"
    assert out["in.parquet"][0]["metadata"]["ts"] == 5


@pytest.mark.parametrize("name, content, words", [
    ("missing.jsonl", None, "does not exist"),
    ("empty.jsonl", "", "empty"),
    ("data.txt", "hello", "unknown file type"),
    ("broken.json", "[{", "not valid JSON"),
])
def test_unusable_files_raise_one_clear_error(tmp_path, name, content, words):
    path = tmp_path / name
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(LoraflowError, match=words) as err:
        ingest_records(str(path), DataConfig(), str(tmp_path))
    assert str(path) in str(err.value)


def test_detect_format():
    assert detect_format({"messages": []}) == "openai"
    assert detect_format({"id": 1, "messages": [], "metadata": {}}) == "canonical"
    assert detect_format({"conversations": []}) == "sharegpt"
    assert detect_format({"instruction": "", "output": ""}) == "alpaca"
    assert detect_format({"prompt": "", "completion": ""}) == "prompt_completion"
    assert detect_format({"question": ""}) is None
