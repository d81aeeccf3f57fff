"""Starting a retrain from feedback: claim the pending feedback as one batch, then start its run exactly once."""
import logging
from collections.abc import Callable

from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.feedback.store import FeedbackStore

# trigger(batch_id, feedback_ids) starts the retrain and returns its run id (or None if it has none).
Trigger = Callable[[str, list[str]], str | None]

log = logging.getLogger("loraflow.feedback")


def prefect_trigger(deployment_name: str) -> Trigger:
    """A trigger that creates a flow run of the Prefect deployment `flow/deployment` with parameter batch_id."""

    def trigger(batch_id: str, feedback_ids: list[str]) -> str | None:
        from prefect.deployments import run_deployment
        from prefect.exceptions import ObjectNotFound
        from prefect.settings import PREFECT_API_URL

        try:
            # Prefect's idempotency key is a second guard: the same batch cannot become two flow runs even if triggered twice.
            flow_run = run_deployment(
                name=deployment_name, parameters={"batch_id": batch_id}, timeout=0,
                idempotency_key=f"loraflow-feedback-{batch_id}", as_subflow=False, tags=["feedback"],
            )
        except ObjectNotFound:  # Prefect's own message is "None"
            raise LoraflowError(
                f"Prefect deployment {deployment_name!r} does not exist at {PREFECT_API_URL.value() or 'the local Prefect API'}: "
                "deploy it (prefect deploy --all --prefect-file deployments/prefect.yaml) or set feedback.deployment_name"
            ) from None
        return str(flow_run.id)

    return trigger


def fire_batch(store: FeedbackStore, trigger: Trigger, batch: dict) -> dict:
    """Call the trigger for a claimed batch and record the run id (or the error) on the batch row."""
    try:
        run_id = trigger(batch["id"], list(batch["feedback_ids"]))
    except Exception as error:  # noqa: BLE001 — any trigger failure is recorded on the batch so it can be retried
        message = f"{type(error).__name__}: {error}"
        log.error("retrain trigger for batch %s failed: %s", batch["id"], message)
        store.record_trigger(batch["id"], error=message)
        return {**batch, "status": "trigger_failed", "error": message}
    run_id = str(run_id) if run_id is not None else None
    store.record_trigger(batch["id"], flow_run_id=run_id)
    log.info("batch %s (%d feedback items) started run %s", batch["id"], len(batch["feedback_ids"]), run_id)
    return {**batch, "status": "triggered", "flow_run_id": run_id}


def start_retrain(store: FeedbackStore, trigger: Trigger, reason: str, min_count: int = 1) -> dict | None:
    """Claim all pending feedback into a new batch (if at least min_count) and trigger it; None if nothing was claimed."""
    batch = store.claim_batch(reason, min_count=min_count)
    return fire_batch(store, trigger, batch) if batch is not None else None
