"""The chat endpoint client against a real HTTP server on 127.0.0.1."""
import socket

import httpx
import pytest

from loraflow.tasks.common.chat_client import chat_complete, completions_url
from loraflow.tasks.common.errors import LoraflowError
from tests.unit.chat_server_support import ChatServer, running

MESSAGES = [{"role": "system", "content": "Paraphrase it."}, {"role": "user", "content": "Hello there"}]


def test_completions_url_accepts_base_with_or_without_v1():
    assert completions_url("http://h:8000/v1") == "http://h:8000/v1/chat/completions"
    assert completions_url("http://h:8000/") == "http://h:8000/v1/chat/completions"
    assert completions_url("http://h:8000/v1/chat/completions") == "http://h:8000/v1/chat/completions"


def test_answer_model_seed_and_key_reach_the_server():
    with running(ChatServer({("paraphrase", "Hello there"): "Hi there"})) as server:
        answer = chat_complete(server.url, "my-model", MESSAGES, seed=7, temperature=0.3, api_key="secret")
    assert answer == "Hi there"
    (request,) = server.requests
    assert request["body"]["model"] == "my-model"
    assert request["body"]["seed"] == 7 and request["body"]["temperature"] == 0.3
    assert request["auth"] == "Bearer secret"


@pytest.mark.parametrize("status", [429, 500, 503])
def test_transient_status_raises_for_the_retry_policy(status):
    with running(ChatServer(status=status)) as server, pytest.raises(httpx.HTTPStatusError):
        chat_complete(server.url, "m", MESSAGES)


def test_refused_request_is_a_user_error_naming_the_config_key():
    with running(ChatServer(status=404)) as server, pytest.raises(LoraflowError, match="augment.endpoint_model"):
        chat_complete(server.url, "missing-model", MESSAGES)


def test_unreachable_server_raises_a_transport_error():
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(httpx.TransportError):
        chat_complete(f"http://127.0.0.1:{port}/v1", "m", MESSAGES, timeout=5)
