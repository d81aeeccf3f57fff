"""FSDP + QLoRA launched by train_model on two GPUs (torchrun + accelerate's FSDP2): trains, saves, resumes."""
import json

import pytest

from loraflow.schemas.config.lora import LoraConfig
from loraflow.schemas.config.train import TrainConfig
from loraflow.schemas.results.training import TrainingResult
from loraflow.tasks.common.jsonl import write_jsonl

pytestmark = pytest.mark.gpu


def _records(n: int = 64) -> list[dict]:
    return [{"id": f"r{i}", "messages": [{"role": "user", "content": f"ticket {i}: my order is late"},
                                          {"role": "assistant", "content": '{"category": "billing"}'}],
             "metadata": {}} for i in range(n)]


def _train(model_path, data, out, **overrides) -> TrainingResult:
    from loraflow.tasks.training.train import train_model

    settings = {"method": "qlora", "epochs": 50, "micro_batch_size": 8, "effective_batch_size": 16,
                "learning_rate": 2e-3, "logging_steps": 1, "warmup_ratio": 0.0, "gradient_checkpointing": True,
                "num_gpus": 2, "distributed": "fsdp", **overrides}
    return train_model(str(model_path), data, None, LoraConfig(r=8, alpha=16), TrainConfig(**settings), 128, str(out))


def test_fsdp_qlora_on_two_gpus_trains_saves_and_resumes(tiny_model_path, tmp_path):
    import torch
    from safetensors.torch import load_file

    if torch.cuda.device_count() < 2:
        pytest.skip("needs two GPUs")
    data = tmp_path / "train.jsonl"
    write_jsonl(data, _records())
    out = tmp_path / "run"
    first = _train(tiny_model_path, str(data), out, max_steps=12, save_steps=6)
    assert first.world_size == 2 and first.distributed == "fsdp"
    assert first.speed.compile_layers is False  # off inside FSDP units unless asked for
    assert len(first.gpu_memory_per_rank) == 2 and all(m.train_peak_gib > 0 for m in first.gpu_memory_per_rank)
    losses = [h["loss"] for h in json.loads(open(first.log_history).read()) if "loss" in h]
    assert losses[-1] < losses[0], losses
    adapter = out / "model" / "adapter" / "adapter_model.safetensors"
    weights = load_file(str(adapter))
    # trl keeps QLoRA adapters in bf16 (its QLoRA recipe), under FSDP as on one GPU
    assert weights and all(t.is_floating_point() and torch.isfinite(t).all() for t in weights.values())
    assert (out / "train" / "checkpoints" / "checkpoint-12").is_dir()

    # a later run in the same folder resumes from the last checkpoint under FSDP and carries on
    resumed = _train(tiny_model_path, str(data), out, max_steps=16, save_steps=6)
    assert resumed["resumed_from"].endswith("checkpoint-12")
    assert resumed["metrics"]["global_step"] == 16
    history = json.loads(open(resumed["log_history"]).read())
    assert [h["step"] for h in history if "loss" in h][-1] == 16
    assert all(abs(h["loss"]) < 100 for h in history if "loss" in h)


def test_auto_picks_ddp_for_a_model_that_fits_one_card(tiny_model_path, tmp_path):
    import torch

    from loraflow.tasks.training.distributed import resolve_distributed
    from loraflow.tasks.planning.estimate_shapes import load_model_config

    card = torch.cuda.get_device_properties(0).total_memory / 1024**3
    train = TrainConfig(method="qlora", num_gpus=2)
    assert resolve_distributed(train, LoraConfig(), load_model_config(str(tiny_model_path)), 128, card, 2).distributed == "ddp"
