"""The feedback loop end to end: Prefect server + worker, feedback API, model server; corrections posted over HTTP
start one retrain-from-feedback run on the tiny model, the champion alias moves and the server reloads it;
monitoring alerts through a webhook, and a rollback from Prefect moves the alias back."""
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.integration.prefect_stack_support import (
    BIN, client_settings, free_port, prefect_stack, start, stop, wait_flow_run, wait_http, worker_log,
)

pytestmark = pytest.mark.slow

TOKEN = "e2e-feedback-token"
THRESHOLD = 5
TICKETS = [  # (user ticket, corrected extraction): varied, so the cleaning stage keeps them apart
    ("Hi, PhotoVault keeps crashing when I upload RAW files from my camera. Please fix ASAP.",
     {"category": "bug", "priority": "high", "product": "PhotoVault"}),
    ("Could you tell me whether MailPilot supports shared inboxes for a team of twelve?",
     {"category": "question", "priority": "low", "product": "MailPilot"}),
    ("我在 CloudDrive 上的年度订阅被扣了两次费用，请尽快退款。",
     {"category": "billing", "priority": "high", "product": "CloudDrive"}),
    ("Feature idea for TaskBoard: let me colour-code columns by owner, it would help our sprint reviews.",
     {"category": "feature_request", "priority": "low", "product": "TaskBoard"}),
    ("NoteSync 登录页面一直转圈，已经两天无法打开我的笔记了。",
     {"category": "bug", "priority": "medium", "product": "NoteSync"}),
]


def _http(method: str, url: str, body: dict | None = None, headers: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


@pytest.fixture(scope="module")
def stack(request):
    return prefect_stack(request.config)


@pytest.fixture
def feedback_api(stack, tmp_path):
    """`loraflow feedback serve` (create_app on uvicorn, default Prefect trigger) on loopback, sharing the worker's database."""
    port = free_port()
    env = {**stack["env"], "LORAFLOW_FEEDBACK_TOKEN": TOKEN}
    proc = start([str(BIN / "loraflow"), "feedback", "serve", "--port", str(port), "--set",
                  f"feedback.trigger_threshold={THRESHOLD}"], env, tmp_path / "feedback-api.log")
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", 120, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


def _run_and_wait(stack: dict, name: str, parameters: dict, timeout: float):
    from prefect.deployments import run_deployment

    with client_settings(stack):
        started = run_deployment(name, parameters=parameters, timeout=0)
    run = wait_flow_run(stack, started.id, timeout)
    assert run.state.is_completed(), f"{name}: {run.state}\n{worker_log(stack)}"
    return run


def test_feedback_retrains_once_on_a_worker_and_the_champion_moves(stack, feedback_api, tmp_path):
    from mlflow import MlflowClient
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import DeploymentUpdate
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    from loraflow.services.retrain_trigger import prefect_trigger
    from loraflow.tasks.data.lineage import latest_version, lineage_root
    from loraflow.tasks.deploy.registry import champion_version, list_versions

    name = f"e2e-retrain-{uuid.uuid4().hex[:8]}"  # its own registered model and lineage in the session's stores
    tiny = str(REPO / "examples" / "tiny" / "pipeline.yaml")
    overrides = [f"task_card.name={name}", "train.max_steps=2", "eval.compare_base=false", "eval.max_samples=4"]

    # 1. The first pipeline run (finetune deployment) registers the champion and seeds the dataset lineage.
    _run_and_wait(stack, "finetune/finetune", {"config_path": tiny, "overrides": overrides, "out_dir": str(tmp_path / "seed")}, 420)
    assert champion_version(name) == "1"
    assert latest_version(lineage_root(name))["version"] == 1

    server_port = free_port()
    server = start([str(BIN / "loraflow"), "serve", "--model", f"models:/{name}@champion", "--port", str(server_port),
                    "--backend", "builtin", "--device", "cpu", "--set", "serve.reload_poll_seconds=1"],
                   stack["env"], tmp_path / "model-server.log")
    try:
        # 2. The retrain deployment trains this task on the tiny model (what an operator sets in the UI).
        with client_settings(stack), get_client(sync_client=True) as client:
            deployment = client.read_deployment_by_name("retrain-from-feedback/retrain-from-feedback")
            client.update_deployment(deployment.id, DeploymentUpdate(parameters={"config_path": tiny, "overrides": overrides}))

        # 3. Corrections posted over HTTP with the bearer token; the THRESHOLD-th starts the retrain.
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert _http("POST", f"{feedback_api}/v1/feedback", {}, {})[0] == 401
        answers = []
        for i, (ticket, fields) in enumerate(TICKETS):
            body = {"messages": [{"role": "user", "content": ticket}], "output": "{}", "rating": "down",
                    "correction": json.dumps(fields, ensure_ascii=False), "model_version": f"{name}/1"}
            status, answer = _http("POST", f"{feedback_api}/v1/feedback", body, {**auth, "Idempotency-Key": f"e2e-{i}"})
            assert status == 201, answer
            answers.append(answer)
        batch_id = answers[-1]["retrain_batch_id"]
        assert batch_id and all(a["retrain_batch_id"] is None for a in answers[:-1])

        # 4. The same trigger again starts nothing: a retried post, a manual retrain, the trigger for the same batch.
        status, again = _http("POST", f"{feedback_api}/v1/feedback", body, {**auth, "Idempotency-Key": f"e2e-{len(TICKETS) - 1}"})
        assert (status, again["duplicate"], again["retrain_batch_id"]) == (200, True, None)
        status, manual = _http("POST", f"{feedback_api}/v1/retrain", None, auth)
        assert (status, manual["started"]) == (200, False)
        batch = _wait_triggered(feedback_api, auth, batch_id)
        with client_settings(stack):
            assert prefect_trigger("retrain-from-feedback/retrain-from-feedback")(batch_id, []) == batch["flow_run_id"]

        run = wait_flow_run(stack, uuid.UUID(batch["flow_run_id"]), 480)
        assert run.state.is_completed(), f"{run.state}\n{worker_log(stack)}"
        assert run.parameters["batch_id"] == batch_id
        with client_settings(stack), get_client(sync_client=True) as client:
            runs = client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])))
        # The session's stack is shared (the preference e2e retrains through the same deployment): this batch's runs.
        assert [str(r.id) for r in runs if r.parameters.get("batch_id") == batch_id] == [batch["flow_run_id"]]

        # 5. The gate promoted the retrained model; MLflow knows which feedback ids went into it; the server serves it.
        assert champion_version(name) == "2"
        v2 = next(v for v in list_versions(name) if v["version"] == "2")
        assert v2["tags"]["feedback.batch_id"] == batch_id and v2["aliases"] == ["champion"]
        lineage = latest_version(lineage_root(name))
        assert lineage["version"] == 2 and lineage["batch_id"] == batch_id
        trained = lineage["feedback_ids"]["trained"]
        assert trained and set(trained) <= {a["id"] for a in answers}
        assert set(v2["tags"]["feedback.trained_ids"].split(",")) == set(trained)
        assert Path(lineage["dir"], "test.jsonl").read_bytes() == Path(lineage_root(name), "v1", "test.jsonl").read_bytes()
        assert _served_version(server_port, "2", server) == "2"

        # 6. Monitoring re-evaluates the champion on the frozen test set and the feedback; below the threshold it alerts.
        strict = overrides + ["task_card.success_criteria=[{metric: json_field_accuracy, threshold: 0.99}]"]
        with _webhook() as (url, received):
            _run_and_wait(stack, "monitor/monitor", {"config_path": tiny, "overrides": strict, "webhook_url": url}, 300)
        [alert] = received
        assert alert["champion"]["version"] == "2" and {"test", "recent_feedback"} <= set(alert["metrics"])
        assert any(a.startswith("test: json_field_accuracy") for a in alert["alerts"])
        assert MlflowClient().get_run(alert["mlflow_run_id"]).data.tags["champion.version"] == "2"

        # 7. Rolling back from Prefect restores the previous champion, and the server follows.
        _run_and_wait(stack, "rollback/rollback", {"model_name": name, "reason": "e2e rollback"}, 180)
        assert champion_version(name) == "1"
        assert _served_version(server_port, "1", server) == "1"
    finally:
        stop(server)


@contextmanager
def _webhook():
    """A local HTTP endpoint that records the JSON bodies POSTed to it."""
    received: list[dict] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 — http.server's naming
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/alerts", received
    finally:
        server.shutdown()
        server.server_close()


def _wait_triggered(api: str, auth: dict, batch_id: str, timeout: float = 60) -> dict:
    """The batch row once the API's background trigger has recorded the flow run."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, batches = _http("GET", f"{api}/v1/batches", None, auth)
        batch = next((b for b in batches if b["id"] == batch_id), None) if status == 200 else None
        if batch and batch["status"] != "created":
            assert batch["status"] == "triggered", batch
            return batch
        time.sleep(1)
    raise TimeoutError(f"batch {batch_id} was not triggered within {timeout:.0f} s")


def _served_version(port: int, wanted: str, proc, timeout: float = 180) -> str | None:
    """The model version the server reports once it equals `wanted` (the alias watcher reloads it)."""
    deadline = time.monotonic() + timeout
    version = None
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            status, health = _http("GET", f"http://127.0.0.1:{port}/health")
            version = (health.get("model") or {}).get("version") if status == 200 else None
        except OSError:
            version = None
        if version == wanted:
            return version
        time.sleep(1)
    return version

