"""Evaluation badcases into the feedback store: they join the relabelling queue that the retrain loop consumes."""
import json

from loraflow.schemas.results import RunOutcome
from loraflow.schemas.run_folder import RunFolder
from loraflow.schemas.feedback import FeedbackIn
from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.feedback.store import FeedbackStore
from loraflow.tasks.common.jsonl import iter_jsonl


def import_badcases(run_dir: str, database_url: str | None) -> dict:
    """Store each row of RUN_DIR/eval/badcases.jsonl as a `down`-rated feedback item (once, however often imported).

    Returns counts of stored and already-present items and the model version they are attributed to.
    """
    path = RunFolder(run_dir).eval / "badcases.jsonl"
    if not path.is_file():
        raise LoraflowError(f"{path} does not exist; run the pipeline (or `loraflow run`) on {run_dir} first")
    run = json.loads((RunFolder(run_dir).run_json).read_text()) if (RunFolder(run_dir).run_json).is_file() else {}
    registered = RunOutcome.model_validate(run.get("outcome") or {}).registered_model
    version = f"{registered.name}/{registered.version}" if registered else f"mlflow-run/{run.get('mlflow_run_id', 'unknown')}"
    store = FeedbackStore(database_url)
    stored = present = 0
    try:
        for row in iter_jsonl(path):
            item = FeedbackIn(
                messages=row["messages"], output=row["prediction"], rating="down", model_version=version,
                metadata={"source": "evaluation", "badcase_id": row["id"], "cause": row.get("cause"),
                          "reference": row.get("reference"), "run_id": run.get("mlflow_run_id")},
            )
            _, created = store.add(item, idempotency_key=f"eval-badcase:{run.get('mlflow_run_id')}:{row['id']}")
            stored, present = stored + created, present + (not created)
    finally:
        store.dispose()
    return {"badcases": str(path), "stored": stored, "already_present": present, "model_version": version}
