"""LLM-as-judge against a real local HTTP server speaking the OpenAI chat-completions format."""
import hashlib
import json
import os
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from loraflow.schemas.config.judge import JudgeConfig
from loraflow.schemas.human_eval import RUBRIC_DIMENSIONS
from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.common.jsonl import read_jsonl, write_jsonl
from loraflow.tasks.evaluation.llm_judge import (
    RUBRIC_PROMPT, RUBRIC_VERSION, judge_from_config, judge_human_agreement, parse_judge_reply, run_llm_judge,
)


def _scores(value: int) -> dict:
    return {dim: value for dim in RUBRIC_DIMENSIONS}


# The fake judge's reply, chosen by the model output it is shown: every format a real model has sent us.
REPLIES = {
    "fence": "```json\n" + json.dumps({**_scores(4), "rationale": "mostly right"}) + "\n```",
    "prose": "Here is my evaluation.\nAccuracy: 3/5\nRelevance: 4/5\nFluency: 5\nCompleteness - 2\nSafety: 5\nOverall fine.",
    "think": '<think>accuracy: 1?</think>{"scores": {"Accuracy": "5", "relevance": 5.0, "fluency": {"score": 5}, '
    '"completeness": "5/5", "safety": 5}, "reason": "matches the reference"}',
    "garbage": "I cannot evaluate this answer.",
    "flaky": json.dumps({**_scores(2), "rationale": "wrong product"}),
}


class FakeJudge(BaseHTTPRequestHandler):
    requests: list[dict] = []
    failed_once: set[str] = set()

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeJudge.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        output = body["messages"][-1]["content"].split("MODEL OUTPUT:\n", 1)[1]
        if output == "flaky" and "flaky" not in FakeJudge.failed_once:
            FakeJudge.failed_once.add("flaky")  # one transient 503: the judge must retry
            return self._send(503, {"error": {"message": "overloaded"}})
        reply = {"id": "x", "object": "chat.completion", "model": body["model"],
                 "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": REPLIES[output]}}]}
        self._send(200, reply)

    def _send(self, status: int, payload: dict):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def judge_url():
    FakeJudge.requests, FakeJudge.failed_once = [], set()
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeJudge)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    rows = [
        {"id": f"c{i}", "messages": [{"role": "user", "content": f"question {i}"}], "reference": f"answer {i}",
         "prediction": style, "metadata": {"language": "zh" if i % 2 else "en"}, "scores": {}}
        for i, style in enumerate(REPLIES)
    ]
    write_jsonl(tmp_path / "run" / "eval" / "predictions.jsonl", rows)
    return tmp_path / "run"


def test_rubric_prompt_is_pinned_to_its_version():
    # Editing the prompt changes what judge scores mean: bump RUBRIC_VERSION and this digest together.
    assert (RUBRIC_VERSION, hashlib.sha256(RUBRIC_PROMPT.encode()).hexdigest()[:16]) == ("v1", "afdeecfebd2bb68c")


def test_parse_judge_reply_handles_the_formats_models_send():
    assert parse_judge_reply(REPLIES["fence"]) == {**_scores(4), "rationale": "mostly right"}
    assert parse_judge_reply(REPLIES["prose"]) == {"accuracy": 3, "relevance": 4, "fluency": 5, "completeness": 2, "safety": 5, "rationale": ""}
    assert parse_judge_reply(REPLIES["think"]) == {**_scores(5), "rationale": "matches the reference"}
    with pytest.raises(ValueError, match="no 1-5 score for accuracy, relevance"):
        parse_judge_reply(REPLIES["garbage"])
    with pytest.raises(ValueError, match="safety"):
        parse_judge_reply(json.dumps({**_scores(3), "safety": 7}))
    with pytest.raises(ValueError):
        parse_judge_reply(json.dumps({**_scores(3), "fluency": 3.5}))


def test_judge_scores_a_run_retries_and_agrees_with_humans(run_dir: Path, judge_url: str, tmp_path: Path):
    mlflow = pytest.importorskip("mlflow")
    uri = os.environ["MLFLOW_TRACKING_URI"]  # the session's store (tests/conftest.py): no per-test schema migration
    client = mlflow.MlflowClient(tracking_uri=uri)
    run_id = client.create_run(client.create_experiment(f"judge-{uuid.uuid4().hex}")).info.run_id
    (run_dir / "run.json").write_text(json.dumps({"mlflow_run_id": run_id, "mlflow_tracking_uri": uri}))
    humans = [{"id": "c0", "rater": "ann", **_scores(4)}, {"id": "c0", "rater": "bob", **_scores(5)},
              {"id": "c2", "rater": "ann", **_scores(5)}, {"id": "c4", "rater": "ann", **_scores(1)}]
    write_jsonl(run_dir / "eval" / "human_ratings.jsonl", humans)

    summary = run_llm_judge(str(run_dir), judge_url, "judge-model", api_key="sk-test", max_cases=None, concurrency=2)

    assert summary.n_cases == 5 and summary.n_scored == 4 and summary.n_failed == 1
    rows = {r["id"]: r for r in read_jsonl(run_dir / "eval" / "llm_judge.jsonl")}
    assert rows["c3"]["accuracy"] is None and "no 1-5 score" in rows["c3"]["error"]
    assert rows["c4"]["accuracy"] == 2 and rows["c4"]["comment"] == "wrong product" and rows["c4"]["rater"] == "llm:judge-model"
    assert summary.dimensions["accuracy"]["mean"] == pytest.approx((4 + 3 + 5 + 2) / 4)
    chats = [r for r in FakeJudge.requests if r["path"] == "/v1/chat/completions"]
    assert len(chats) == 6  # five cases plus one retry after the 503
    assert all(r["auth"] == "Bearer sk-test" and r["body"]["temperature"] == 0 for r in chats)
    assert all(r["body"]["model"] == "judge-model" and r["body"]["messages"][0]["content"] == RUBRIC_PROMPT for r in chats)
    # Judge accuracy 4, 5, 2 against human means 4.5, 5, 1 on the three shared cases.
    accuracy = summary.agreement["accuracy"]
    assert accuracy["n"] == 3 and accuracy["mae"] == pytest.approx((0.5 + 0 + 1) / 3) and accuracy["within_1"] == 1.0
    assert accuracy["pearson"] > 0.9 and accuracy["alpha_interval"] > 0.5
    run = client.get_run(run_id)
    assert run.data.metrics["eval/judge/accuracy/mean"] == pytest.approx(3.5) and run.data.metrics["eval/judge/n_failed"] == 1
    assert run.data.metrics["eval/judge/accuracy/human_mae"] == pytest.approx(0.5)
    assert run.data.tags["judge.rubric_version"] == RUBRIC_VERSION
    assert json.loads((run_dir / "eval" / "llm_judge.json").read_text())["rubric_version"] == RUBRIC_VERSION


def test_unreachable_endpoint_is_one_clear_error(run_dir: Path):
    with pytest.raises(LoraflowError, match=r"cannot reach the judge endpoint http://127\.0\.0\.1:9/v1/chat/completions"):
        run_llm_judge(str(run_dir), "http://127.0.0.1:9/v1", "m", max_cases=2, timeout_s=5)


def test_judge_is_off_by_default_and_runs_from_config(run_dir: Path, judge_url: str, monkeypatch):
    assert JudgeConfig().enabled is False and judge_from_config(str(run_dir), JudgeConfig()) is None
    monkeypatch.setenv("JUDGE_KEY", "sk-config")
    summary = judge_from_config(str(run_dir), JudgeConfig(enabled=True, base_url=judge_url, model="m", api_key_env="JUDGE_KEY", max_cases=2))
    assert summary.n_cases == 2 and FakeJudge.requests[0]["auth"] == "Bearer sk-config"


def test_agreement_is_empty_without_shared_cases():
    assert judge_human_agreement([{"id": "a", **_scores(3)}], [{"id": "b", **_scores(3)}]) == {}
