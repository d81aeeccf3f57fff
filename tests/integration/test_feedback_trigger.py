"""The default trigger against a real Prefect API: POST /v1/retrain creates one flow run of the deployment per batch."""
import uuid

import pytest
from fastapi.testclient import TestClient
from prefect import flow
from prefect.client.orchestration import get_client

from loraflow.schemas.config.feedback import FeedbackConfig
from loraflow.services.feedback_api import create_app
from loraflow.services.retrain_trigger import prefect_trigger

AUTH = {"Authorization": "Bearer t0ken"}


@flow(name="retrain-from-feedback")
def stand_in_retrain(batch_id: str) -> str:
    """Stands in for the real retrain flow: only its deployment name and parameters matter here."""
    return batch_id


@pytest.mark.slow
def test_default_trigger_creates_one_prefect_flow_run_per_batch(tmp_path, prefect_harness):
    # A deployment name of its own, so the session's Prefect API keeps any real retrain-from-feedback deployment intact.
    name = f"feedback-trigger-test-{uuid.uuid4().hex[:8]}"
    stand_in_retrain.to_deployment(name=name).apply()
    config = FeedbackConfig(database_url=f"sqlite:///{tmp_path / 'feedback.db'}", trigger_threshold=0,
                            deployment_name=f"retrain-from-feedback/{name}")
    with TestClient(create_app(config, token="t0ken")) as client:
        post = {"messages": [{"role": "user", "content": "q"}], "output": "a", "rating": "down", "model_version": "v1"}
        stored = client.post("/v1/feedback", json=post, headers=AUTH).json()
        started = client.post("/v1/retrain", headers=AUTH)
        assert started.status_code == 202, started.text
        batch_id, run_id = started.json()["batch_id"], started.json()["flow_run_id"]
        assert client.post("/v1/retrain", headers=AUTH).json()["started"] is False
        [batch] = client.get("/v1/batches", headers=AUTH).json()
        assert (batch["status"], batch["flow_run_id"]) == ("triggered", run_id)

    with get_client(sync_client=True) as prefect:
        run = prefect.read_flow_run(uuid.UUID(run_id))
        deployment = prefect.read_deployment(run.deployment_id)
    assert deployment.name == name and run.parameters == {"batch_id": batch_id}
    assert "feedback" in run.tags and stored["id"]
    # Prefect's idempotency key: triggering the same batch again returns the same flow run.
    assert prefect_trigger(config.deployment_name)(batch_id, [stored["id"]]) == run_id


@pytest.mark.slow
def test_a_missing_deployment_is_named_on_the_failed_batch(tmp_path, prefect_harness):
    config = FeedbackConfig(database_url=f"sqlite:///{tmp_path / 'feedback.db'}", trigger_threshold=0,
                            deployment_name="retrain-from-feedback/not-deployed-here")
    with TestClient(create_app(config, token="t0ken")) as client:
        post = {"messages": [{"role": "user", "content": "q"}], "output": "a", "rating": "down", "model_version": "v1"}
        client.post("/v1/feedback", json=post, headers=AUTH)
        client.post("/v1/retrain", headers=AUTH)
        [batch] = client.get("/v1/batches", headers=AUTH).json()
    assert batch["status"] == "trigger_failed"
    assert "retrain-from-feedback/not-deployed-here" in batch["error"] and "feedback.deployment_name" in batch["error"]
