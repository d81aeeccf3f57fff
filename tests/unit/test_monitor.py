"""Monitoring: recent feedback as an eval set, threshold alerts, the MLflow trend, the webhook."""
import json
import threading
import urllib.error
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from loraflow.schemas.config import SuccessCriterion, TaskCard
from loraflow.schemas.feedback import FeedbackIn
from loraflow.schemas.results import Champion, RecentFeedback
from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.feedback.store import FeedbackStore
from loraflow.tasks.common.jsonl import read_jsonl
from loraflow.tasks.evaluation.target import quality_alerts
from loraflow.tasks.feedback.monitor import log_monitoring, post_webhook, recent_feedback, render_alert

CARD = TaskCard(name="t", success_criteria=[SuccessCriterion(metric="json_field_accuracy", threshold=0.6)])


def test_quality_alerts_name_each_set_below_the_threshold():
    alerts = quality_alerts({"test": {"json_field_accuracy": 0.7}, "feedback_eval": {"json_field_accuracy": 0.41}, "recent": {}}, CARD)
    assert alerts == ["feedback_eval: json_field_accuracy 0.4100 is below the task card's threshold 0.6",
                      "recent: the champion has no json_field_accuracy score (is the set empty?)"]
    lower = TaskCard(success_criteria=[SuccessCriterion(metric="loss", threshold=1.0, higher_is_better=False)])
    assert quality_alerts({"test": {"loss": 0.9}}, lower) == []
    assert "above" in quality_alerts({"test": {"loss": 1.2}}, lower)[0]


def test_recent_feedback_writes_corrections_and_counts_badcases(tmp_path):
    url = f"sqlite:///{tmp_path / 'feedback.db'}"
    store = FeedbackStore(url)
    ask = [{"role": "user", "content": "where is my order?"}]
    store.add(FeedbackIn(messages=ask, output="no idea", rating="down", correction="It ships today.", model_version="m@3"))
    store.add(FeedbackIn(messages=ask, output="no idea", rating=1, model_version="m@3"))
    store.add(FeedbackIn(messages=ask, output="fine", rating="up", model_version="m@3"))
    store.add(FeedbackIn(messages=ask, output="fine", rating=5, model_version="m@3"))
    store.dispose()

    found = recent_feedback(url, 7.0, str(tmp_path / "recent.jsonl"))

    assert (found.feedback, found.corrections, found.badcases, found.badcase_share) == (4, 1, 2, 0.5)
    [record] = read_jsonl(tmp_path / "recent.jsonl")
    assert record["messages"][-1] == {"role": "assistant", "content": "It ships today."}
    assert record["metadata"]["feedback_batch_id"] == "unbatched"
    empty = recent_feedback(f"sqlite:///{tmp_path / 'empty.db'}", 7.0, str(tmp_path / "none.jsonl"))
    assert empty.badcase_share is None and read_jsonl(tmp_path / "none.jsonl") == []


def test_log_monitoring_keeps_one_run_per_pass_and_returns_the_trend(tmp_path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    champion = Champion(name="t", version="3", path="/models/t")
    first = log_monitoring(uri, "t-monitoring", champion, {"test": {"json_field_accuracy": 0.8}}, None, [], str(tmp_path / "p1"))
    recent = RecentFeedback(path=str(tmp_path / "recent.jsonl"), corrections=1, feedback=8, badcases=2, badcase_share=0.25)
    second = log_monitoring(uri, "t-monitoring", replace(champion, version="4"), {"test": {"json_field_accuracy": 0.5}},
                            recent, ["test: too low"], str(tmp_path / "p2"))

    assert [row["test.json_field_accuracy"] for row in second["trend"]] == [0.8, 0.5]
    assert [row["champion_version"] for row in second["trend"]] == ["3", "4"]
    run = MlflowClient(tracking_uri=uri).get_run(second["run_id"])
    assert run.data.metrics["feedback.badcase_share"] == 0.25 and run.data.tags["monitor.alerts"] == "1"
    assert run.info.status == "FINISHED" and first["run_id"] != second["run_id"]
    assert json.loads((tmp_path / "p2" / "monitor.json").read_text())["alerts"] == ["test: too low"]
    markdown = render_alert(CARD, replace(champion, version="4"), ["test: too low"], second["trend"])
    assert markdown.startswith("**ALERT**") and "| 0.8000 |" in markdown and "| 0.5000 |" in markdown


class _Receiver(BaseHTTPRequestHandler):
    received: list = []
    status = 204

    def do_POST(self):  # noqa: N802 — http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Receiver.received.append((self.headers["Content-Type"], json.loads(body)))
        self.send_response(_Receiver.status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Receiver.received.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}/alerts"
    server.shutdown()
    server.server_close()


def test_post_webhook_delivers_json_and_raises_on_an_error_status(receiver):
    assert post_webhook(receiver, {"alerts": ["test: too low"]}) == 204
    assert _Receiver.received == [("application/json", {"alerts": ["test: too low"]})]
    _Receiver.status = 500
    try:
        with pytest.raises(urllib.error.HTTPError):
            post_webhook(receiver, {"alerts": []})
    finally:
        _Receiver.status = 204
    with pytest.raises(LoraflowError, match="not an http"):
        post_webhook("ftp://example/alerts", {})
