"""The real server on 127.0.0.1 driven by the official `openai` client: completions, streaming, models, batching, reload."""
import json
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest

from loraflow.schemas.config.serve import ServeConfig
from loraflow.services.serving.server import build_app
from tests.integration.prefect_stack_support import free_port, wait_http

pytestmark = pytest.mark.slow
MESSAGES = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Where is my order 4411?"}]


class RunningServer:
    """uvicorn serving build_app(...) in a thread, stopped by close()."""

    def __init__(self, config: ServeConfig, model: str, cache_dir):
        import uvicorn

        self.url = f"http://127.0.0.1:{config.port}"
        self.server = uvicorn.Server(uvicorn.Config(build_app(config, model, cache_dir), host="127.0.0.1", port=config.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_http(f"{self.url}/ready", 120, interval=0.1)
        self.client = openai.OpenAI(base_url=f"{self.url}/v1", api_key="unused", max_retries=0, timeout=120)

    def health(self) -> dict:
        return httpx.get(f"{self.url}/health").json()

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def tiny_model(out_dir, texts):
    from loraflow.tasks.common.base_model import build_tiny_model

    return str(build_tiny_model(out_dir, texts))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    model = tiny_model(root / "models", ["Where is my order?", "订单在哪里？"])
    # batch_wait_ms is long so concurrent requests land in one batch; max_batch_size 4 starts a full batch at once.
    config = ServeConfig(port=free_port(), max_batch_size=4, batch_wait_ms=1000, max_new_tokens=8, served_model_name="tiny-chat")
    running = RunningServer(config, model, root / "cache")
    yield running
    running.close()


def test_chat_completion(server):
    reply = server.client.chat.completions.create(model="tiny-chat", messages=MESSAGES, max_tokens=6, temperature=0)
    assert reply.object == "chat.completion" and reply.model == "tiny-chat"
    choice = reply.choices[0]
    assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length")
    assert 0 < reply.usage.prompt_tokens and reply.usage.completion_tokens <= 6
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_streaming_matches_the_non_streaming_answer(server):
    kwargs = {"model": "tiny-chat", "messages": MESSAGES, "max_tokens": 8, "temperature": 0, "extra_body": {"ignore_eos": True}}
    whole = server.client.chat.completions.create(**kwargs).choices[0].message.content
    chunks = list(server.client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **kwargs))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 8
    assert len({c.id for c in chunks}) == 1


def test_sse_wire_format_ends_with_done(server):
    body = {"model": "tiny-chat", "messages": MESSAGES, "max_tokens": 3, "stream": True}
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=120) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines) and lines[-1] == "data: [DONE]"
    assert json.loads(lines[0][6:])["object"] == "chat.completion.chunk"


def test_models_health_and_errors(server):
    assert [m.id for m in server.client.models.list()] == ["tiny-chat"]
    assert httpx.get(f"{server.url}/ready").json() == {"status": "ready"}
    assert server.health()["model"]["device"] == "cpu"
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        server.client.chat.completions.create(model="other", messages=MESSAGES)
    with pytest.raises(openai.BadRequestError, match="temperature"):
        server.client.chat.completions.create(model="tiny-chat", messages=MESSAGES, temperature=5)
    with pytest.raises(openai.BadRequestError, match="messages"):
        server.client.chat.completions.create(model="tiny-chat", messages=[])


def test_concurrent_requests_are_generated_in_one_batch(server):
    before = server.health()["batches"]

    def ask(i):
        messages = [{"role": "user", "content": f"request {i}: where is order {i}?"}]
        return server.client.chat.completions.create(model="tiny-chat", messages=messages, max_tokens=4, temperature=0)

    with ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(ask, range(4)))
    assert all(r.choices[0].finish_reason in ("stop", "length") for r in replies)
    health = server.health()
    assert health["largest_batch"] == 4 and health["batches"] == before + 1


def register_folder(client, experiment_id: str, name: str, folder: str) -> str:
    """Register a model folder as a new version of `name` the way the pipeline does (loraflow.tasks.deploy.registry)."""
    from loraflow.tasks.deploy.registry import register_model

    run = client.create_run(experiment_id)
    client.set_terminated(run.info.run_id)
    return register_model(folder, run.info.run_id, name, {"test": "serving"})["version"]


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A SQLite MLflow registry with two versions of `tiny-chat` (different tiny models); champion on the first."""
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("registry")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        client = MlflowClient()
        experiment = client.create_experiment("serve", artifact_location=(root / "artifacts").as_uri())
        first = register_folder(client, experiment, "tiny-chat", tiny_model(root / "a", ["first model"]))
        second = register_folder(client, experiment, "tiny-chat", tiny_model(root / "b", ["second model", "a different vocabulary"]))
        client.set_registered_model_alias("tiny-chat", "champion", first)
        yield client, first, second


def test_download_to_writes_a_plain_model_folder_for_vllm(registry, tmp_path, capsys):
    from transformers import AutoTokenizer

    from loraflow.cli import main

    _, first, _ = registry
    for _ in range(2):  # the second call reuses the folder
        assert main(["serve", "--model", "models:/tiny-chat@champion", "--download-to", str(tmp_path / "models")]) == 0
        folder = Path(capsys.readouterr().out.strip())
        assert folder == tmp_path / "models" / "tiny-chat" / str(first)
    # MLflow's transformers flavour stores the tokenizer apart; vLLM needs it beside the weights.
    assert (folder / "config.json").is_file() and (folder / "tokenizer.json").is_file()
    assert AutoTokenizer.from_pretrained(folder).chat_template


def test_champion_move_swaps_the_model_without_failing_requests(registry, tmp_path):
    client, first, second = registry
    client.set_registered_model_alias("tiny-chat", "champion", first)
    config = ServeConfig(port=free_port(), max_batch_size=4, batch_wait_ms=5, max_new_tokens=4, reload_poll_seconds=0.2)
    server = RunningServer(config, "models:/tiny-chat@champion", tmp_path / "cache")
    seen, errors, stop = [], [], threading.Event()

    def keep_asking(stream: bool):
        while not stop.is_set():
            try:
                if stream:
                    chunks = list(server.client.chat.completions.create(model="tiny-chat", messages=MESSAGES, stream=True))
                    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
                    seen.append(chunks[-1].system_fingerprint)
                else:
                    seen.append(server.client.chat.completions.create(model="tiny-chat", messages=MESSAGES).system_fingerprint)
            except Exception as error:  # any failure during the swap is what this test must not see
                errors.append(error)

    def wait_for(condition, what):
        deadline = time.monotonic() + 180
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.1)

    clients = [threading.Thread(target=keep_asking, args=(s,)) for s in (False, True, False)]
    try:
        for thread in clients:
            thread.start()
        wait_for(lambda: seen.count(f"v{first}") >= 3, "answers from the first version")
        client.set_registered_model_alias("tiny-chat", "champion", second)
        wait_for(lambda: seen.count(f"v{second}") >= 3, "answers from the second version")
    finally:
        stop.set()
        for thread in clients:
            thread.join(60)
        server.close()
    assert errors == []
    assert set(seen) == {f"v{first}", f"v{second}"}
    assert seen.index(f"v{second}") > seen.index(f"v{first}")


def test_loraflow_serve_command_serves_a_folder(tmp_path):
    import os
    import subprocess
    import sys

    model = tiny_model(tmp_path / "models", ["cli"])
    port = free_port()
    env = {**os.environ, "LORAFLOW_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-c", "import sys; from loraflow.cli import main; sys.exit(main())",
               "serve", "--model", model, "--port", str(port), "--device", "cpu"]
    process = subprocess.Popen(command, env=env, cwd=Path(__file__).resolve().parents[2],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/ready", 180, process, interval=0.2)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0)
        assert [m.id for m in client.models.list()] == [Path(model).name]
        reply = client.chat.completions.create(model=Path(model).name, messages=MESSAGES, max_tokens=3)
        assert reply.choices[0].finish_reason in ("stop", "length")
    finally:
        process.terminate()
        output = process.communicate(timeout=60)[0]
    # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal: the CLI turns it into exit status 143.
    assert "Application shutdown complete" in output and process.returncode == 128 + signal.SIGTERM
