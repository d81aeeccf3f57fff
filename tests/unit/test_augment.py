"""augment_records on small Chinese and English train files, offline and against a real local chat server."""
import json

import httpx
import pytest
from tests.unit.chat_server_support import ChatServer, running

from loraflow.schemas.config.augment import AugmentConfig
from loraflow.schemas.results import DataStageResult
from loraflow.tasks.data.augment import augment_records
from loraflow.tasks.data.augment_gate import answer_values
from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.common.jsonl import read_jsonl, write_jsonl

PROMPTS = [
    ("en0", "en", "Could you help me cancel my order? The package arrived broken and I need a refund quickly.",
     "I'm sorry. I cancelled the order and started your refund."),
    ("en1", "en", "Extract the fields from this support ticket as JSON:\nCustomer Alice Smith says her wireless mouse "
     "stopped working after two days. Order 4411.", '{"customer": "Alice Smith", "product": "wireless mouse", "order": "4411"}'),
    ("en2", "en", "Please summarize the text below.\nThe quarterly meeting was moved to Friday because the main room "
     "is being repaired.", "The meeting moved to Friday because of repairs."),
    ("zh0", "zh", "请帮我取消订单，包裹到的时候已经损坏了，我需要尽快退款。", "非常抱歉，已为您取消订单并发起退款。"),
    ("zh1", "zh", "从下面的客服工单中提取字段并以JSON格式输出：\n客户张伟说他的无线鼠标用了两天就坏了，订单号4411。",
     '{"customer": "张伟", "product": "无线鼠标", "order": "4411"}'),
    ("zh2", "zh", "你能帮我查一下物流吗？我购买的电脑已经一周没有更新了。", "已为您查询，包裹正在运输中。"),
]
RECORDS = [
    {"id": rid, "messages": [{"role": "system", "content": "You are a support assistant."},
                             {"role": "user", "content": prompt}, {"role": "assistant", "content": answer}],
     "metadata": {"language": lang, "source_line": i + 1}}
    for i, (rid, lang, prompt, answer) in enumerate(PROMPTS)
]
OFFLINE = AugmentConfig(synonym=True, paraphrase=True, back_translation=True, ratio=1.0)


def _train(tmp_path, records=RECORDS):
    """Write records as the split's train file and return its path."""
    path = tmp_path / "data" / "train.jsonl"
    write_jsonl(path, records)
    return str(path)


def _augmented(path):
    """The augmented rows of a train file."""
    return [r for r in read_jsonl(path) if r["metadata"].get("augment_method")]


def test_no_method_enabled_leaves_the_file_untouched(tmp_path):
    train = _train(tmp_path)
    before = (tmp_path / "data" / "train.jsonl").read_bytes()
    result = augment_records(train, AugmentConfig(), ["en", "zh"], str(tmp_path))
    assert result == DataStageResult(stage="augment", records=train, counts={"augmented": 0, "rejected": {}, "by_method": {}})
    assert (tmp_path / "data" / "train.jsonl").read_bytes() == before
    assert not (tmp_path / "data" / "stages").exists()


def test_offline_methods_add_gated_children_in_both_languages(tmp_path):
    result = augment_records(_train(tmp_path / "in"), OFFLINE, ["en", "zh"], str(tmp_path / "out"))
    rows = read_jsonl(result.records)
    by_id = {r["id"]: r for r in RECORDS}
    originals = [r for r in rows if not r["metadata"].get("augment_method")]
    children = _augmented(result.records)
    assert originals == RECORDS  # the originals come through unchanged and in order
    assert len({r["id"] for r in rows}) == len(rows)
    counts = result.counts
    assert counts["augmented"] == len(children) > 0
    assert {c["metadata"]["augment_method"] for c in children} <= {"synonym", "paraphrase_rules", "back_translation_rules"}
    assert {c["metadata"]["language"] for c in children} == {"en", "zh"}
    rejected = read_jsonl(tmp_path / "out" / "data" / "stages" / "augment_rejected.jsonl")
    assert sum(counts["rejected"].values()) == len(rejected)
    assert counts["augmented"] + len(rejected) == len(RECORDS) * 3  # ratio 1.0, three methods: every try accounted for
    assert sum(m["accepted"] for m in counts["by_method"].values()) == counts["augmented"]
    for child in children:
        parent = by_id[child["metadata"]["parent_id"]]
        assert child["id"] != parent["id"]
        assert child["messages"][0] == parent["messages"][0]  # system turn kept
        assert child["messages"][-1] == parent["messages"][-1]  # answer never touched
        assert child["messages"][1]["content"] != parent["messages"][1]["content"]
        assert child["metadata"]["source_line"] == parent["metadata"]["source_line"]
    for row in rejected:
        assert row["reasons"] and row["reasons"][0]["check"] in counts["rejected"]


def test_json_answer_values_survive_every_rewrite(tmp_path):
    result = augment_records(_train(tmp_path), AugmentConfig(synonym=True, paraphrase=True, back_translation=True, ratio=3.0),
                             ["en", "zh"], str(tmp_path))
    by_id = {r["id"]: r for r in RECORDS}
    checked = 0
    for child in _augmented(result.records):
        parent = by_id[child["metadata"]["parent_id"]]
        for value in answer_values(parent["messages"][1]["content"], parent["messages"][2]["content"]):
            assert value in child["messages"][1]["content"]
            checked += 1
    assert checked > 0


def test_same_seed_same_file_other_seed_other_file(tmp_path):
    train = _train(tmp_path / "in")
    a = augment_records(train, OFFLINE, ["en", "zh"], str(tmp_path / "a"))
    b = augment_records(train, OFFLINE, ["en", "zh"], str(tmp_path / "b"))
    c = augment_records(train, OFFLINE.model_copy(update={"seed": 7}), ["en", "zh"], str(tmp_path / "c"))
    text = lambda result: open(result.records, encoding="utf-8").read()  # noqa: E731
    assert text(a) == text(b)
    assert text(a) != text(c)


def test_only_train_is_written_and_a_rerun_replaces_its_own_children(tmp_path):
    train = _train(tmp_path)
    for split in ("val", "test"):
        write_jsonl(tmp_path / "data" / f"{split}.jsonl", RECORDS[:2])
    held_out = {s: (tmp_path / "data" / f"{s}.jsonl").read_bytes() for s in ("val", "test")}
    first = augment_records(train, OFFLINE, ["en", "zh"], str(tmp_path))
    first_bytes = (tmp_path / "data" / "train.jsonl").read_bytes()
    second = augment_records(train, OFFLINE, ["en", "zh"], str(tmp_path))
    assert (tmp_path / "data" / "train.jsonl").read_bytes() == first_bytes
    assert second.counts["previous_dropped"] == first.counts["augmented"]
    for split, content in held_out.items():
        assert (tmp_path / "data" / f"{split}.jsonl").read_bytes() == content
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert written == ["data/stages/augment_rejected.jsonl", "data/test.jsonl", "data/train.jsonl", "data/val.jsonl"]


def test_ratio_sets_children_per_record(tmp_path):
    config = AugmentConfig(synonym=True, ratio=2.0, max_similarity=0.999)
    result = augment_records(_train(tmp_path), config, ["en", "zh"], str(tmp_path))
    tried = result.counts["by_method"]["synonym"]
    assert tried["accepted"] + tried["rejected"] == 2 * len(RECORDS)


def test_inconsistent_settings_fail_naming_the_keys(tmp_path):
    with pytest.raises(LoraflowError, match="augment.endpoint_model"):
        augment_records(_train(tmp_path), AugmentConfig(paraphrase=True, endpoint="http://127.0.0.1:9/v1"), ["en"], str(tmp_path))
    with pytest.raises(LoraflowError, match="augment.min_similarity"):
        augment_records(_train(tmp_path), AugmentConfig(synonym=True, min_similarity=0.9, max_similarity=0.5), ["en"], str(tmp_path))


EN0 = PROMPTS[0][2]
ZH0 = PROMPTS[3][2]
ANSWERS = {
    ("paraphrase", EN0): "Would you cancel my order for me? My parcel came broken and I need my money back fast.",
    ("paraphrase", ZH0): "麻烦帮我把订单取消掉，包裹送到时已经坏了，我想尽快拿到退款。",
    # A paraphrase that lost the ticket's values and one that drifted off topic: the gate must stop both.
    ("paraphrase", PROMPTS[1][2]): "Pull the fields out of this ticket as JSON:\nA customer says a mouse broke. Order 4411.",
    ("paraphrase", PROMPTS[2][2]): "Write a long poem about the sea, the wind and the old lighthouse keeper who lives alone on a rocky island.",
    ("zh", EN0): "你能帮我取消订单吗？包裹到的时候坏了，我需要尽快退款。",
    ("en", "你能帮我取消订单吗？包裹到的时候坏了，我需要尽快退款。"): "Can you cancel my order? The parcel was broken when it came, and I need a quick refund.",
    ("en", ZH0): "Please cancel my order. The package was damaged on arrival and I need a refund as soon as possible.",
    ("zh", "Please cancel my order. The package was damaged on arrival and I need a refund as soon as possible."): "请取消我的订单。包裹送达时已损坏，我需要尽快退款。",
}


def test_endpoint_paraphrase_and_back_translation_through_a_real_server(tmp_path, monkeypatch):
    monkeypatch.setenv("LORAFLOW_ENDPOINT_API_KEY", "k-123")
    records = RECORDS[:4]
    with running(ChatServer(ANSWERS)) as server:
        config = AugmentConfig(paraphrase=True, back_translation=True, ratio=1.0, endpoint=server.url, endpoint_model="qwen-test")
        result = augment_records(_train(tmp_path, records), config, ["en", "zh"], str(tmp_path))
    assert {r["body"]["model"] for r in server.requests} == {"qwen-test"}
    assert {r["auth"] for r in server.requests} == {"Bearer k-123"}
    assert len(server.requests) == len(records) * 3  # one paraphrase call and two translation calls per record
    children = {c["id"]: c for c in _augmented(result.records)}
    assert children["en0-aug-paraphrase-0"]["messages"][1]["content"] == ANSWERS[("paraphrase", EN0)]
    assert children["zh0-aug-back_translation-0"]["messages"][1]["content"] == ANSWERS[("zh", ANSWERS[("en", ZH0)])]
    assert children["en0-aug-back_translation-0"]["metadata"]["augment_method"] == "back_translation"
    rejected = {r["id"]: r["reasons"][0]["check"] for r in read_jsonl(tmp_path / "data" / "stages" / "augment_rejected.jsonl")}
    assert rejected["en1-aug-paraphrase-0"] == "lost_answer_value"
    assert rejected["en2-aug-paraphrase-0"] == "drift"
    # en1's pivot translation was echoed back untranslated; the round trip came back unchanged.
    assert rejected["en1-aug-back_translation-0"] == "unchanged"
    assert result.counts["rejected"]["drift"] == 1


def test_a_rewrite_left_in_the_pivot_language_is_rejected(tmp_path):
    answers = {("zh", EN0): "你能帮我取消订单吗？包裹到的时候坏了，我需要尽快退款。"}  # the way back is echoed: stays Chinese
    with running(ChatServer(answers)) as server:
        config = AugmentConfig(back_translation=True, ratio=1.0, endpoint=server.url, endpoint_model="m")
        result = augment_records(_train(tmp_path, RECORDS[:1]), config, ["en"], str(tmp_path))
    assert result.counts["rejected"] == {"language_changed": 1}


def test_transient_endpoint_failure_raises_for_the_retry_policy(tmp_path):
    train = _train(tmp_path, RECORDS[:2])
    before = (tmp_path / "data" / "train.jsonl").read_bytes()
    with running(ChatServer(status=503)) as server:
        config = AugmentConfig(paraphrase=True, ratio=1.0, endpoint=server.url, endpoint_model="m")
        with pytest.raises(httpx.HTTPStatusError):
            augment_records(train, config, ["en", "zh"], str(tmp_path))
    assert (tmp_path / "data" / "train.jsonl").read_bytes() == before  # the atomic write never happened
    assert json.loads(before.splitlines()[0])["id"] == "en0"
