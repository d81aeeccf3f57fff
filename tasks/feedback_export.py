"""Feedback -> training data: corrections become canonical records, uncorrected badcases a relabelling queue."""
from pathlib import Path

from tasks.errors import LoraflowError
from tasks.feedback_store import FeedbackStore
from tasks.jsonl import write_jsonl

RECORDS_FILE = "feedback.jsonl"
RELABEL_FILE = "relabel_queue.jsonl"


def _lineage(row: dict, batch_id: str) -> dict:
    # The client's metadata first, so it can never overwrite the lineage keys MLflow reports rely on.
    return {
        **row["metadata"], "source": "feedback", "feedback_id": row["id"], "feedback_batch_id": batch_id,
        "model_version": row["model_version"], "timestamp": row["timestamp"].isoformat(), "rating": row["rating"],
    }


def correction_record(row: dict, batch_id: str) -> dict:
    """A canonical training record: the request messages plus the correction as the assistant answer."""
    return {
        "id": f"feedback-{row['id']}",
        "messages": [*row["messages"], {"role": "assistant", "content": row["correction"]}],
        "metadata": _lineage(row, batch_id),
    }


def relabel_item(row: dict, batch_id: str) -> dict:
    """A badcase without a correction, for a human to write the right answer (the bad one is kept as `model_output`)."""
    return {
        "id": f"feedback-{row['id']}",
        "messages": row["messages"],
        "model_output": row["output"],
        "metadata": _lineage(row, batch_id),
    }


def export_feedback(database_url: str | None, out_dir: str, batch_id: str | None = None) -> dict:
    """Write a batch's corrections as training records and its uncorrected badcases as a relabel queue; marks them consumed.

    Args:
        database_url: the feedback database (None: the default SQLite under $LORAFLOW_HOME).
        out_dir: folder for `feedback.jsonl` (training records) and `relabel_queue.jsonl`.
        batch_id: the retrain batch to export (re-exporting writes the same files); None claims all pending feedback
            into a new batch first.
    Returns:
        {"batch_id", "records_path", "relabel_path", "records", "relabel", "feedback_ids"}; batch_id is None and the
        files are empty when nothing was pending.
    """
    store = FeedbackStore(database_url)
    try:
        if batch_id is None:
            batch = store.claim_batch("export")
            batch_id = batch["id"] if batch else None
        elif store.get_batch(batch_id) is None:
            raise LoraflowError(f"feedback batch {batch_id!r} does not exist in {store.url}; pass a batch id from GET /v1/batches or omit it to export all pending feedback")
        rows = store.batch_rows(batch_id) if batch_id else []
        records = [correction_record(r, batch_id) for r in rows if r["correction"] is not None]
        relabel = [relabel_item(r, batch_id) for r in rows if r["correction"] is None and r["kind"] == "badcase"]
        out = Path(out_dir)
        records_path, relabel_path = out / RECORDS_FILE, out / RELABEL_FILE
        write_jsonl(records_path, records)
        write_jsonl(relabel_path, relabel)
        if batch_id:
            store.mark_exported(batch_id)
    finally:
        store.dispose()
    return {
        "batch_id": batch_id,
        "records_path": str(records_path),
        "relabel_path": str(relabel_path),
        "records": len(records),
        "relabel": len(relabel),
        "feedback_ids": [r["id"] for r in rows],
    }
