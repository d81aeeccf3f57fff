"""train.distributed: auto's choice, the FSDP recipe handed to the Trainer, and the per-GPU estimate under FSDP."""
import json

import pytest

from loraflow.schemas.config.lora import LoraConfig
from loraflow.schemas.config.train import TrainConfig
from loraflow.tasks.planning.auto_settings import pick_distributed
from loraflow.tasks.training.distributed import FSDP_CONFIG, fsdp_arguments, resolve_distributed, uses_fsdp
from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.planning.estimate import estimate_resources
from loraflow.tasks.planning.estimate_shapes import shape_from_config

LLAMA2_7B = {"model_type": "llama", "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
             "num_attention_heads": 32, "num_key_value_heads": 32, "vocab_size": 32000, "tie_word_embeddings": False}
LLAMA2_70B = {**LLAMA2_7B, "hidden_size": 8192, "intermediate_size": 28672, "num_hidden_layers": 80,
              "num_attention_heads": 64, "num_key_value_heads": 8}


def test_distributed_defaults_to_auto_and_rejects_other_names():
    assert TrainConfig().distributed == "auto"
    with pytest.raises(ValueError):
        TrainConfig(distributed="deepspeed")


def test_auto_is_fsdp_only_on_several_gpus_when_ddp_does_not_fit():
    assert pick_distributed("auto", ddp_fits=True, nproc=2) == "ddp"
    assert pick_distributed("auto", ddp_fits=False, nproc=2) == "fsdp"
    assert pick_distributed("auto", ddp_fits=False, nproc=1) == "ddp"
    assert pick_distributed("fsdp", ddp_fits=True, nproc=2) == "fsdp"


def test_resolve_picks_by_the_estimate_for_the_card():
    lora = LoraConfig(r=16)
    qlora_7b = resolve_distributed(TrainConfig(method="qlora", micro_batch_size=4, gradient_checkpointing=True), lora,
                                   LLAMA2_7B, 1024, 80.0, 2)
    assert qlora_7b.distributed == "ddp"
    # bf16 LoRA of a 70B model needs ~130 GiB of weights: DDP cannot hold it on an 80 GiB card, FSDP shards it
    lora_70b = resolve_distributed(TrainConfig(method="lora", micro_batch_size=1, gradient_checkpointing=True), lora,
                                   LLAMA2_70B, 1024, 80.0, 2)
    assert lora_70b.distributed == "fsdp"
    assert resolve_distributed(TrainConfig(method="lora"), lora, LLAMA2_70B, 1024, 80.0, 1).distributed == "ddp"


def test_fsdp_refuses_fp32_weights_beside_the_4bit_ones_with_the_fix():
    with pytest.raises(LoraflowError, match="train.qlora_fp32=none"):
        resolve_distributed(TrainConfig(method="qlora", distributed="fsdp", qlora_fp32="norms"), LoraConfig(),
                            LLAMA2_7B, 1024, 80.0, 2)


def test_the_trainer_gets_the_fsdp_recipe_only_when_sharding(tmp_path):
    from loraflow.tasks.training.speed import resolve_speed
    from loraflow.tasks.training.train import build_sft_config

    fsdp = TrainConfig(method="qlora", distributed="fsdp")
    assert uses_fsdp(fsdp, 2) and not uses_fsdp(fsdp, 1) and not uses_fsdp(TrainConfig(distributed="ddp"), 2)
    assert fsdp_arguments(fsdp, 1) == {} and fsdp_arguments(TrainConfig(distributed="ddp"), 2) == {}
    args = build_sft_config(fsdp, 128, tmp_path, False, 100, False, resolve_speed(fsdp, "cpu"), world_size=2)
    plugin = args.fsdp_plugin_args
    assert args.fsdp and plugin["fsdp_version"] == 2 and plugin["reshard_after_forward"] is True  # FULL_SHARD
    assert plugin["auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP" and plugin["cpu_ram_efficient_loading"] is True
    assert plugin["state_dict_type"] == "FULL_STATE_DICT" and FSDP_CONFIG["activation_checkpointing"] is False
    assert not build_sft_config(fsdp, 128, tmp_path, False, 100, False, resolve_speed(fsdp, "cpu"), world_size=1).fsdp


def test_qlora_for_fsdp_stores_the_4bit_weights_in_bf16(tiny_model_path):
    import torch
    from bitsandbytes.nn import Params4bit

    from loraflow.tasks.training.train import load_model

    model = load_model(str(tiny_model_path), "qlora", "cpu", True, True, fsdp=True)
    weight = model.model.layers[0].self_attn.q_proj.weight
    assert isinstance(weight, Params4bit) and weight.dtype == torch.bfloat16  # FSDP flattens it with the bf16 rest
    assert all(p.dtype == torch.bfloat16 for p in model.parameters())


def test_fsdp_estimate_shards_states_per_gpu_and_counts_the_gathered_layers():
    common = dict(lora_r=16, seq_len=1024, micro_batch=8, grad_checkpointing=True, n_train_tokens=0, epochs=1.0,
                  gpu_memory_gib=80.0, qlora_fp32="none")
    one = estimate_resources(LLAMA2_7B, "qlora", **common)
    two = estimate_resources(LLAMA2_7B, "qlora", **common, num_gpus=2, distributed="fsdp")
    for part in ("weights", "adapter", "gradients", "optimizer"):
        assert two.memory_gib[part] == pytest.approx(one.memory_gib[part] / 2, abs=1e-3)
    assert two.memory_gib["activations"] == one.memory_gib["activations"]  # per-GPU micro-batch: not shared
    shape = shape_from_config(LLAMA2_7B)
    layer_gib = shape.layer_linear_params / shape.num_layers * 0.516 / 1024**3
    assert two.memory_gib["fsdp_gathered_units"] > 2 * layer_gib
    assert two.peak_gpu_memory_gib < one.peak_gpu_memory_gib and "fsdp over 2 GPUs: memory per GPU" in two.notes
    assert estimate_resources(LLAMA2_7B, "qlora", **common, num_gpus=2).peak_gpu_memory_gib == one.peak_gpu_memory_gib


def test_qlora_loading_needs_the_whole_4bit_model_on_each_gpu_before_it_is_sharded():
    common = dict(lora_r=16, seq_len=1024, micro_batch=1, grad_checkpointing=True, n_train_tokens=0, epochs=1.0,
                  gpu_memory_gib=80.0, qlora_fp32="none", num_gpus=4, distributed="fsdp")
    qlora = estimate_resources(LLAMA2_70B, "qlora", **common)
    weights = qlora.memory_gib["weights"] * 4
    assert qlora.memory_gib["fsdp_load_excess"] > 0
    assert qlora.peak_gpu_memory_gib == pytest.approx(weights * 1.25 + qlora.memory_gib["runtime_buffers"], rel=0.01)
    lora = estimate_resources(LLAMA2_70B, "lora", **common)  # bf16 LoRA loads on the CPU and arrives sharded
    assert lora.memory_gib["fsdp_load_excess"] == 0


def test_loraflow_estimate_predicts_the_per_gpu_peak_for_fsdp(tmp_path, capsys):
    from loraflow.cli import main

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text(json.dumps(LLAMA2_70B))
    config_file = tmp_path / "pipeline.yaml"
    config_file.write_text("model:\n  name_or_path: ./model\n  max_length: 1024\ntrain:\n  method: lora\n"
                           "  micro_batch_size: 1\n  effective_batch_size: 16\n  gradient_checkpointing: true\n")
    base = ["estimate", str(config_file), "--json", "--device", "H100", "--gpu-memory", "80", "--tokens", "5000"]
    assert main(base + ["--gpus", "1"]) == 0
    single = json.loads(capsys.readouterr().out)
    assert main(base + ["--gpus", "4"]) == 0  # distributed auto: DDP does not fit, so FSDP over 4 GPUs
    sharded = json.loads(capsys.readouterr().out)
    assert not single["fits"] and sharded["fits"]
    assert sharded["peak_gpu_memory_gib"] < single["peak_gpu_memory_gib"] / 3
    assert "train.distributed auto -> fsdp on 4 GPUs" in sharded["notes"]
    assert main(base + ["--gpus", "4", "--set", "train.distributed=ddp"]) == 0
    assert json.loads(capsys.readouterr().out)["peak_gpu_memory_gib"] == single["peak_gpu_memory_gib"]


def test_an_fsdp_worker_trains_without_compiled_layers_unless_asked():
    from loraflow.tasks.training.distributed import worker_settings

    train, fsdp = worker_settings(TrainConfig(method="qlora", distributed="fsdp"), LoraConfig(), LLAMA2_7B, 1024, 2)
    assert fsdp and train.compile_layers is False
    train, fsdp = worker_settings(TrainConfig(distributed="fsdp", compile_layers=True), LoraConfig(), LLAMA2_7B, 1024, 2)
    assert fsdp and train.compile_layers is True
    train, fsdp = worker_settings(TrainConfig(distributed="fsdp"), LoraConfig(), LLAMA2_7B, 1024, 1)
    assert not fsdp and train.compile_layers is None
