"""Bad input ends with one clear line (what, where, how to fix) and a non-zero exit, never a traceback."""
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

TINY = str(REPO / "examples" / "tiny" / "pipeline.yaml")


def loraflow(*args: str, cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "loraflow.cli", *args], capture_output=True, text=True, cwd=cwd or REPO,
                          env=env, timeout=600)


def assert_one_line_error(result: subprocess.CompletedProcess, *needles: str, code: int = 1) -> None:
    assert result.returncode == code, (result.returncode, result.stderr[-2000:])
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]


def test_missing_config_file():
    assert_one_line_error(loraflow("run", "nope.yaml"), "nope.yaml", "does not exist")


def test_config_typo_and_invalid_values_listed_together(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  lerning_rate: 1e-4\n  epochs: -1\nsplit:\n  train: 0.9\n")
    result = loraflow("config", "check", str(bad))
    assert_one_line_error(result, "train.lerning_rate: unknown key", "train.epochs", "split")


def test_invalid_yaml_names_the_line(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("train:\n  epochs: [3\n")
    assert_one_line_error(loraflow("config", "check", str(bad)), "broken.yaml:", "not valid YAML")


def test_unusual_values_warn_with_the_recommended_range(tmp_path):
    result = loraflow("config", "check", TINY, "--set", "train.learning_rate=1e-3", "--set", "lora.r=64")
    assert result.returncode == 0, result.stderr
    assert "train.learning_rate=0.001 is outside the recommended range 0.0001..0.0002" in result.stderr
    assert "lora.r=64 is outside the recommended range 8..16" in result.stderr


def test_missing_input_file():
    assert_one_line_error(loraflow("run", TINY, "--input", "missing.jsonl"), "missing.jsonl", "does not exist")


def test_a_directory_as_input_is_named_as_a_directory(tmp_path):
    assert_one_line_error(loraflow("data", TINY, "--input", str(tmp_path), "--out", str(tmp_path / "out")),
                          str(tmp_path), "is a directory")


def test_missing_model_path():
    result = loraflow("run", TINY, "--set", "model.name_or_path=./no/such/model")
    assert_one_line_error(result, "model.name_or_path ./no/such/model does not exist")


def test_config_schema_is_json_with_descriptions():
    result = loraflow("config", "schema")
    schema = json.loads(result.stdout)
    assert "train" in schema["properties"]
    assert schema["$defs"]["TrainConfig"]["properties"]["learning_rate"]["description"]


@pytest.mark.slow
def test_empty_input_and_too_many_invalid_rows_fail_inside_the_flow(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert_one_line_error(loraflow("data", TINY, "--input", str(empty), "--out", str(tmp_path / "a")), "empty.jsonl")

    bad = tmp_path / "bad.jsonl"
    good = {"messages": [{"role": "user", "content": "hi there"}, {"role": "assistant", "content": "hello, how can I help?"}]}
    lines = [json.dumps({**good, "id": f"g{i}"}) for i in range(10)] + ["{not json"] * 5
    bad.write_text("\n".join(lines) + "\n")
    out = tmp_path / "b"
    result = loraflow("data", TINY, "--input", str(bad), "--out", str(out))
    assert_one_line_error(result, code=2)
    quarantined = [json.loads(line) for line in (out / "data" / "quarantine.jsonl").read_text().splitlines()]
    assert len(quarantined) == 5 and all(q["reasons"] and q["line"] for q in quarantined)


def serve(*args: str) -> subprocess.CompletedProcess:
    from tests.integration.prefect_stack_support import free_port

    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    # Before the fix the server stayed up answering 503 forever: the timeout turns that into a failure.
    return subprocess.run([sys.executable, "-m", "loraflow.cli", "serve", "--backend", "builtin", "--port", str(free_port()),
                           *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=300)


def test_serving_a_missing_model_exits_with_one_line():
    assert_one_line_error(serve("--model", "/nope"), "/nope", "does not exist")


def test_serving_a_model_whose_weights_do_not_load_exits_with_one_line(tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "llama"}')
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    (broken / "tokenizer.json").write_text("{}")
    assert_one_line_error(serve("--model", str(broken)), "could not load the model", str(broken))
