"""The feedback store on SQLite (always) and Postgres (marked `postgres`): idempotency, batches, concurrency."""
import os
import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from loraflow.schemas.feedback import FeedbackIn
from loraflow.tasks.feedback.store import FeedbackStore, IdempotencyConflict, batch_key


def item(n: int = 0, rating="down", correction: str | None = None, **extra) -> FeedbackIn:
    return FeedbackIn(
        messages=[{"role": "system", "content": "Extract the ticket."}, {"role": "user", "content": f"ticket {n}"}],
        output=f"wrong {n}", rating=rating, correction=correction, model_version="m@3", **extra,
    )


@pytest.fixture
def postgres_url():
    """A fresh schema in the test Postgres database, dropped afterwards."""
    base = os.environ.get("LORAFLOW_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("LORAFLOW_TEST_POSTGRES_URL is not set")
    schema = f"lf_feedback_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    yield url.render_as_string(hide_password=False)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request, tmp_path):
    url = f"sqlite:///{tmp_path / 'feedback.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    store = FeedbackStore(url)
    yield store
    store.dispose()


def test_add_classifies_and_round_trips(store):
    when = datetime(2026, 11, 1, 12, 30, tzinfo=UTC) + timedelta(hours=1)
    bad, _ = store.add(item(1, rating="down", timestamp=when, metadata={"category": "billing"}))
    fixed, _ = store.add(item(2, rating=5, correction="right 2"))
    fine, _ = store.add(item(3, rating="up"))
    meh, _ = store.add(item(4, rating=3))
    assert [r["kind"] for r in (bad, fixed, fine, meh)] == ["badcase", "correction", "ok", "ok"]
    rows, total = store.list_feedback()
    assert total == 4 and [r["id"] for r in rows] == [bad["id"], fixed["id"], fine["id"], meh["id"]]
    assert rows[0]["timestamp"] == when and rows[0]["metadata"] == {"category": "billing"}
    assert rows[1]["rating"] == 5 and rows[0]["rating"] == "down"
    assert rows[1]["messages"][-1] == {"role": "user", "content": "ticket 2"}
    assert store.pending_count() == 2
    assert store.list_feedback(kind="ok")[1] == 2
    assert store.list_feedback(limit=1, offset=3)[0][0]["id"] == meh["id"]
    assert store.list_feedback(since=datetime.now(UTC) + timedelta(minutes=1))[1] == 0


def test_idempotency_key_stores_once_and_rejects_a_different_body(store):
    first, created = store.add(item(1), idempotency_key="req-1")
    again, created_again = store.add(item(1), idempotency_key="req-1")
    assert created and not created_again and again["id"] == first["id"]
    with pytest.raises(IdempotencyConflict):
        store.add(item(2), idempotency_key="req-1")
    assert store.count() == 1


def test_concurrent_retries_with_one_key_store_one_row(store):
    ids, errors = [], []

    def post():
        try:
            ids.append(store.add(item(7), idempotency_key="retry-storm")[0]["id"])
        except Exception as error:  # noqa: BLE001 — surfaced by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=post) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(set(ids)) == 1 and store.count() == 1


def test_claim_batch_takes_pending_badcases_and_corrections_once(store):
    store.add(item(1, rating="up"))
    ids = [store.add(item(n, rating=1))[0]["id"] for n in range(2, 4)] + [store.add(item(4, correction="ok 4"))[0]["id"]]
    assert store.claim_batch("threshold", min_count=4) is None  # only 3 pending
    batch = store.claim_batch("threshold", min_count=3)
    assert batch["feedback_ids"] == ids and batch["batch_key"] == batch_key(ids) and batch["status"] == "created"
    assert store.pending_count() == 0 and store.claim_batch("manual") is None
    newer = store.add(item(5, rating="down"))[0]["id"]
    second = store.claim_batch("manual")
    assert second["feedback_ids"] == [newer] and second["id"] != batch["id"]
    assert store.get_batch(batch["id"])["feedback_ids"] == ids
    assert [b["id"] for b in store.list_batches()] == [batch["id"], second["id"]]


def test_concurrent_claims_put_every_item_in_exactly_one_batch(store):
    for n in range(12):
        store.add(item(n))
    batches, barrier = [], threading.Barrier(6)

    def claim():
        barrier.wait()
        batches.append(store.claim_batch("threshold"))

    threads = [threading.Thread(target=claim) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    won = [b for b in batches if b is not None]
    assert len(won) == 1 and len(won[0]["feedback_ids"]) == 12
    assert len(store.list_batches()) == 1 and store.pending_count() == 0


def test_trigger_outcome_is_recorded_and_only_failed_batches_reopen(store):
    store.add(item(1))
    batch = store.claim_batch("manual")
    store.record_trigger(batch["id"], error="ConnectError: no Prefect API")
    failed = store.get_batch(batch["id"])
    assert failed["status"] == "trigger_failed" and "Prefect" in failed["error"]
    assert store.reopen_failed_batch(batch["id"])
    store.record_trigger(batch["id"], flow_run_id="run-42")
    done = store.get_batch(batch["id"])
    assert (done["status"], done["flow_run_id"], done["error"]) == ("triggered", "run-42", None)
    assert not store.reopen_failed_batch(batch["id"])


def test_mark_exported_stamps_batch_and_items_once(store):
    store.add(item(1))
    batch = store.claim_batch("export")
    store.mark_exported(batch["id"])
    first = store.get_batch(batch["id"])["exported_at"]
    store.mark_exported(batch["id"])
    assert first is not None and store.get_batch(batch["id"])["exported_at"] == first
