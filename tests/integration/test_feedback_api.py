"""The feedback API over HTTP: auth, size limit, validation, idempotency, rate limit, and one run per batch."""
import os
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from loraflow.schemas.config.feedback import FeedbackConfig
from loraflow.services.feedback_api import create_app
from loraflow.tasks.feedback.store import FeedbackStore
from tests.integration.prefect_stack_support import free_port

TOKEN = "test-token-123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ROOT = Path(__file__).resolve().parents[2]


def body(n: int = 0, **change) -> dict:
    return {"messages": [{"role": "user", "content": f"ticket {n}"}], "output": f"answer {n}", "rating": "down",
            "model_version": "quickstart@1", **change}


class RecordingTrigger:
    """A trigger that records its calls (thread-safe) and returns a fake run id, or fails while `fail` is set."""

    def __init__(self):
        self.calls, self.fail, self._lock = [], False, threading.Lock()

    def __call__(self, batch_id: str, feedback_ids: list[str]) -> str:
        if self.fail:
            raise ConnectionError("Prefect API unreachable")
        with self._lock:
            self.calls.append((batch_id, list(feedback_ids)))
            return f"run-{len(self.calls)}"


def make_app(tmp_path, trigger, **config):
    settings = {"database_url": f"sqlite:///{tmp_path / 'feedback.db'}", "trigger_threshold": 0, **config}
    return create_app(FeedbackConfig(**settings), trigger=trigger, token=TOKEN)


@pytest.fixture
def trigger():
    return RecordingTrigger()


@pytest.fixture
def client(tmp_path, trigger):
    with TestClient(make_app(tmp_path, trigger, max_body_bytes=4096)) as client:
        yield client


@contextmanager
def live_server(app):
    """The app on a real uvicorn at 127.0.0.1 (in a thread), yielding its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive(), "uvicorn exited during start-up"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def test_requests_without_the_right_token_get_401_and_store_nothing(client):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}, {"Authorization": TOKEN}):
        response = client.post("/v1/feedback", json=body(), headers=headers)
        assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
    assert client.post("/v1/feedback", content=b"{not json", headers={"content-type": "application/json"}).status_code == 401
    assert client.get("/v1/feedback").status_code == 401 and client.post("/v1/retrain").status_code == 401
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/v1/feedback", headers=AUTH).json()["total"] == 0


def test_oversized_body_gets_413_by_content_length(client):
    response = client.post("/v1/feedback", json=body(output="x" * 5000), headers=AUTH)
    assert response.status_code == 413 and "4096" in response.json()["detail"]
    assert client.get("/v1/feedback", headers=AUTH).json()["total"] == 0


@pytest.mark.slow
def test_oversized_chunked_body_without_content_length_gets_413(tmp_path, trigger):
    def chunks():
        yield b'{"output": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}'

    with live_server(make_app(tmp_path, trigger, max_body_bytes=4096)) as url:
        response = httpx.post(f"{url}/v1/feedback", content=chunks(), headers={**AUTH, "content-type": "application/json"})
        assert "content-length" not in response.request.headers
        assert response.status_code == 413
        small = httpx.post(f"{url}/v1/feedback", content=iter([b'{"output": ', b'"x"}']), headers={**AUTH, "content-type": "application/json"})
        assert small.status_code == 422  # under the limit: it reaches validation


@pytest.mark.parametrize(("payload", "field"), [
    (body(rating=9), "body.rating"), (body(rating="sideways"), "body.rating"),
    ({k: v for k, v in body().items() if k != "output"}, "body.output"),
    (body(messages=[{"role": "user"}]), "body.messages.0.content"),
    (body(messages=[{"role": "assistant", "content": "hi"}]), "body.messages"),
    (body(timestamp="not a time"), "body.timestamp"), (body(extra_field=1), "body.extra_field"),
])
def test_malformed_feedback_gets_422_naming_the_field(client, payload, field):
    response = client.post("/v1/feedback", json=payload, headers=AUTH)
    assert response.status_code == 422
    assert field in response.json()["message"]
    assert all("input" not in e for e in response.json()["detail"])


def test_unparsable_json_and_bad_headers_get_422(client):
    broken = client.post("/v1/feedback", content=b'{"messages": [', headers={**AUTH, "content-type": "application/json"})
    assert broken.status_code == 422 and "body" in broken.json()["message"]
    long_key = client.post("/v1/feedback", json=body(), headers={**AUTH, "Idempotency-Key": "k" * 201})
    assert long_key.status_code == 422 and "Idempotency-Key" in long_key.json()["message"]
    assert client.get("/v1/feedback?limit=0", headers=AUTH).status_code == 422


def test_a_retried_post_is_stored_once(client):
    headers = {**AUTH, "Idempotency-Key": "order-7-feedback"}
    first = client.post("/v1/feedback", json=body(7), headers=headers)
    retry = client.post("/v1/feedback", json=body(7), headers=headers)
    assert (first.status_code, retry.status_code) == (201, 200)
    assert retry.json() == {**first.json(), "duplicate": True}
    conflict = client.post("/v1/feedback", json=body(8), headers=headers)
    assert conflict.status_code == 409 and first.json()["id"] in conflict.json()["detail"]
    assert client.get("/v1/feedback", headers=AUTH).json()["total"] == 1


def test_rate_limit_is_per_client_and_answers_429_with_retry_after(tmp_path, trigger):
    app = make_app(tmp_path, trigger, rate_limit_per_second=0.01, rate_limit_burst=3)
    with TestClient(app, client=("10.0.0.1", 4000)) as first, TestClient(app, client=("10.0.0.2", 4000)) as second:
        codes = [first.post("/v1/feedback", json=body(n), headers=AUTH).status_code for n in range(4)]
        assert codes == [201, 201, 201, 429]
        limited = first.get("/v1/feedback", headers=AUTH)
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        assert first.get("/healthz").status_code == 200
        assert second.get("/v1/feedback", headers=AUTH).json()["total"] == 3


def test_list_filters_and_jsonl_export(client):
    ids = [client.post("/v1/feedback", json=body(n, rating=r), headers=AUTH).json()["id"] for n, r in enumerate(["up", "down", 5])]
    page = client.get("/v1/feedback", params={"limit": 2, "offset": 1}, headers=AUTH).json()
    assert page["total"] == 3 and [i["id"] for i in page["items"]] == ids[1:]
    assert [i["id"] for i in client.get("/v1/feedback?kind=badcase", headers=AUTH).json()["items"]] == [ids[1]]
    since = page["items"][1]["received_at"]
    assert [i["id"] for i in client.get("/v1/feedback", params={"since": since}, headers=AUTH).json()["items"]] == [ids[2]]
    export = client.get("/v1/feedback?format=jsonl", headers=AUTH)
    assert export.headers["content-type"].startswith("application/x-ndjson")
    lines = [httpx.Response(200, content=line).json() for line in export.text.splitlines()]
    assert [line["id"] for line in lines] == ids and lines[2]["rating"] == 5


def test_threshold_starts_one_batch_and_records_the_run(tmp_path, trigger):
    app = make_app(tmp_path, trigger, trigger_threshold=3)
    with TestClient(app) as c:
        c.post("/v1/feedback", json=body(0, rating="up"), headers=AUTH)  # not a badcase: never counts
        answers = [c.post("/v1/feedback", json=body(n, **extra), headers=AUTH).json()
                   for n, extra in enumerate([{}, {"correction": "fixed"}, {"rating": 1}, {}], start=1)]
        assert [a["retrain_batch_id"] is not None for a in answers] == [False, False, True, False]
        [(batch_id, ids)] = trigger.calls
        assert batch_id == answers[2]["retrain_batch_id"] and ids == [a["id"] for a in answers[:3]]
        [batch] = c.get("/v1/batches", headers=AUTH).json()
        assert (batch["status"], batch["flow_run_id"], batch["feedback_count"]) == ("triggered", "run-1", 3)


@pytest.mark.slow
def test_concurrent_retrain_requests_start_one_run(tmp_path, trigger):
    app = make_app(tmp_path, trigger)
    with live_server(app) as url, httpx.Client(base_url=url, headers=AUTH) as http:
        ids = [http.post("/v1/feedback", json=body(n)).json()["id"] for n in range(5)]
        barrier, responses = threading.Barrier(6), []

        def retrain():
            with httpx.Client(base_url=url, headers=AUTH) as own:
                barrier.wait()
                responses.append(own.post("/v1/retrain"))

        threads = [threading.Thread(target=retrain) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(r.status_code for r in responses) == [200] * 5 + [202]
        [started] = [r.json() for r in responses if r.status_code == 202]
        assert trigger.calls == [(started["batch_id"], ids)] and started["flow_run_id"] == "run-1"
        again = http.post("/v1/retrain")
        assert again.status_code == 200 and again.json()["started"] is False and len(trigger.calls) == 1


@pytest.mark.slow
def test_concurrent_posts_over_the_threshold_never_share_an_item_between_batches(tmp_path, trigger):
    app = make_app(tmp_path, trigger, trigger_threshold=4, rate_limit_burst=100)
    with live_server(app) as url:
        def post(n):
            with httpx.Client(base_url=url, headers=AUTH) as http:
                return http.post("/v1/feedback", json=body(n)).json()["id"]

        threads, ids = [], []
        for n in range(24):
            threads.append(threading.Thread(target=lambda n=n: ids.append(post(n))))
            threads[-1].start()
        for t in threads:
            t.join()
    claimed = [i for _, batch in trigger.calls for i in batch]
    assert len(ids) == 24 and len(claimed) == len(set(claimed)) and set(claimed) <= set(ids)
    assert trigger.calls and all(len(batch) >= 4 for _, batch in trigger.calls)
    store = FeedbackStore(f"sqlite:///{tmp_path / 'feedback.db'}")
    assert store.pending_count() == 24 - len(claimed) < 4 and len(store.list_batches()) == len(trigger.calls)
    store.dispose()


def test_failed_trigger_is_recorded_and_can_be_retried_once(client, trigger):
    client.post("/v1/feedback", json=body(1), headers=AUTH)
    trigger.fail = True
    failed = client.post("/v1/retrain", headers=AUTH)
    assert failed.status_code == 502 and "Prefect API unreachable" in failed.json()["detail"]
    batch_id = failed.json()["batch_id"]
    assert client.get("/v1/batches", headers=AUTH).json()[0]["status"] == "trigger_failed"
    trigger.fail = False
    retried = client.post("/v1/retrain", json={"batch_id": batch_id}, headers=AUTH)
    assert retried.status_code == 202 and retried.json()["flow_run_id"] == "run-1"
    assert client.post("/v1/retrain", json={"batch_id": batch_id}, headers=AUTH).status_code == 409
    assert client.post("/v1/retrain", json={"batch_id": "fb-unknown"}, headers=AUTH).status_code == 404
    assert len(trigger.calls) == 1


def test_openapi_spec_documents_the_api_and_its_bearer_auth(client):
    spec = client.get("/openapi.json").json()
    assert {"/v1/feedback", "/v1/retrain", "/v1/batches", "/healthz"} <= set(spec["paths"])
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    fields = spec["components"]["schemas"]["FeedbackIn"]["properties"]
    assert {"messages", "output", "rating", "correction", "model_version", "timestamp", "metadata"} <= set(fields)
    assert all(fields[name].get("description") for name in ("rating", "correction", "model_version"))


def _cli(args: list[str]) -> list[str]:
    return [sys.executable, "-c", "import sys; from loraflow.cli import main; sys.exit(main())", *args]


@pytest.mark.slow
def test_serve_refuses_to_start_without_a_token(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "LORAFLOW_FEEDBACK_TOKEN"} | {"LORAFLOW_HOME": str(tmp_path)}
    done = subprocess.run(_cli(["feedback", "serve", "--port", str(free_port())]), env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "LORAFLOW_FEEDBACK_TOKEN is not set" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
def test_serve_from_the_cli_stores_posts_in_the_given_database(tmp_path):
    port, db = free_port(), tmp_path / "served.db"
    env = os.environ | {"LORAFLOW_FEEDBACK_TOKEN": TOKEN, "LORAFLOW_HOME": str(tmp_path)}
    args = ["feedback", "serve", "--port", str(port), "--database-url", f"sqlite:///{db}"]
    server = subprocess.Popen(_cli(args), env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None and time.monotonic() < deadline, "feedback server did not start"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        assert httpx.post(f"http://127.0.0.1:{port}/v1/feedback", json=body(), headers=AUTH).status_code == 201
    finally:
        server.terminate()
        server.wait(30)
    store = FeedbackStore(f"sqlite:///{db}")
    assert store.count() == 1
    store.dispose()


@pytest.mark.slow
def test_sigterm_stops_the_server_and_the_prefect_server_it_started(tmp_path):
    import signal

    from tests.integration.prefect_stack_support import wait_http

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")} | {
        "LORAFLOW_FEEDBACK_TOKEN": TOKEN, "LORAFLOW_HOME": str(tmp_path)}
    args = ["feedback", "serve", "--port", str(port), "--database-url", f"sqlite:///{tmp_path / 'fb.db'}",
            "--set", "feedback.trigger_threshold=0"]
    # Its own session: afterwards nothing may be left in its process group (the temporary Prefect server was).
    server = subprocess.Popen(_cli(args), env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", 120, server, interval=0.2)
        httpx.post(f"http://127.0.0.1:{port}/v1/feedback", json=body(), headers=AUTH)
        # No Prefect API is configured: the trigger starts a temporary Prefect server as a child, then fails on the deployment.
        started = httpx.post(f"http://127.0.0.1:{port}/v1/retrain", headers=AUTH, timeout=180)
        assert started.status_code == 502 and "does not exist" in started.json()["detail"], started.text
        server.send_signal(signal.SIGTERM)
        assert server.wait(60) == 0  # a graceful stop (it used to die by the signal, -15, skipping its clean-up)
        time.sleep(3)
        with pytest.raises(ProcessLookupError):
            os.killpg(server.pid, 0)
    finally:
        if server.poll() is None or _group_alive(server.pid):
            os.killpg(server.pid, signal.SIGKILL)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
