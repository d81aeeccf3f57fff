"""Hostile input files: directories, byte-order marks, UTF-16, undecodable bytes, stray carriage returns.

Line numbers and counts must match `wc -l` and an editor (lines end at "\\n" only).
"""
import json

import pandas as pd
import pytest

from loraflow.schemas.config.data import DataConfig
from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.data.ingest import ingest_records
from loraflow.tasks.common.jsonl import read_jsonl, write_jsonl
from loraflow.tasks.data.validate import validate_records
from tests.unit.data_support import chat

LINES = [json.dumps(chat(f"订单{i}在哪里? where is order {i}", f"answer {i}"), ensure_ascii=False) for i in range(50)]
TEXT = "\n".join(LINES) + "\n"


def ingest(path, tmp_path):
    result = ingest_records(str(path), DataConfig(), str(tmp_path / "out"))
    return result, read_jsonl(result["records"]), read_jsonl(result["quarantine"])


def test_a_directory_is_named_as_a_directory(tmp_path):
    with pytest.raises(LoraflowError, match="is a directory"):
        ingest_records(str(tmp_path), DataConfig(), str(tmp_path / "out"))


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_jsonl_in_every_unicode_encoding_is_read_whole(tmp_path, encoding):
    path = tmp_path / "in.jsonl"
    path.write_bytes(TEXT.encode(encoding))  # utf-16 and utf-32 write a BOM; utf-16-le/-be do not
    result, records, quarantine = ingest(path, tmp_path)
    assert quarantine == []
    assert result["counts"]["input"] == result["counts"]["kept"] == 50
    assert records[7]["messages"][0]["content"] == "订单7在哪里? where is order 7"
    assert records[7]["metadata"]["source_line"] == 8


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
def test_json_and_csv_with_a_byte_order_mark(tmp_path, encoding):
    (tmp_path / "in.json").write_bytes(json.dumps([chat("a", "b"), chat("c", "d")]).encode(encoding))
    pd.DataFrame([{"instruction": "c1", "output": "o1"}]).to_csv(tmp_path / "in.csv", index=False, encoding=encoding)
    assert [r["messages"][0]["content"] for r in ingest(tmp_path / "in.json", tmp_path)[1]] == ["a", "c"]
    assert ingest(tmp_path / "in.csv", tmp_path)[1][0]["messages"][0]["content"] == "c1"


def test_undecodable_lines_are_quarantined_naming_the_encoding_on_their_own_line(tmp_path):
    raw = TEXT.encode("utf-8").split(b"\n")
    raw[3] = b"\xff\xfe binary \r junk \r\r more \x00"  # stray CRs: not line ends for wc -l or an editor
    raw[9] = LINES[9].encode("latin-1", "replace")[:-4] + b"\xe9\"}]}"
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join(raw))
    result, records, quarantine = ingest(path, tmp_path)
    assert result["counts"]["lines"] == path.read_bytes().count(b"\n") == 50  # what wc -l says
    assert result["counts"]["input"] == 50 and result["counts"]["kept"] == 48
    assert {q["line"]: q["reasons"][0]["check"] for q in quarantine} == {4: "encoding", 10: "encoding"}
    assert "UTF-8" in quarantine[0]["reasons"][0]["value"]
    assert [r["metadata"]["source_line"] for r in records][:5] == [1, 2, 3, 5, 6]


def test_crlf_line_ends_keep_the_editor_line_numbers(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(("\r\n".join(LINES[:3] + ["{broken"] + LINES[3:5]) + "\r\n").encode())
    result, records, quarantine = ingest(path, tmp_path)
    assert [q["line"] for q in quarantine] == [4] and result["counts"]["input"] == 6
    assert [r["metadata"]["source_line"] for r in records] == [1, 2, 3, 5, 6]


def test_the_invalid_share_error_lists_every_quarantine_reason_of_both_stages(tmp_path):
    path = tmp_path / "in.jsonl"
    rows = LINES[:4] + ["{not json", "[1]", json.dumps({"text": "x"})]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    ingested = ingest_records(str(path), DataConfig(), str(tmp_path))
    bad = {"id": "b", "messages": [{"role": "robot", "content": "x"}, {"role": "assistant", "content": ""}], "metadata": {}}
    records = read_jsonl(ingested["records"]) + [bad]
    write_jsonl(tmp_path / "ingested.jsonl", records)
    with pytest.raises(LoraflowError) as err:
        validate_records(str(tmp_path / "ingested.jsonl"), DataConfig(max_invalid_share=0.1), ["en", "zh"], None, 512,
                         str(tmp_path), prior_quarantined=3, prior_input=7)
    message = str(err.value)
    for check in ("parse_json x1", "not_an_object x1", "unknown_format x1", "roles_valid x1", "no_empty_content x1"):
        assert check in message, message
