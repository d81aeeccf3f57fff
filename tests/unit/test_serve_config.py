"""ServeConfig validation (the vLLM options in particular) and the `vllm serve` command built from it."""
from pathlib import Path

import pytest
from pydantic import ValidationError

from loraflow.cli import main
from loraflow.schemas.config.serve import ServeConfig
from loraflow.services.serving.server import choose_backend
from loraflow.services.serving.source import parse_model_uri, served_model_name
from loraflow.services.serving.vllm_backend import build_vllm_command, vllm_available, vllm_environment


def test_defaults_are_valid_and_pick_the_builtin_backend_without_vllm():
    config = ServeConfig()
    assert (config.backend, config.port, config.vllm.tensor_parallel_size) == ("auto", 8000, 1)
    assert vllm_available() is False  # vLLM cannot be installed on the build machines
    assert choose_backend(config) == "builtin"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"vllm": {"lora_modules": {"support": "/a"}}}, "enable_lora is false"),
        ({"vllm": {"enable_lora": True, "lora_modules": {"bad name": "/a"}}}, "must be letters"),
        ({"vllm": {"max_lora_rank": 12}}, "max_lora_rank=12 must be one of"),
        ({"vllm": {"extra_args": ["--port=9000"]}}, "repeats --port"),
        ({"backend": "vllm", "device": "cpu"}, "needs a GPU"),
        ({"backend": "builtin", "vllm": {"tensor_parallel_size": 2}}, "needs serve.backend vllm"),
        ({"vllm": {"gpu_memory_utilization": 1.5}}, "less than or equal to 1"),
        ({"vllm": {"quantization": "int3"}}, "awq"),
        ({"max_batch_size": 0}, "greater than or equal to 1"),
        ({"reload_seconds": 5}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_options_fail_with_the_key(data, message):
    with pytest.raises(ValidationError, match=message):
        ServeConfig.model_validate(data)


def test_all_vllm_problems_are_reported_together():
    with pytest.raises(ValidationError) as error:
        ServeConfig.model_validate({"vllm": {"lora_modules": {"a": "/a"}, "max_lora_rank": 3, "extra_args": ["--dtype", "half"]}})
    text = str(error.value)
    assert "enable_lora" in text and "max_lora_rank" in text and "--dtype" in text


def test_vllm_command_carries_every_option():
    config = ServeConfig.model_validate({
        "host": "0.0.0.0", "port": 8001, "max_batch_size": 32,
        "vllm": {"tensor_parallel_size": 2, "dtype": "bfloat16", "max_model_len": 4096, "quantization": "awq",
                 "enable_lora": True, "lora_modules": {"support": "/adapters/support"}, "max_lora_rank": 16,
                 "extra_args": ["--enable-prefix-caching"]},
    })
    command = build_vllm_command("/models/champion", config, "support-bot")
    assert command[:3] == ["vllm", "serve", "/models/champion"]
    pairs = dict(zip(command[3::1], command[4::1]))
    assert pairs["--host"] == "0.0.0.0" and pairs["--port"] == "8001" and pairs["--served-model-name"] == "support-bot"
    assert pairs["--tensor-parallel-size"] == "2" and pairs["--max-num-seqs"] == "32" and pairs["--max-model-len"] == "4096"
    assert pairs["--quantization"] == "awq" and pairs["--dtype"] == "bfloat16" and pairs["--max-lora-rank"] == "16"
    assert "--enable-lora" in command and pairs["--lora-modules"] == "support=/adapters/support"
    assert command[-1] == "--enable-prefix-caching"
    assert vllm_environment(config)["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"
    plain = build_vllm_command("/m", ServeConfig(), "m")
    assert "--enable-lora" not in plain and "--quantization" not in plain and "--max-model-len" not in plain


def test_model_uris_parse(tmp_path):
    assert parse_model_uri("models:/support@champion").alias == "champion"
    assert parse_model_uri("models:/support/3").version == "3"
    assert not parse_model_uri(str(tmp_path)).is_registry
    assert served_model_name("models:/support@champion") == "support"
    assert served_model_name(str(tmp_path)) == tmp_path.name


def test_cli_prints_the_vllm_command_and_rejects_bad_settings(capsys):
    assert main(["serve", "--model", "/models/m", "--port", "9001", "--print-vllm-command"]) == 0
    assert capsys.readouterr().out.startswith("vllm serve /models/m --host 127.0.0.1 --port 9001 --served-model-name m")
    assert main(["serve", "--model", "models:/bad@"]) == 1
    assert "models:/NAME@ALIAS" in capsys.readouterr().err
    assert main(["serve", "--model", "/m", "--backend", "vllm", "--device", "cpu"]) == 1
    assert "needs a GPU" in capsys.readouterr().err


def test_cli_defaults_to_the_champion_of_the_configs_registered_model(capsys):
    config = str(Path(__file__).resolve().parents[2] / "examples" / "quickstart" / "pipeline.yaml")
    assert main(["serve", "--config", config, "--set", "serve.port=8123", "--print-vllm-command"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("vllm serve models:/ticket-extraction@champion") and "--port 8123" in out
