"""Exporting feedback: corrections become canonical training records, uncorrected badcases a relabel queue."""
import pytest

from loraflow.schemas.feedback import FeedbackIn
from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.feedback.export import export_feedback
from loraflow.tasks.feedback.store import FeedbackStore
from loraflow.tasks.common.jsonl import read_jsonl


def item(n: int, rating="down", correction: str | None = None, **extra) -> FeedbackIn:
    return FeedbackIn(messages=[{"role": "user", "content": f"question {n}"}], output=f"bad answer {n}", rating=rating,
                      correction=correction, model_version="quickstart@7", **extra)


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path / 'feedback.db'}"


def test_export_claims_pending_and_writes_records_and_relabel_queue(url, tmp_path):
    store = FeedbackStore(url)
    fixed = store.add(item(1, rating=2, correction="good answer 1", metadata={"category": "billing", "source": "spoofed"}))[0]
    bad = store.add(item(2))[0]
    store.add(item(3, rating="up"))
    store.dispose()

    summary = export_feedback(url, str(tmp_path / "out"))

    assert (summary.records, summary.relabel) == (1, 1)
    assert sorted(summary.feedback_ids) == sorted([fixed["id"], bad["id"]])
    [record] = read_jsonl(summary.records_path)
    assert record["id"] == f"feedback-{fixed['id']}"
    assert record["messages"] == [{"role": "user", "content": "question 1"}, {"role": "assistant", "content": "good answer 1"}]
    meta = record["metadata"]
    assert (meta["feedback_id"], meta["model_version"], meta["rating"], meta["category"]) == (fixed["id"], "quickstart@7", 2, "billing")
    assert meta["source"] == "feedback" and meta["feedback_batch_id"] == summary.batch_id
    assert meta["timestamp"] == fixed["timestamp"].isoformat()
    assert meta["model_output"] == "bad answer 1"  # the answer the correction replaced: what GRPO scores low
    [queued] = read_jsonl(summary.relabel_path)
    assert queued["model_output"] == "bad answer 2" and queued["messages"][-1]["role"] == "user"

    store = FeedbackStore(url)
    assert store.pending_count() == 0 and store.get_batch(summary.batch_id)["exported_at"] is not None
    store.dispose()


def test_reexporting_a_batch_writes_the_same_files(url, tmp_path):
    store = FeedbackStore(url)
    store.add(item(1, correction="fixed"))
    batch = store.claim_batch("threshold")
    store.add(item(2, correction="later, not in the batch"))
    store.dispose()
    first = export_feedback(url, str(tmp_path / "a"), batch_id=batch["id"])
    again = export_feedback(url, str(tmp_path / "b"), batch_id=batch["id"])
    assert first.feedback_ids == again.feedback_ids == batch["feedback_ids"]
    assert read_jsonl(first.records_path) == read_jsonl(again.records_path)


def test_export_with_nothing_pending_writes_empty_files(url, tmp_path):
    summary = export_feedback(url, str(tmp_path / "out"))
    assert summary.batch_id is None and summary.feedback_ids == []
    assert read_jsonl(summary.records_path) == [] and read_jsonl(summary.relabel_path) == []


def test_unknown_batch_is_a_user_error(url, tmp_path):
    with pytest.raises(LoraflowError, match="does not exist"):
        export_feedback(url, str(tmp_path / "out"), batch_id="fb-nope")
