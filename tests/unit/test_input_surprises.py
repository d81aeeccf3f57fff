"""Issue 24, item 5: no silent surprises from the input: "\\r"-only line endings, a stratify_by field that no record
has (in memory and streamed), a gzip file."""
import gzip
import json
import random

import pytest

from loraflow.schemas.config import DataConfig, SplitConfig
from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.common.jsonl import read_jsonl, write_jsonl
from loraflow.tasks.data.engine import LocalEngine
from loraflow.tasks.data.ingest import ingest_records
from loraflow.tasks.data.split import split_records
from loraflow.tasks.data.streaming.ingest import streamable
from loraflow.tasks.data.streaming.split import split_stream
from tests.unit.data_support import EN_EXTRA


def chat(i: int) -> dict:
    return {"messages": [{"role": "user", "content": f"question {i}"}, {"role": "assistant", "content": f"answer {i}"}]}


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_a_file_whose_lines_end_at_cr_only_is_read_line_by_line(tmp_path, encoding):
    path = tmp_path / "mac.jsonl"
    path.write_bytes("\r".join(json.dumps(chat(i)) for i in range(5)).encode(encoding) + "\r".encode(encoding)[-2 if encoding == "utf-16" else -1:])
    result = ingest_records(str(path), DataConfig(), str(tmp_path / "out"))
    assert result["counts"]["kept"] == 5 and result["counts"]["lines"] == 5
    records = read_jsonl(result["records"])
    assert [r["metadata"]["source_line"] for r in records] == [1, 2, 3, 4, 5]
    assert not streamable(path)  # the streaming reader splits at "\n": such a file is read whole


def test_crlf_and_a_stray_cr_inside_a_line_stay_as_before(tmp_path):
    path = tmp_path / "dos.jsonl"
    lines = [json.dumps(chat(0)), json.dumps({"messages": [{"role": "user", "content": "a\rb"},
                                                           {"role": "assistant", "content": "c"}]})]
    path.write_bytes("\r\n".join(lines).encode() + b"\r\n")
    records = read_jsonl(ingest_records(str(path), DataConfig(), str(tmp_path / "out"))["records"])
    assert len(records) == 2 and records[1]["messages"][0]["content"] == "a\rb"


def records(n: int) -> list[dict]:
    rng = random.Random(0)
    return [{"id": f"r{i}", "messages": [{"role": "user", "content": f"question {i} " + " ".join(rng.choice(EN_EXTRA) for _ in range(20))},
                                         {"role": "assistant", "content": f"answer {i}"}],
             "metadata": {"language": "en", "category": ["a", "b"][i % 2]}} for i in range(n)]


@pytest.mark.parametrize("path_kind", ["memory", "stream"])
def test_stratify_by_a_field_no_record_has_fails_naming_the_fields_records_have(tmp_path, path_kind):
    path = tmp_path / "cleaned.jsonl"
    write_jsonl(path, records(40))
    config = SplitConfig(stratify_by="categroy")
    with pytest.raises(LoraflowError, match="split.stratify_by: no record has metadata.categroy") as error:
        if path_kind == "memory":
            split_records(str(path), config, str(tmp_path))
        else:
            split_stream(str(path), config, str(tmp_path), LocalEngine(), 2048)
    assert "category" in str(error.value) and "language" in str(error.value)


def test_stratify_by_a_field_some_records_have_still_splits(tmp_path):
    rows = records(40)
    for row in rows[::3]:
        del row["metadata"]["category"]
    path = tmp_path / "cleaned.jsonl"
    write_jsonl(path, rows)
    result = split_records(str(path), SplitConfig(stratify_by="category"), str(tmp_path))
    assert sum(len(read_jsonl(result[name])) for name in ("train", "val", "test")) == 40


def test_a_gzip_file_is_named_gzip_not_an_encoding_error(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_bytes(gzip.compress(b"\n".join(json.dumps(chat(i)).encode() for i in range(3))))
    with pytest.raises(LoraflowError, match="compressed with gzip; decompress it first"):
        ingest_records(str(path), DataConfig(), str(tmp_path / "out"))
