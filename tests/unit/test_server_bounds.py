"""Servers with bounds (issue 24, item 3): `loraflow serve` refuses a body over its limit before parsing or tokenizing,
validates every field (a seed past int64 is a 400, not a 500), and the feedback API refuses NaN/Infinity."""
import dataclasses
import json
import threading

import pytest
from fastapi.testclient import TestClient

from loraflow.schemas.config.feedback import FeedbackConfig
from loraflow.services.feedback_api import create_app as create_feedback_app
from loraflow.services.serving.app import ServerState, create_app
from loraflow.services.serving.engine import BatchingEngine
from loraflow.services.serving.loading import load_bundle
from loraflow.services.serving.requests import Failed, GenerationRequest
from loraflow.tasks.common.token_budget import char_limit
from loraflow.tasks.feedback.guards import non_standard_json_constant

TOKEN = "t" * 32


@pytest.fixture(scope="module")
def bundle(tiny_model_path):
    return load_bundle(str(tiny_model_path), device="cpu", version="1")


@pytest.fixture(scope="module")
def chat(bundle):
    engine = BatchingEngine(bundle, max_batch_size=2, batch_wait_ms=0, default_max_tokens=4).start()
    app = create_app(ServerState(served_model_name="tiny", engine=engine), max_body_bytes=64 * 1024)
    with TestClient(app) as client:
        yield client
    engine.stop()


def ask(client, **fields):
    return client.post("/v1/chat/completions", json={"model": "tiny", "messages": [{"role": "user", "content": "hi"}],
                                                     "max_tokens": 2, **fields})


def test_a_body_over_the_limit_is_refused_with_413_before_it_is_parsed(chat):
    response = ask(chat, messages=[{"role": "user", "content": "word " * 20_000}])
    assert response.status_code == 413
    assert "serve.max_body_bytes" in response.text
    # Chunked (no Content-Length): counted as it arrives.
    big = json.dumps({"model": "tiny", "messages": [{"role": "user", "content": "x" * 100_000}]}).encode()
    response = chat.post("/v1/chat/completions", content=iter([big[:50_000], big[50_000:]]),
                         headers={"content-type": "application/json"})
    assert response.status_code == 413


@pytest.mark.parametrize(("fields", "field"), [
    ({"seed": 99999999999999999999999}, "seed"),
    ({"seed": -(2**63) - 1}, "seed"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"max_tokens": 0}, "max_tokens"),
])
def test_every_field_is_validated_with_a_400_naming_it(chat, fields, field):
    response = ask(chat, **fields)
    assert response.status_code == 400, response.text
    assert field in response.json()["error"]["message"]


def test_the_largest_int64_seed_is_served(chat):
    assert ask(chat, seed=2**63 - 1).status_code == 200


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_standard_json_is_a_400_on_the_chat_server(chat, constant):
    body = '{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "temperature": %s}' % constant
    response = chat.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400 and constant in response.text


def test_a_prompt_too_long_for_the_context_is_refused_from_its_length_without_tokenizing(bundle):
    """prepare() refuses by length: the tokenizer never sees the text (its call would be the minute-long stall)."""
    from loraflow.services.serving import decoding

    calls = []

    class CountingTokenizer:  # the real tokenizer, with its calls on whole texts counted
        def __init__(self, real):
            self.real = real

        def __getattr__(self, name):
            return getattr(self.real, name)

        def __call__(self, *args, **kwargs):
            calls.append(args)
            return self.real(*args, **kwargs)

    counted = dataclasses.replace(bundle, tokenizer=CountingTokenizer(bundle.tokenizer))
    events = []
    text = "y" * (char_limit(bundle.tokenizer, bundle.max_context) + 1)
    slot = decoding.Slot(GenerationRequest(messages=[{"role": "user", "content": text}]), on_event=events.append,
                         cancelled=threading.Event())
    assert decoding.prepare(counted, slot, 4) is False
    assert isinstance(events[0], Failed) and events[0].status == 400 and "context" in events[0].message
    assert calls == []


@pytest.fixture
def feedback(tmp_path):
    config = FeedbackConfig(database_url=f"sqlite:///{tmp_path / 'feedback.db'}", trigger_threshold=0)
    with TestClient(create_feedback_app(config, trigger=lambda *a: "run", token=TOKEN)) as client:
        yield client


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_the_feedback_api_refuses_nan_and_infinity_instead_of_storing_null(feedback, constant):
    body = ('{"messages": [{"role": "user", "content": "q"}], "output": "a", "rating": "down", "model_version": "m@1", '
            '"metadata": {"score": %s}}' % constant)
    headers = {"content-type": "application/json", "authorization": f"Bearer {TOKEN}"}
    response = feedback.post("/v1/feedback", content=body, headers=headers)
    assert response.status_code == 400 and constant in response.text
    standard = feedback.post("/v1/feedback", content=body.replace(constant, "1.5"), headers=headers)
    assert standard.status_code == 201, standard.text  # the same body with a number is accepted and kept as sent
    (item,) = feedback.get("/v1/feedback", headers=headers).json()["items"]
    assert item["metadata"]["score"] == 1.5


def test_standard_json_passes_the_check():
    assert non_standard_json_constant(b'{"a": 1.5, "b": "NaN", "c": [null, -1e308]}') is None
    assert non_standard_json_constant(b'{"a": [1, NaN]}') == "NaN"
    assert non_standard_json_constant(b"not json") is None
