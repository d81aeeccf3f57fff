"""Resource estimate: calibrated against the H100 measurements in benchmarks/results/qlora_baseline_h100.json, plus
auto, fit and config reading."""
import json

import pytest

from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.planning.estimate import estimate_resources, require_fit
from loraflow.tasks.planning.estimate_speed import tokens_per_second
from loraflow.tasks.planning.estimate_shapes import load_model_config, lora_params, shape_from_config

LLAMA2_7B = {
    "model_type": "llama", "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
    "num_attention_heads": 32, "num_key_value_heads": 32, "vocab_size": 32000, "tie_word_embeddings": False,
}
BENCH_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

# (method, seq, micro-batch, measured peak allocated GiB) from benchmarks/results/qlora_baseline_h100.json:
# gradient checkpointing, LoRA r=16 on all seven projections, paged 8-bit AdamW.
MEASURED = [
    ("qlora", 2048, 1, 6.48),
    ("qlora", 2048, 2, 8.36),
    ("qlora", 1024, 8, 12.15),
    ("qlora", 1024, 16, 19.94),
    ("lora", 1024, 16, 23.89),
    ("lora", 2048, 1, 14.19),
]


def _estimate(method="qlora", seq=2048, batch=1, checkpointing=True, gpu=80.0, **kw):
    kw.setdefault("fused_lm_head", False)  # the bench measured the plain stack, which builds the full logits
    kw.setdefault("lora_dropout", 0.05)  # and both sides with LoRA dropout 0.05 until 2026-11-30
    kw.setdefault("target_modules", BENCH_TARGETS)
    return estimate_resources(LLAMA2_7B, method, 16, seq, batch, checkpointing, 10_000_000, 1.0, gpu, **kw)


def test_llama2_7b_shapes_match_the_bench_model():
    shape = shape_from_config(LLAMA2_7B)
    assert shape.total_params == 6_738_415_616  # N_params the bench printed
    assert lora_params(shape, 16, BENCH_TARGETS) == 39_976_960  # its trainable parameters
    assert lora_params(shape, 16, "all-linear") == 39_976_960


@pytest.mark.parametrize(("method", "seq", "batch", "measured"), MEASURED)
def test_peak_memory_within_15_percent_of_h100_measurements(method, seq, batch, measured):
    estimate = _estimate(method, seq, batch, optimizer="paged_adamw_8bit")
    assert abs(estimate.peak_gpu_memory_gib / measured - 1) < 0.15


# loraflow's own path (fused LM head, fused AdamW, compiled layers) on an H100, from
# benchmarks/results/train_bench_h100_2026-11-27_run2_fused_adamw.json / _run3_unchecked.json / _run4_unchecked.json:
# (qlora_fp32, unchecked layers, seq, micro-batch, measured peak allocated GiB)
MEASURED_LORAFLOW = [
    ("norms", 0, 1024, 8, 10.59), ("norms", 0, 2048, 2, 7.24), ("norms", 0, 2048, 1, 5.57),
    ("none", 0, 1024, 8, 8.09), ("none", 0, 2048, 2, 5.99),
    ("none", 2, 1024, 8, 9.57), ("none", 3, 1024, 8, 11.03), ("none", 4, 1024, 8, 12.50),
    ("none", 2, 2048, 2, 6.79), ("none", 3, 2048, 2, 7.52),
]


# LoRA dropout 0 (the default since 2026-11-30) on an H200, benchmarks/results/train_bench_h200x2_2026-11-30_levers_gpu*.json
MEASURED_LORAFLOW_DROPOUT0 = [
    ("none", 0, 1024, 8, 7.73), ("none", 0, 2048, 2, 5.81), ("none", 3, 1024, 8, 9.62), ("none", 3, 2048, 2, 6.76),
    ("none", 4, 1024, 8, 10.57), ("none", 4, 2048, 2, 7.23), ("none", 4, 2048, 1, 5.56),
    ("none", 6, 1024, 8, 12.45), ("none", 6, 2048, 2, 8.17),
    ("norms", 0, 1024, 8, 9.90), ("norms", 0, 2048, 2, 6.90),
    ("norms", 2, 1024, 8, 11.18), ("norms", 2, 2048, 2, 7.61), ("norms", 2, 2048, 1, 5.75),
]
# The plain stack's measured peaks at the same shapes (the same runs; the H100's were the same to 0.01 GiB).
PLAIN_STACK_PEAK = {(1024, 8): 12.15, (2048, 2): 8.36, (2048, 1): 6.48}


@pytest.mark.parametrize(("qlora_fp32", "unchecked", "seq", "batch", "measured", "dropout"),
                         [(*row, 0.05) for row in MEASURED_LORAFLOW] + [(*row, 0.0) for row in MEASURED_LORAFLOW_DROPOUT0])
def test_peak_memory_within_10_percent_of_loraflows_own_path(qlora_fp32, unchecked, seq, batch, measured, dropout):
    estimate = _estimate("qlora", seq, batch, fused_lm_head=True, qlora_fp32=qlora_fp32, unchecked_layers=unchecked,
                         lora_dropout=dropout)
    assert abs(estimate.peak_gpu_memory_gib / measured - 1) < 0.10, estimate.memory_gib


@pytest.mark.parametrize(("seq", "batch"), list(PLAIN_STACK_PEAK))
def test_auto_unchecked_layers_spend_the_saving_and_stay_under_the_plain_stack(seq, batch):
    from loraflow.schemas.config.lora import LoraConfig
    from loraflow.schemas.config.train import TrainConfig
    from loraflow.tasks.planning.auto_settings import PLAIN_RECIPE_SHARE, auto_unchecked_layers

    train = TrainConfig(method="qlora", micro_batch_size=batch, effective_batch_size=batch, gradient_checkpointing=True)
    lora = LoraConfig(r=16, alpha=32, target_modules=BENCH_TARGETS)
    count = auto_unchecked_layers(train, lora, LLAMA2_7B, seq, 139.8)  # an H200's 143771 MiB
    own = [_estimate("qlora", seq, batch, fused_lm_head=True, qlora_fp32="none", lora_dropout=0.0, gpu=139.8,
                     unchecked_layers=n).peak_gpu_memory_gib for n in (count, count + 1)]
    plain = _estimate("qlora", seq, batch, optimizer="paged_adamw_8bit", qlora_fp32="all").peak_gpu_memory_gib
    assert count > 1 and own[0] <= PLAIN_RECIPE_SHARE * plain < own[1]
    measured = {(n, s, b): peak for fp32, n, s, b, peak in MEASURED_LORAFLOW_DROPOUT0 if fp32 == "none"}
    assert measured[(count, seq, batch)] < PLAIN_STACK_PEAK[(seq, batch)]
    if (seq, batch) == (2048, 1):
        assert measured[(count, seq, batch)] <= 6.0  # 7B QLoRA at seq 2048 within 6 GiB
    # a small card caps the count: every kept layer must still fit
    small = auto_unchecked_layers(train, lora, LLAMA2_7B, seq, 9.0)
    assert small < count or _estimate("qlora", seq, batch, gpu=9.0, fused_lm_head=True, qlora_fp32="none",
                                      lora_dropout=0.0, unchecked_layers=small).fits


def test_lora_dropout_zero_keeps_no_copies_of_the_layer_inputs():
    with_dropout = _estimate("qlora", 1024, 8, checkpointing=False, fused_lm_head=True, lora_dropout=0.05)
    without = _estimate("qlora", 1024, 8, checkpointing=False, fused_lm_head=True, lora_dropout=0.0)
    # per token and layer: a bf16 copy and a 1-byte mask of each adapted projection's input (6 x 4096 + 11008 values)
    saved = 32 * 8192 * 3 * (6 * 4096 + 11008) / 2**30
    assert with_dropout.memory_gib["activations"] - without.memory_gib["activations"] == pytest.approx(saved, abs=0.01)


def test_no_checkpointing_costs_far_more_activation_memory():
    # Measured: QLoRA 2048x2 without checkpointing peaked at 43.64 GiB.
    estimate = _estimate("qlora", 2048, 2, checkpointing=False)
    assert abs(estimate.peak_gpu_memory_gib / 43.64 - 1) < 0.15
    assert estimate.memory_gib["activations"] > 5 * _estimate("qlora", 2048, 2).memory_gib["activations"]


def test_memory_parts_follow_the_method():
    qlora, lora, full = _estimate("qlora"), _estimate("lora"), _estimate("full", gpu=None)
    assert qlora.memory_gib["weights"] < 0.35 * lora.memory_gib["weights"]
    assert full.trainable_params == full.total_params
    # full fine-tuning: fp32 master + bf16 copies + fp32 grads + AdamW's two fp32 moments
    assert full.memory_gib["optimizer"] == pytest.approx(6_738_415_616 * 8 / 2**30, rel=1e-3)
    assert full.peak_gpu_memory_gib > 100
    # The default optimizer (fused AdamW) keeps two fp32 moments, 8 bytes per trainable parameter, for every method;
    # paged 8-bit AdamW keeps 2.
    assert qlora.memory_gib["optimizer"] == pytest.approx(lora.memory_gib["optimizer"], rel=2e-2)
    assert qlora.memory_gib["optimizer"] == pytest.approx(39_976_960 * 8 / 2**30, abs=1e-3)
    paged = _estimate("qlora", optimizer="paged_adamw_8bit")
    assert paged.memory_gib["optimizer"] == pytest.approx(qlora.memory_gib["optimizer"] / 4, abs=1e-3)
    assert _estimate("qlora", optimizer="adamw_8bit").memory_gib["optimizer"] == paged.memory_gib["optimizer"]


def test_auto_picks_bf16_lora_when_it_fits_and_qlora_when_not():
    assert _estimate("auto", 1024, 8, gpu=80.0).method == "lora"
    on_24 = _estimate("auto", 1024, 8, gpu=24.0)
    assert on_24.method == "qlora" and on_24.fits
    assert "bf16 LoRA does not fit" in on_24.notes[0]


def test_too_big_gives_a_recommendation_that_fits_and_require_fit_names_it():
    on_24 = _estimate("lora", 2048, 16, checkpointing=False, gpu=24.0).recommendation
    # bf16 LoRA still fits 24 GiB with checkpointing and a smaller micro-batch, and is faster than QLoRA
    assert on_24.method == "lora" and on_24.gradient_checkpointing and on_24.micro_batch < 16
    estimate = _estimate("lora", 2048, 16, checkpointing=False, gpu=16.0)
    assert not estimate.fits
    rec = estimate.recommendation
    assert rec.method == "qlora" and rec.gradient_checkpointing
    assert rec.peak_gpu_memory_gib * 1.2 + 0.5 <= 16.0 * 0.9
    assert rec.micro_batch < 16
    with pytest.raises(LoraflowError, match=f"train.micro_batch_size={rec.micro_batch}"):
        require_fit(estimate)


def test_nothing_fits_a_tiny_card():
    estimate = _estimate("qlora", 2048, 1, gpu=4.0)
    assert not estimate.fits and estimate.recommendation is None
    with pytest.raises(LoraflowError, match="FSDP"):
        require_fit(estimate)
    require_fit(_estimate("qlora", 2048, 1, gpu=80.0))  # fits: no error


def test_training_time_from_the_measured_h100_throughput():
    # Bench: QLoRA 7B at 1024x8 ran 5,481 tokens/s, bf16 LoRA at 1024x16 6,925 tokens/s.
    shape = shape_from_config(LLAMA2_7B)
    assert tokens_per_second(shape, "qlora", 1024, 8, True, "NVIDIA H100 80GB HBM3") == pytest.approx(5481, rel=0.15)
    assert tokens_per_second(shape, "lora", 1024, 16, True, "H100") == pytest.approx(6925, rel=0.15)
    estimate = _estimate("qlora", 1024, 8)
    assert estimate.train_hours == pytest.approx(10_000_000 / estimate.tokens_per_s / 3600, rel=1e-3)
    # smaller micro-batches are slower per token (2048x1 measured 2.4-3.2k tokens/s)
    assert tokens_per_second(shape, "qlora", 2048, 1, True, "H100") < 0.75 * tokens_per_second(shape, "qlora", 1024, 8, True, "H100")


def test_cpu_throughput_matches_smollm2_measurement():
    # STACK.md: SmolLM2-135M LoRA on 2 CPU cores ~140 tokens/s (no checkpointing).
    shape = shape_from_config(load_model_config("smollm2-135m-instruct"))
    assert shape.total_params == pytest.approx(134.5e6, rel=0.01)
    assert tokens_per_second(shape, "lora", 512, 4, False, "cpu") == pytest.approx(140, rel=0.15)


def test_unknown_device_is_noted():
    assert any("no measured throughput" in n for n in _estimate(device="Some GPU").notes)


def test_disk_counts_checkpoints_merged_and_quantized_outputs():
    estimate = _estimate("qlora", quantize=["int8", "int4"], checkpoints_kept=3)
    parts = estimate.disk_parts_gib
    assert parts["merged_bf16"] == pytest.approx(6_738_415_616 * 2 / 2**30, rel=1e-3)
    assert parts["quantized_int4"] < parts["quantized_int8"] < parts["merged_bf16"]
    # each checkpoint: fp32 adapter (4 B) + the fused AdamW's fp32 moments (8 B) per trainable parameter
    assert parts["checkpoints"] == pytest.approx(3 * 39_976_960 * 12 / 2**30, rel=1e-3)
    assert estimate.disk_gib == pytest.approx(sum(parts.values()), abs=0.01)
    assert "merged_bf16" not in _estimate("qlora", merge=False).disk_parts_gib


def test_to_dict_is_json_with_the_summary_keys_first():
    data = json.loads(json.dumps(_estimate("auto", gpu=24.0).to_dict()))
    assert list(data)[:4] == ["peak_gpu_memory_gib", "train_hours", "disk_gib", "method"]
    assert data["method"] in ("lora", "qlora")


def test_load_model_config_from_folder_file_and_builtin_names(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(LLAMA2_7B))
    assert load_model_config(str(tmp_path))["hidden_size"] == 4096
    assert load_model_config(str(tmp_path / "config.json"))["num_hidden_layers"] == 32
    tiny = shape_from_config(load_model_config("tiny-random"))
    assert (tiny.hidden_size, tiny.intermediate_size, tiny.num_layers, tiny.num_heads, tiny.num_kv_heads) == (64, 128, 2, 4, 2)
    smol = shape_from_config(load_model_config("smollm2-135m-instruct"))
    assert smol.tied_embeddings and smol.vocab_size == 49152 and smol.head_dim == 64
    estimate = estimate_resources(str(tmp_path), "qlora", 16, 2048, 1, True, 1000, 1, None, target_modules=BENCH_TARGETS)
    assert estimate.trainable_params == 39_976_960


def test_load_model_config_errors_are_one_clear_sentence(tmp_path):
    with pytest.raises(LoraflowError, match="has no config.json"):
        load_model_config(str(tmp_path))
    with pytest.raises(LoraflowError, match="does not exist"):
        load_model_config(str(tmp_path / "missing"))
    (tmp_path / "config.json").write_text("{broken")
    with pytest.raises(LoraflowError, match="cannot read"):
        load_model_config(str(tmp_path))


def test_hub_id_offline_and_not_cached_is_a_clear_error(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(LoraflowError, match="offline and not in the local cache"):
        load_model_config("loraflow-test/not-a-cached-model")


def test_unknown_target_module_names_the_config_key():
    with pytest.raises(LoraflowError, match="lora.target_modules"):
        lora_params(shape_from_config(LLAMA2_7B), 8, ["q_proj", "c_attn"])


def test_other_layouts_fused_qkv_and_mixture_of_experts():
    phi3 = shape_from_config({**LLAMA2_7B, "model_type": "phi3"})
    assert phi3.total_params == shape_from_config(LLAMA2_7B).total_params
    moe = shape_from_config({**LLAMA2_7B, "model_type": "mixtral", "num_local_experts": 8})
    assert moe.total_params > 4 * shape_from_config(LLAMA2_7B).total_params
    nested = shape_from_config({"model_type": "gemma3", "text_config": LLAMA2_7B})
    assert nested.hidden_size == 4096


def test_estimate_for_config_counts_tokens_of_the_split_and_raw_data(tmp_path):
    from loraflow.tasks.common.config_files import load_config
    from loraflow.tasks.planning.estimate_config import approx_tokens, count_record_tokens, estimate_for_config
    from loraflow.tasks.common.jsonl import write_jsonl

    record = {"id": "a", "messages": [{"role": "user", "content": "word " * 100}, {"role": "assistant", "content": "你好" * 50}], "metadata": {}}
    write_jsonl(tmp_path / "train.jsonl", [record] * 10)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text(json.dumps(LLAMA2_7B))
    config_file = tmp_path / "pipeline.yaml"
    config_file.write_text("model:\n  name_or_path: ./model\n  max_length: 1024\ndata:\n  path: train.jsonl\ntrain:\n  method: auto\n")
    config = load_config(config_file)
    split = estimate_for_config(config, train_jsonl=tmp_path / "train.jsonl", gpu_memory_gib=80.0, device="H100")
    assert approx_tokens("你好") == 3 and approx_tokens("abcdefgh") == 2
    per_record = approx_tokens("word " * 100 + " " + "你好" * 50) + 4 * 2
    assert count_record_tokens(tmp_path / "train.jsonl") == 10 * per_record
    assert count_record_tokens(tmp_path / "train.jsonl", max_length=100) == 1000  # cut as training cuts
    assert f"train tokens per epoch: {10 * per_record:,}" in " ".join(split.notes)
    assert split.method == "lora" and split.train_hours > 0
    raw = estimate_for_config(config, gpu_memory_gib=80.0, device="H100")  # the raw file x split.train share
    assert 0 < raw.train_hours
    capped = estimate_for_config(load_config(config_file, ["train.max_steps=1"]), n_train_tokens=10**9, gpu_memory_gib=80.0, device="H100")
    assert capped.train_hours < 0.01  # one step of 16 x 1024 tokens, not 3 epochs of 1e9


def test_estimate_for_config_resolves_auto_unchecked_layers_for_the_card(tmp_path):
    from loraflow.tasks.common.config_files import load_config
    from loraflow.tasks.planning.estimate_config import estimate_for_config
    from loraflow.tasks.planning.auto_settings import auto_unchecked_layers

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text(json.dumps(LLAMA2_7B))
    config_file = tmp_path / "pipeline.yaml"
    config_file.write_text("model:\n  name_or_path: ./model\n  max_length: 1024\ntrain:\n  method: qlora\n"
                           "  micro_batch_size: 8\n  effective_batch_size: 16\n  gradient_checkpointing: true\n")
    config = load_config(config_file)
    on_h200 = estimate_for_config(config, n_train_tokens=10**6, gpu_memory_gib=139.8, device="NVIDIA H200")
    count = auto_unchecked_layers(config.train, config.lora, LLAMA2_7B, 1024, 139.8)
    assert count > 1 and f"train.unchecked_layers auto -> {count}" in on_h200.notes
    fixed = estimate_for_config(load_config(config_file, [f"train.unchecked_layers={count}"]), n_train_tokens=10**6,
                                gpu_memory_gib=139.8, device="NVIDIA H200")
    assert on_h200.peak_gpu_memory_gib == fixed.peak_gpu_memory_gib
    on_cpu = estimate_for_config(config, n_train_tokens=10**6, device="cpu")
    assert "train.unchecked_layers auto -> 0" in on_cpu.notes  # the CPU trains every layer checkpointed
    # method auto on an 80 GiB card picks bf16 LoRA, and the count is sized for it
    lora = estimate_for_config(load_config(config_file, ["train.method=auto"]), n_train_tokens=10**6,
                               gpu_memory_gib=80.0, device="H100")
    assert lora.method == "lora" and lora.fits


def test_cli_estimate_json_prints_the_summary_keys(tmp_path, capsys):
    from loraflow.cli import main

    config_file = tmp_path / "pipeline.yaml"
    config_file.write_text("model:\n  name_or_path: tiny-random\n")
    code = main(["estimate", str(config_file), "--json", "--device", "H100", "--gpu-memory", "80", "--tokens", "5000",
                 "--set", "train.method=qlora"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert {"peak_gpu_memory_gib", "train_hours", "disk_gib", "method"} <= set(data)
    assert data["method"] == "qlora" and data["fits"]
    assert main(["estimate", str(config_file), "--set", "model.name_or_path=/does/not/exist"]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_raw_token_count_reads_record_text_only_and_survives_broken_lines(tmp_path):
    from loraflow.tasks.planning.estimate_config import approx_tokens, count_raw_tokens

    row = {"id": "x" * 400, "messages": [{"role": "user", "content": "abcd" * 10}, {"role": "assistant", "content": "efgh" * 5}],
           "metadata": {"note": "ignored " * 100}}
    raw = tmp_path / "raw.jsonl"
    raw.write_text(json.dumps(row) + "\n{broken line\n")
    one = approx_tokens("abcd" * 10 + " " + "efgh" * 5) + 8
    assert count_raw_tokens(raw) == one + approx_tokens("{broken line")
    assert count_raw_tokens(raw, max_length=5) == 5 + approx_tokens("{broken line")
    alpaca = tmp_path / "raw.json"
    alpaca.write_text(json.dumps([{"instruction": "abcd", "input": "", "output": "efgh"}] * 3))
    assert count_raw_tokens(alpaca) == 3 * (approx_tokens("abcd  efgh") + 12)


def test_trl_fused_head_never_builds_the_full_logits():
    plain, fused = _estimate("qlora", 1024, 16), _estimate("qlora", 1024, 16, fused_lm_head=True)
    assert fused.peak_gpu_memory_gib < plain.peak_gpu_memory_gib
    # full logits cost 14.5 B per vocab entry per token; the fused head a bounded tile plus an fp32 hidden gradient
    smol = load_model_config("smollm2-135m-instruct")
    full = estimate_resources(smol, "lora", 8, 2048, 8, True, 0, 1, None, fused_lm_head=False).memory_gib["activations"]
    tiled = estimate_resources(smol, "lora", 8, 2048, 8, True, 0, 1, None).memory_gib["activations"]
    assert full > 4 * tiled
