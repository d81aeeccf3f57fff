"""The streaming data stages write what the in-memory stages write: every output file byte for byte, every count.

Small batches and partitions make ids, duplicates, near duplicates and conflicts fall across batch and partition
boundaries, where the global steps (id uniqueness, exact/near dedup, conflicts, units) must still see them.
"""
import importlib.util
import json
import random
import sys
from pathlib import Path

import pytest

from loraflow.schemas.config import CleanConfig, DataConfig, SplitConfig
from loraflow.schemas.results import Splits
from loraflow.tasks.data.streaming import io as stream_io
from loraflow.tasks.data.clean import clean_records
from loraflow.tasks.data.engine import LocalEngine
from loraflow.tasks.data.report import write_data_report
from loraflow.tasks.data.stages import stage_result, streaming_plan
from loraflow.tasks.data.ingest import ingest_records
from loraflow.tasks.common.jsonl import read_jsonl, write_jsonl
from loraflow.tasks.data.split import split_records
from loraflow.tasks.data.streaming.clean import clean_stream
from loraflow.tasks.data.streaming.ingest import ingest_stream
from loraflow.tasks.data.streaming.split import split_stream
from loraflow.tasks.data.streaming.validate import validate_stream
from loraflow.tasks.data.validate import validate_records
from tests.conftest import REPO

OUTPUTS = ("data/stages/ingested.jsonl", "data/stages/quarantine_ingest.jsonl", "data/stages/validated.jsonl",
           "data/stages/quarantine_validate.jsonl", "data/stages/cleaned.jsonl", "data/stages/removed.jsonl",
           "data/stages/review.jsonl", "data/train.jsonl", "data/val.jsonl", "data/test.jsonl",
           "data/stages/leakage_moves.jsonl")
PART_BYTES = 40_000  # ~130 records a partition


def _generator():
    if str(REPO / "benchmarks") not in sys.path:  # data_bench imports its neighbour bench_common
        sys.path.append(str(REPO / "benchmarks"))
    spec = importlib.util.spec_from_file_location("data_bench", REPO / "benchmarks" / "data_bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate


def chat(user, answer, **extra):
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}], **extra}


BAD_ROWS = [
    "{not json", "", json.dumps({"messages": [{"role": "user", "content": "hi"}]}),  # unparseable, blank, no answer
    json.dumps({"id": "dup", **chat("first question?", "the first answer here")}),
    json.dumps({"id": "dup", **chat("second question?", "the second answer here")}),  # id repeated (later batch)
    json.dumps(chat("Why not?", "As an AI language model, I cannot do that.")),  # refusal
    json.dumps(chat("Label it", '{"a": 1}', metadata={"language": "en"})),
    json.dumps(chat("Label it", '{"a": 2}', metadata={"language": "en"})),  # conflicting answers: review
    json.dumps({"id": 5, **chat("x", "")}),  # empty answer
    json.dumps({"instruction": "Say hi", "output": "hi there friend"}),  # alpaca
    json.dumps({"id": "dup", "messages": [{"role": "user", "content": "q?"}, {"role": "bogus", "content": "x"}]}),
]


@pytest.fixture(scope="module")
def mixed_input(tmp_path_factory) -> Path:
    """3,000 benchmark records (5% exact and 5% near copies) with bad rows spread through them."""
    path = tmp_path_factory.mktemp("input") / "in.jsonl"
    _generator()(path, 3000, seed=3)
    lines = path.read_text(encoding="utf-8").splitlines()
    rng = random.Random(1)
    for row in BAD_ROWS:
        lines.insert(rng.randrange(len(lines)), row)
    with path.open("wb") as f:
        f.write("\n".join(lines).encode() + b"\n" + b'{"broken": \xff\xfe}\n')  # a line that is not UTF-8
    return path


def run_memory(src: Path, out: Path, data=DataConfig(), clean=CleanConfig(), split=SplitConfig()) -> list[dict]:
    i = ingest_records(str(src), data, str(out))
    v = validate_records(i["records"], data, ["en", "zh"], None, 4096, str(out), i["counts"]["quarantined"], i["counts"]["input"])
    c = clean_records(v["records"], clean, ["en", "zh"], str(out))
    return [i, v, c, split_records(c["records"], split, str(out))]


def run_stream(src: Path, out: Path, engine, data=DataConfig(), clean=CleanConfig(), split=SplitConfig()) -> list[dict]:
    i = ingest_stream(str(src), data, str(out), engine, PART_BYTES)
    v = validate_stream(i["records"], data, ["en", "zh"], None, 4096, str(out), engine, PART_BYTES,
                        i["counts"]["quarantined"], i["counts"]["input"])
    c = clean_stream(v["records"], clean, ["en", "zh"], str(out), engine, PART_BYTES)
    return [i, v, c, split_stream(c["records"], split, str(out), engine, PART_BYTES)]


def typed(results: list[dict]) -> list:
    """The in-memory or streamed path's dicts as the stage results the report reads."""
    return [stage_result(r, None) for r in results[:3]] + [Splits.from_dict(results[3])]


def assert_same(a: Path, b: Path, results_a: list[dict], results_b: list[dict]) -> None:
    for x, y in zip(results_a, results_b):
        assert x["counts"] == y["counts"], x["stage"]
    for name in OUTPUTS:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def ids(path: Path, key="id") -> set:
    return {r.get(key) if key != "raw" else json.dumps(r["raw"], sort_keys=True) for r in read_jsonl(path)}


@pytest.fixture()
def small_batches(monkeypatch):
    monkeypatch.setattr(stream_io, "BATCH_LINES", 97)


def test_streamed_stages_write_the_same_files_as_in_memory(mixed_input, tmp_path, small_batches):
    memory = run_memory(mixed_input, tmp_path / "memory")
    stream = run_stream(mixed_input, tmp_path / "stream", LocalEngine())
    assert_same(tmp_path / "memory", tmp_path / "stream", memory, stream)
    counts = memory[2]["counts"]
    assert counts["removed"]["exact_duplicate"] > 100 and counts["removed"]["near_duplicate"] > 50 and counts["review"] >= 2
    assert memory[1]["counts"]["reasons"]["unique_id"] == 2 and memory[0]["counts"]["quarantined"] == 2
    # The report (with its conservation check) reads the same from either run.
    reports = [json.loads(Path(write_data_report(str(tmp_path / d), typed(r), None).report_json).read_text())
               for d, r in (("memory", memory), ("stream", stream))]
    for report in reports:
        report.pop("files")
    assert reports[0] == reports[1] and reports[0]["conservation"]["holds"]


def test_preference_pairs_stream_like_in_memory(tmp_path, small_batches):
    rng = random.Random(0)
    rows = []
    for i in range(600):
        words = " ".join(rng.choice(["alpha", "beta", "gamma", "delta", "omega", f"w{i}"]) for _ in range(12))
        rows.append({"prompt": f"Question {i}: {words}?", "chosen": f"Good answer {i} {words}", "rejected": f"Bad {i}",
                     "metadata": {"language": "en"}})
    rows += [rows[10], rows[400], {"prompt": "Same?", "chosen": "yes it is", "rejected": "yes it is"},
             {"prompt": rows[5]["prompt"], "chosen": rows[5]["rejected"], "rejected": rows[5]["chosen"],
              "metadata": {"language": "en"}}]
    src = tmp_path / "pairs.jsonl"
    write_jsonl(src, rows)
    memory = run_memory(src, tmp_path / "memory")
    stream = run_stream(src, tmp_path / "stream", LocalEngine())
    assert memory[0]["kind"] == stream[0]["kind"] == "preference"
    assert_same(tmp_path / "memory", tmp_path / "stream", memory, stream)
    assert memory[2]["counts"]["review"] == 3 and memory[2]["counts"]["removed"]["exact_duplicate"] == 2


def _cleaned(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    words = [f"v{i}" for i in range(300)]
    out = []
    for i in range(n):
        text = " ".join(rng.choice(words) for _ in range(20))
        if i % 17 == 0 and out:  # a near copy of an earlier record
            prev = out[rng.randrange(len(out))]["messages"]
            user, answer = prev[0]["content"], prev[1]["content"].replace(prev[1]["content"].split()[0], "changed", 1)
        else:
            user, answer = f"question {i} {text}", f"answer {i} {text[::-1]}"
        meta = {"language": rng.choice(["en", "zh"]), "topic": f"t{rng.randrange(40)}", "ts": 1_700_000_000 + rng.randrange(10**6)}
        if i % 23 == 0 and i:
            meta["parent_id"] = f"c{rng.randrange(i)}"
        out.append({"id": f"c{i}", "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}],
                    "metadata": meta})
    return out


@pytest.mark.parametrize("options", [{}, {"stratify_by": "language"}, {"group_by": "topic"}, {"time_field": "ts"},
                                     {"leakage_compare": "conversation", "seed": 7}, {"frozen": True}],
                         ids=["random", "stratified", "grouped", "by-time", "conversation", "frozen-test"])
def test_split_streamed_equals_in_memory(tmp_path, small_batches, options):
    records = _cleaned(1500)
    options = dict(options)
    if options.pop("frozen", False):
        frozen = tmp_path / "frozen_test.jsonl"
        new = [{**r, "id": f"f{i}"} for i, r in enumerate(_cleaned(60, seed=9)[::2])]
        write_jsonl(frozen, records[:100] + new)  # 100 already in the pool, 30 new
        options["frozen_test"] = str(frozen)
    config = SplitConfig(**options)
    for name in ("memory", "stream"):
        write_jsonl(tmp_path / name / "cleaned.jsonl", records)
    a = split_records(str(tmp_path / "memory" / "cleaned.jsonl"), config, str(tmp_path / "memory"))
    b = split_stream(str(tmp_path / "stream" / "cleaned.jsonl"), config, str(tmp_path / "stream"), LocalEngine(), PART_BYTES)
    assert a["counts"] == b["counts"] and a["leakage_moves_sample"] == b["leakage_moves_sample"]
    assert a["counts"]["clustered_records"] > 0
    for name in ("data/train.jsonl", "data/val.jsonl", "data/test.jsonl", "data/stages/leakage_moves.jsonl"):
        assert (tmp_path / "memory" / name).read_bytes() == (tmp_path / "stream" / name).read_bytes(), name


def test_dask_cluster_of_two_workers_gives_the_local_sets(mixed_input, tmp_path):
    """A local 2-worker Dask cluster started here: kept, removed, review and quarantine sets equal the local run's."""
    pytest.importorskip("distributed")
    from loraflow.tasks.data.engine import engine_for

    engine = engine_for("dask", workers=2)
    assert engine.workers == 2
    local = run_stream(mixed_input, tmp_path / "local", LocalEngine())
    dask = run_stream(mixed_input, tmp_path / "dask", engine)
    for name, key in (("data/stages/cleaned.jsonl", "id"), ("data/stages/removed.jsonl", "id"),
                      ("data/stages/review.jsonl", "id"), ("data/stages/quarantine_ingest.jsonl", "raw"),
                      ("data/stages/quarantine_validate.jsonl", "id")):
        assert ids(tmp_path / "local" / name, key) == ids(tmp_path / "dask" / name, key), name
    assert_same(tmp_path / "local", tmp_path / "dask", local, dask)
    assert len(stream_io.partitions(mixed_input, PART_BYTES)) > 4  # the work really was partitioned


def test_streaming_plan_follows_config_and_input(tmp_path):
    small = tmp_path / "small.jsonl"
    write_jsonl(small, [chat("q?", "an answer")])
    csv = tmp_path / "data.csv"
    csv.write_text("instruction,output\nq,a\n")
    assert streaming_plan(DataConfig(), str(small)) is None  # auto: under data.stream_above_mb
    assert streaming_plan(DataConfig(stream_above_mb=0), str(small)).engine == "local"
    assert streaming_plan(DataConfig(streaming="on"), str(small)).part_bytes == 64_000_000
    assert streaming_plan(DataConfig(streaming="off", engine="dask"), str(small)).engine == "dask"
    assert streaming_plan(DataConfig(streaming="on"), str(csv)) is None  # CSV loads into memory
    utf16 = tmp_path / "utf16.jsonl"
    utf16.write_bytes(json.dumps(chat("q?", "a")).encode("utf-16"))
    assert streaming_plan(DataConfig(streaming="on"), str(utf16)) is None


def test_partitions_cover_every_line_once(tmp_path):
    path = tmp_path / "f.jsonl"
    path.write_bytes(b"".join(f'{{"n": {i}}}\n'.encode() if i % 7 else b"\n" for i in range(1000)) + b'{"n": "last"}')
    parts = stream_io.partitions(path, 500)
    lines = [n for p in parts for batch in stream_io.line_batches(p, 13) for n, _ in batch]
    assert lines == list(range(1, 1002)) and len(parts) > 10


def test_validate_pilot_and_stop_stream_like_in_memory(mixed_input, tmp_path, small_batches):
    from loraflow.tasks.common.errors import LoraflowError

    for config in (DataConfig(pilot=700), DataConfig(max_invalid_share=0.0)):
        runs = {}
        for name in ("memory", "stream"):
            out = tmp_path / name / str(config.pilot)
            i = (ingest_records(str(mixed_input), config, str(out)) if name == "memory"
                 else ingest_stream(str(mixed_input), config, str(out), LocalEngine(), PART_BYTES))
            args = (i["records"], config, ["en", "zh"], None, 4096, str(out))
            prior = (i["counts"]["quarantined"], i["counts"]["input"])
            try:
                runs[name] = (validate_records(*args, *prior) if name == "memory"
                              else validate_stream(*args, LocalEngine(), PART_BYTES, *prior))["counts"]
            except LoraflowError as error:  # over data.max_invalid_share: the same stop, the same merged quarantine
                runs[name] = (str(error).replace(str(out), "OUT"), error.result["counts"],
                              (out / "data" / "quarantine.jsonl").read_bytes())
            runs[name + "_files"] = [(out / "data" / "stages" / f).read_bytes() for f in ("validated.jsonl", "quarantine_validate.jsonl")]
        assert runs["memory"] == runs["stream"] and runs["memory_files"] == runs["stream_files"]
    assert isinstance(runs["memory"], tuple) and "data.max_invalid_share=0" in runs["memory"][0]
