"""Feedback -> training data: corrections become canonical records and preference pairs, uncorrected badcases a relabelling queue."""
import json
from pathlib import Path

from loraflow.schemas.results import ExportedBatch
from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.feedback.store import FeedbackStore
from loraflow.tasks.common.jsonl import write_jsonl

RECORDS_FILE = "feedback.jsonl"
RELABEL_FILE = "relabel_queue.jsonl"
PAIRS_FILE = "pairs.jsonl"


def _lineage(row: dict, batch_id: str) -> dict:
    # The client's metadata first, so it can never overwrite the lineage keys MLflow reports rely on.
    return {
        **row["metadata"], "source": "feedback", "feedback_id": row["id"], "feedback_batch_id": batch_id,
        "model_version": row["model_version"], "timestamp": row["timestamp"].isoformat(), "rating": row["rating"],
    }


def correction_record(row: dict, batch_id: str) -> dict:
    """A canonical training record: the request messages plus the correction as the assistant answer.

    The answer the correction replaced stays in the metadata (`model_output`): supervised training ignores it, GRPO
    scores completions that repeat its wrong fields low (tasks/training/grpo.py).
    """
    replaced = {"model_output": row["output"]} if row["output"].strip() != row["correction"].strip() else {}
    return {
        "id": f"feedback-{row['id']}",
        "messages": [*row["messages"], {"role": "assistant", "content": row["correction"]}],
        "metadata": {**_lineage(row, batch_id), **replaced},
    }


def relabel_item(row: dict, batch_id: str) -> dict:
    """A badcase without a correction, for a human to write the right answer (the bad one is kept as `model_output`)."""
    return {
        "id": f"feedback-{row['id']}",
        "messages": row["messages"],
        "model_output": row["output"],
        "metadata": _lineage(row, batch_id),
    }


def _pair(row: dict, batch_id: str, chosen: str, chosen_id: str, source: str) -> dict:
    meta = {**_lineage(row, batch_id), "pair_source": source, "pair_feedback_ids": {"chosen": chosen_id, "rejected": row["id"]}}
    return {"id": f"pair-{chosen_id}-{row['id']}" if chosen_id != row["id"] else f"pair-{row['id']}",
            "messages": [*row["messages"], {"role": "assistant", "content": chosen}], "rejected": row["output"], "metadata": meta}


def feedback_pairs(rows: list[dict], accepted: list[dict], batch_id: str) -> list[dict]:
    """Preference pairs: a correction over the model's own answer; a thumbs-down answer under an accepted answer to
    the same request (the latest one), when such an answer exists. Pairs without a contrast are not made."""
    def request(messages: list[dict]) -> str:
        return json.dumps(messages, sort_keys=True, ensure_ascii=False)

    best = {request(r["messages"]): r for r in accepted}  # oldest first, so the latest accepted answer wins
    pairs = []
    for row in rows:
        if row["correction"] is not None and row["correction"].strip() != row["output"].strip():
            pairs.append(_pair(row, batch_id, row["correction"], row["id"], "correction"))
        elif row["correction"] is None and row["kind"] == "badcase":
            up = best.get(request(row["messages"]))
            if up is not None and up["output"].strip() != row["output"].strip():
                pairs.append(_pair(row, batch_id, up["output"], up["id"], "accepted_answer"))
    return pairs


def export_feedback(database_url: str | None, out_dir: str, batch_id: str | None = None) -> ExportedBatch:
    """Write a batch's corrections as training records and its uncorrected badcases as a relabel queue; marks them consumed.

    Args:
        database_url: the feedback database (None: the default SQLite under $LORAFLOW_HOME).
        out_dir: folder for `feedback.jsonl` (training records) and `relabel_queue.jsonl`.
        batch_id: the retrain batch to export (re-exporting writes the same files); None claims all pending feedback
            into a new batch first.
    Returns:
        the files and their counts, each pair's feedback ids and the batch's; batch_id is None and the files are empty
        when nothing was pending.
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
        accepted = store.list_feedback(kind="ok", limit=None)[0] if relabel else []
        pairs = feedback_pairs(rows, accepted, batch_id)
        out = Path(out_dir)
        records_path, relabel_path, pairs_path = out / RECORDS_FILE, out / RELABEL_FILE, out / PAIRS_FILE
        write_jsonl(records_path, records)
        write_jsonl(relabel_path, relabel)
        write_jsonl(pairs_path, pairs)
        if batch_id:
            store.mark_exported(batch_id)
    finally:
        store.dispose()
    return ExportedBatch(
        batch_id=batch_id,
        records_path=str(records_path),
        relabel_path=str(relabel_path),
        pairs_path=str(pairs_path),
        records=len(records),
        relabel=len(relabel),
        pairs={p["id"]: p["metadata"]["pair_feedback_ids"] for p in pairs},
        feedback_ids=[r["id"] for r in rows],
    )
