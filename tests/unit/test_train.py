"""Training with trl's SFTTrainer on a tiny model: LoRA and QLoRA (bitsandbytes 4-bit on the CPU), completion-only loss."""
import json

import pytest

from loraflow.schemas.config import LoraConfig, TrainConfig
from loraflow.schemas.results import TrainingResult
from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.common.jsonl import write_jsonl
from loraflow.tasks.training.train import to_prompt_completion, train_model


def _records(n: int) -> list[dict]:
    return [{"id": f"r{i}", "metadata": {}, "messages": [
        {"role": "system", "content": "Answer in JSON."},
        {"role": "user", "content": f"ticket {i}: my CloudDrive invoice is wrong"},
        {"role": "assistant", "content": json.dumps({"category": "billing", "n": i % 3})}]} for i in range(n)]


@pytest.fixture
def data(tmp_path):
    records = _records(40)
    write_jsonl(tmp_path / "train.jsonl", records[:32])
    write_jsonl(tmp_path / "val.jsonl", records[32:])
    return tmp_path


def test_every_assistant_turn_becomes_a_completion_and_nothing_else():
    record = {"id": "m", "messages": [
        {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}]}
    examples = to_prompt_completion([record])
    assert [e["completion"][0]["content"] for e in examples] == ["b", "d"]
    assert examples[1]["prompt"] == record["messages"][:3]
    assert all(e["completion"][0]["role"] == "assistant" for e in examples)


@pytest.mark.parametrize("method", ["lora", "qlora"])
def test_training_lowers_loss_and_saves_the_adapter(tiny_model_path, data, method):
    config = TrainConfig(method=method, learning_rate=2e-3, epochs=3, effective_batch_size=8, micro_batch_size=4,
                         logging_steps=1, early_stopping_patience=0)
    result = train_model(str(tiny_model_path), str(data / "train.jsonl"), str(data / "val.jsonl"), LoraConfig(r=8),
                         config, 96, str(data / method))
    adapter = data / method / "model" / "adapter"
    assert (adapter / "adapter_config.json").is_file() and (adapter / "tokenizer_config.json").is_file()
    assert result.method == method and result.adapter_path == str(adapter) and result.base_model_path == str(tiny_model_path)
    assert result.speed.packing is False and result.gpu_memory_per_rank == []  # the CPU: no packing, no CUDA memory
    # a multi-GPU run's rank 0 writes the result as JSON and the launching process reads it back (launch.py)
    assert TrainingResult.model_validate_json(result.model_dump_json()) == result
    history = json.loads((data / method / "train" / "log_history.json").read_text())
    losses = [h["loss"] for h in history if "loss" in h]
    assert len(losses) >= 6 and losses[-1] < losses[0]
    assert any("eval_loss" in h for h in history) and any("grad_norm" in h and "learning_rate" in h for h in history)
    assert list((data / method / "train" / "tensorboard").rglob("events.out.tfevents*"))
    if method == "qlora":
        adapter_config = json.loads((adapter / "adapter_config.json").read_text())
        assert adapter_config["r"] == 8


def test_no_training_examples_is_a_clear_error(tiny_model_path, tmp_path):
    write_jsonl(tmp_path / "train.jsonl", [])
    with pytest.raises(LoraflowError, match="no training examples"):
        train_model(str(tiny_model_path), str(tmp_path / "train.jsonl"), None, LoraConfig(), TrainConfig(), 64, str(tmp_path))


def test_last_layers_adapts_only_the_top_layers_and_validation_runs_several_times(tiny_model_path, data):
    from safetensors.torch import load_file

    config = TrainConfig(learning_rate=2e-3, epochs=2, effective_batch_size=4, micro_batch_size=4, logging_steps=1,
                         early_stopping_patience=0)
    train_model(str(tiny_model_path), str(data / "train.jsonl"), str(data / "val.jsonl"), LoraConfig(r=4, last_layers=1),
                config, 96, str(data / "last"))
    weights = load_file(str(data / "last" / "model" / "adapter" / "adapter_model.safetensors"))
    layers = {name.split(".layers.")[1].split(".")[0] for name in weights}
    assert layers == {"1"}  # the tiny model has layers 0 and 1: only the last one carries LoRA weights
    assert {name.split(".")[-3] for name in weights} >= {"q_proj", "v_proj", "down_proj"}  # all-linear, resolved to names
    history = json.loads((data / "last" / "train" / "log_history.json").read_text())
    # 16 steps, no train.eval_steps: validation loss at about five points of the run, not once per epoch
    assert len([h for h in history if "eval_loss" in h]) >= 4

