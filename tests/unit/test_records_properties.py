"""Property tests: whatever the input, every record is accounted for and splits never overlap."""
import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loraflow.schemas.config.clean import CleanConfig
from loraflow.schemas.config.data import DataConfig
from loraflow.schemas.config.split import SplitConfig
from loraflow.tasks.data.clean import clean_records
from loraflow.tasks.data.report import conservation
from loraflow.tasks.data.ingest import ingest_records
from loraflow.tasks.common.jsonl import read_jsonl
from loraflow.tasks.data.split import split_records
from loraflow.tasks.data.validate import validate_records

PROMPTS = ["How do I reset my password?", "请问订单什么时候发货？", "What is the refund policy for damaged items?",
           "How can I change the delivery address of my order?", "发票怎么开？"]
ANSWERS = ["Open settings, choose security and press reset; a link arrives by email within minutes.",
           "您好，订单会在三天内发货，请耐心等待。", "Damaged items are refunded in full within fourteen days of delivery.",
           "As an AI language model, I cannot help with that.", "ok"]
text = st.one_of(st.sampled_from(PROMPTS + ANSWERS), st.text(alphabet="abc 你好。\n\t<br>&amp;ＡＢ", min_size=0, max_size=30))
message = st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system", "bot"]), "content": text})
record = st.one_of(
    st.builds(lambda p, a: {"messages": [{"role": "user", "content": p}, {"role": "assistant", "content": a}]},
              st.sampled_from(PROMPTS), st.sampled_from(ANSWERS)),
    st.builds(lambda m: {"messages": m}, st.lists(message, min_size=0, max_size=4)),
    st.builds(lambda i, o: {"instruction": i, "output": o}, text, st.one_of(text, st.integers())),
    st.just("{not json"),
    st.just({"unknown": 1}),
)


def _run(rows, out: Path, frozen=None):
    path = out / "in.jsonl"
    out.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows), encoding="utf-8")
    ingest = ingest_records(str(path), DataConfig(), str(out))
    valid = validate_records(ingest["records"], DataConfig(max_invalid_share=1.0), ["en", "zh"], None, 4096, str(out),
                             ingest["counts"]["quarantined"], ingest["counts"]["input"])
    clean = clean_records(valid["records"], CleanConfig(), ["en", "zh"], str(out))
    split = split_records(clean["records"], SplitConfig(frozen_test=frozen), str(out))
    return [ingest, valid, clean, split]


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(record, min_size=1, max_size=30))
def test_counts_are_conserved_and_splits_disjoint(rows):
    with tempfile.TemporaryDirectory() as tmp:
        results = _run(rows, Path(tmp))
        report = conservation({r["stage"]: r["counts"] for r in results})  # raises when a record goes missing
        assert report["input"] == len(rows)
        assert report["input"] == report["kept"] + report["quarantined"] + report["removed"] + report["review"]
        ids = [r["id"] for name in ("train", "val", "test") for r in read_jsonl(results[3][name])]
        assert len(ids) == len(set(ids)) == report["kept"]
        assert set(ids) == {r["id"] for r in read_jsonl(results[2]["records"])}


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(record, min_size=1, max_size=20), st.lists(record, min_size=0, max_size=10))
def test_a_frozen_test_set_never_leaks_into_train_or_val(first, more):
    with tempfile.TemporaryDirectory() as tmp:
        run1 = _run(first, Path(tmp) / "a")
        frozen = read_jsonl(run1[3]["test"])
        run2 = _run(first + more, Path(tmp) / "b", frozen=run1[3]["test"])
        test2 = read_jsonl(run2[3]["test"])
        trainval = read_jsonl(run2[3]["train"]) + read_jsonl(run2[3]["val"])
        assert {r["id"] for r in frozen} <= {r["id"] for r in test2}
        frozen_texts = {json.dumps(r["messages"]) for r in frozen}
        assert not frozen_texts & {json.dumps(r["messages"]) for r in trainval}
        ids = [r["id"] for r in test2 + trainval]
        assert len(ids) == len(set(ids))
