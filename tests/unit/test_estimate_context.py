"""Long context in the estimate: offloaded checkpointing's memory, train.offload_activations auto, and the longest
sequence that trains at batch 1 on a card for loraflow and the plain QLoRA stack (predictions; the measurement is
benchmarks/long_context_bench.py's)."""
import json

import pytest

from loraflow.schemas.config import LoraConfig, TrainConfig
from loraflow.tasks.planning.auto_settings import auto_offload_activations
from loraflow.tasks.planning.estimate import activation_bytes, estimate_resources
from loraflow.tasks.planning.estimate_context import (GRANULARITY, context_limits, longest_sequence,
                                                      offloaded_host_bytes)
from loraflow.tasks.planning.estimate_shapes import GIB, shape_from_config

LLAMA31_8B = {  # Llama-3.1-8B's config.json numbers (the issue's 8B shape)
    "model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
    "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256, "tie_word_embeddings": False,
    "max_position_embeddings": 131072,
}
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def test_offloading_leaves_two_layer_inputs_on_the_card():
    shape, tokens = shape_from_config(LLAMA31_8B), 65536
    kept = activation_bytes(shape, tokens, True, 2, dropout_copies=False)
    offloaded = activation_bytes(shape, tokens, True, 2, dropout_copies=False, offload_activations=True)
    assert kept - offloaded == tokens * (32 - 2) * 4096 * 2  # 30 of 32 bf16 layer inputs leave the card
    # without checkpointing there is nothing to offload: the option only acts with it
    assert estimate_resources(LLAMA31_8B, "qlora", 16, 8192, 1, False, 0, 1, 80, offload_activations=True,
                              qlora_fp32="none").peak_gpu_memory_gib == \
        estimate_resources(LLAMA31_8B, "qlora", 16, 8192, 1, False, 0, 1, 80, qlora_fp32="none").peak_gpu_memory_gib


def test_host_blocks_round_up_to_a_power_of_two_per_layer():
    tiny = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4}
    assert offloaded_host_bytes(tiny, 1024) == 2 * 1024 * 64 * 2  # 128 KiB per layer, already a power of two
    assert offloaded_host_bytes(tiny, 1536) == 2 * 256 * 1024  # 192 KiB per layer holds a 256 KiB block
    assert offloaded_host_bytes(tiny, 1024, unchecked_layers=1) == 1024 * 64 * 2
    assert offloaded_host_bytes(tiny, 1024, residual_bytes=4) == 2 * offloaded_host_bytes(tiny, 1024)


def test_the_8b_shape_on_an_80_gib_card_loraflow_reaches_the_issue_target_and_the_plain_stack_far_less():
    ours = longest_sequence(LLAMA31_8B, 80.0, target_modules=TARGETS)
    plain = longest_sequence(LLAMA31_8B, 80.0, "plain", target_modules=TARGETS)
    print(f"predicted on 80 GiB: loraflow {ours.tokens:,} tokens, plain stack {plain.tokens:,}")
    assert ours.tokens >= 128 * 1024 and ours.limited_by == "gpu"
    assert plain.tokens < ours.tokens / 4  # full logits (14.5 B x 128k vocab per token) dominate the plain stack
    for limit in (ours, plain):
        assert limit.tokens % GRANULARITY == 0 and limit.required_gpu_memory_gib <= 80.0
        longer = estimate_resources(LLAMA31_8B, "qlora", 16, limit.tokens + GRANULARITY, 1, True, 0, 1, 80.0,
                                    target_modules=TARGETS, **{k: v for k, v in limit.settings.items() if k != "method"})
        assert longer.required_gpu_memory_gib > 80.0  # the next length does not fit: the search found the edge
    assert ours.host_memory_gib == offloaded_host_bytes(LLAMA31_8B, ours.tokens) / GIB and plain.host_memory_gib == 0


def test_the_longest_sequence_grows_with_the_card_and_with_offloading():
    lengths = [longest_sequence(LLAMA31_8B, gib).tokens for gib in (24, 40, 80, 141)]
    assert lengths == sorted(lengths) and len(set(lengths)) == 4
    without = [longest_sequence(LLAMA31_8B, gib, offload_activations=False).tokens for gib in (24, 40, 80, 141)]
    assert all(o > 1.5 * w for o, w in zip(lengths, without))
    plain = [longest_sequence(LLAMA31_8B, gib, "plain").tokens for gib in (24, 40, 80, 141)]
    assert plain == sorted(plain) and all(p < w for p, w in zip(plain, without))
    assert longest_sequence(LLAMA31_8B, 4.0).tokens == 0  # the 4-bit weights alone nearly fill 4 GiB


def test_host_memory_bounds_the_offloaded_length():
    free = longest_sequence(LLAMA31_8B, 141.0)
    bounded = longest_sequence(LLAMA31_8B, 141.0, host_memory_gib=128.0)
    assert bounded.limited_by == "host memory" and bounded.tokens < free.tokens
    assert bounded.host_memory_gib <= 0.8 * 128.0


def test_offload_auto_turns_on_only_when_the_micro_batch_does_not_fit_otherwise():
    train = TrainConfig(method="qlora", gradient_checkpointing=True, micro_batch_size=1, effective_batch_size=1,
                        qlora_fp32="none")
    lora = LoraConfig(r=16, target_modules=TARGETS)
    assert not auto_offload_activations(train, lora, LLAMA31_8B, 8192, 80.0)
    assert auto_offload_activations(train, lora, LLAMA31_8B, 196608, 80.0)  # 192k tokens need the offload
    assert not auto_offload_activations(train, lora, LLAMA31_8B, 196608, None)  # no card: nothing to size for
    unchecked = train.model_copy(update={"gradient_checkpointing": False})
    assert not auto_offload_activations(unchecked, lora, LLAMA31_8B, 196608, 80.0)


def _config(tmp_path, max_length: int):
    from loraflow.tasks.common.config_files import load_config

    (tmp_path / "model").mkdir(exist_ok=True)
    (tmp_path / "model" / "config.json").write_text(json.dumps(LLAMA31_8B))
    path = tmp_path / "pipeline.yaml"
    path.write_text(f"model:\n  name_or_path: {tmp_path / 'model'}\n  max_length: {max_length}\ntrain:\n  method: qlora\n"
                    "  micro_batch_size: 1\n  effective_batch_size: 16\n  gradient_checkpointing: true\n")
    return path, load_config(path)


def test_estimate_for_config_offloads_a_long_sequence_and_reports_both_limits(tmp_path):
    from loraflow.tasks.planning.estimate_config import estimate_for_config

    _, config = _config(tmp_path, 196608)
    long = estimate_for_config(config, n_train_tokens=10**7, gpu_memory_gib=80.0, device="H100", host_memory=512.0)
    assert long.fits and any(n.startswith("train.offload_activations auto -> on") for n in long.notes)
    off = estimate_for_config(config.model_copy(update={"train": config.train.model_copy(
        update={"offload_activations": False})}), n_train_tokens=10**7, gpu_memory_gib=80.0, device="H100")
    assert not off.fits and off.peak_gpu_memory_gib > long.peak_gpu_memory_gib
    ours, plain = long.context_limits
    assert (ours.stack, plain.stack) == ("loraflow", "plain") and ours.tokens > 196608 > plain.tokens
    assert [c.tokens for c in context_limits(config.train, config.lora, "qlora", LLAMA31_8B, 80.0, 512.0)] == \
        [ours.tokens, plain.tokens]
    assert json.loads(json.dumps(long.to_dict()))["context_limits"][0]["stack"] == "loraflow"
    short = estimate_for_config(_config(tmp_path, 4096)[1], n_train_tokens=10**6, gpu_memory_gib=80.0, device="H100")
    assert not any("offload_activations" in n for n in short.notes)
    assert estimate_for_config(config, n_train_tokens=10**6, device="cpu").context_limits == []  # no card size


def test_cli_estimate_prints_the_longest_sequence_for_both_stacks(tmp_path, capsys):
    from loraflow.cli import main

    path, _ = _config(tmp_path, 8192)
    assert main(["estimate", str(path), "--device", "H100", "--gpu-memory", "80", "--host-memory", "512",
                 "--tokens", "100000"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("longest sequence")]
    assert len(lines) == 2 and "loraflow (qlora, offloaded checkpointing" in lines[0] and "plain QLoRA" in lines[1]
    ours = longest_sequence(LLAMA31_8B, 80.0, host_memory_gib=512.0, lora_r=8, target_modules="all-linear")
    assert f"~{ours.tokens:,} tokens" in lines[0]


@pytest.mark.parametrize("stack", ["loraflow", "plain"])
def test_a_bigger_lora_rank_never_lengthens_the_context(stack):
    assert longest_sequence(LLAMA31_8B, 80.0, stack, lora_r=64).tokens <= longest_sequence(LLAMA31_8B, 80.0, stack).tokens
