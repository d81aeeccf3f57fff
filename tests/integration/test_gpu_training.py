"""Training on CUDA with the tiny model: QLoRA (NF4), bf16 LoRA, full, padding-free varlen attention, OOM fallback, DDP."""
import json

import pytest

from loraflow.schemas.config.lora import LoraConfig
from loraflow.schemas.config.train import TrainConfig
from loraflow.schemas.results.training import TrainingPhase, TrainingResult
from loraflow.tasks.common.jsonl import write_jsonl

pytestmark = pytest.mark.gpu


def _records(n: int = 48) -> list[dict]:
    """Short, learnable question/answer records (the answer is always the same JSON)."""
    return [{"id": f"r{i}", "messages": [{"role": "user", "content": f"ticket {i}: my order is late"},
                                          {"role": "assistant", "content": '{"category": "billing"}'}],
             "metadata": {}} for i in range(n)]


@pytest.fixture()
def data(tmp_path):
    path = tmp_path / "train.jsonl"
    write_jsonl(path, _records())
    return str(path)


def _train(tiny_model_path, data, tmp_path, **overrides) -> TrainingResult:
    from loraflow.tasks.training.train import train_model

    settings = {"epochs": 50, "max_steps": 25, "micro_batch_size": 8, "effective_batch_size": 8, "learning_rate": 2e-3,
                "logging_steps": 1, "warmup_ratio": 0.0, "save_steps": 1000, "num_gpus": 1, **overrides}
    return train_model(str(tiny_model_path), data, None, LoraConfig(r=8, alpha=16), TrainConfig(**settings), 128,
                       str(tmp_path / "run"))


def _losses(result: TrainingResult | TrainingPhase) -> list[float]:
    history = json.loads(open(result.log_history).read())
    return [h["loss"] for h in history if "loss" in h]


def _falls(losses: list[float]) -> bool:
    """The last logged losses clearly below the first ones (the tiny random model learns slowly: ~6.15 -> ~5.3)."""
    return sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.3


def test_qlora_loads_nf4_with_fp32_norms_on_cuda(tiny_model_path):
    import torch
    from bitsandbytes.nn import Linear4bit

    from loraflow.tasks.training.train import load_model

    model = load_model(str(tiny_model_path), "qlora", "cuda", True, True, qlora_fp32="norms")
    layer = model.model.layers[0]
    assert isinstance(layer.self_attn.q_proj, Linear4bit)
    assert layer.self_attn.q_proj.weight.quant_state.quant_type == "nf4"
    assert layer.self_attn.q_proj.weight.quant_state.nested  # double quantisation
    assert layer.input_layernorm.weight.dtype == torch.float32
    assert model.get_input_embeddings().weight.dtype == torch.bfloat16
    assert next(model.parameters()).device.type == "cuda"


def test_qlora_trains_on_cuda_with_compiled_layers_and_loss_falls(tiny_model_path, data, tmp_path):
    result = _train(tiny_model_path, data, tmp_path, method="qlora", gradient_checkpointing=True, qlora_fp32="norms")
    losses = _losses(result)
    assert result.method == "qlora" and result.speed.compile_layers is True
    assert _falls(losses), losses
    assert (tmp_path / "run" / "model" / "adapter" / "adapter_model.safetensors").is_file()


def test_bf16_lora_trains_on_cuda_and_loss_falls(tiny_model_path, data, tmp_path):
    result = _train(tiny_model_path, data, tmp_path, method="lora")
    losses = _losses(result)
    assert _falls(losses), losses


def test_full_fine_tuning_on_cuda_and_loss_falls(tiny_model_path, data, tmp_path):
    result = _train(tiny_model_path, data, tmp_path, method="full", learning_rate=1e-3, compile_layers=False)
    losses = _losses(result)
    assert result.adapter_path is None and (tmp_path / "run" / "model" / "full").is_dir()
    assert _falls(losses), losses


def test_packed_training_uses_varlen_attention_and_loss_falls(tiny_model_path, data, tmp_path):
    result = _train(tiny_model_path, data, tmp_path, method="qlora", max_steps=15)  # train.packing auto: on with CUDA
    assert result.speed.attn_implementation == "loraflow_varlen" and result.speed.packing is True
    # one row per step of about the effective batch (8 short examples), inside the 8 x 128 token budget
    assert result.packing.micro_batches == 1 and result.packing.row_tokens <= 8 * 128
    losses = _losses(result)
    assert _falls(losses), losses


def test_varlen_attention_matches_sdpa_with_a_packed_mask(tiny_model_path):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from loraflow.tasks.training.speed import VARLEN_ATTENTION, register_varlen_attention

    assert register_varlen_attention()
    lengths = [5, 11, 16]
    vocab = AutoConfig.from_pretrained(str(tiny_model_path)).vocab_size  # the tiny tokenizer's vocabulary is small
    ids = torch.randint(3, vocab, (1, sum(lengths)), device="cuda")
    positions = torch.cat([torch.arange(n) for n in lengths])[None].cuda()
    cu = torch.tensor([0, 5, 16, 32], dtype=torch.int32, device="cuda")
    outputs = {}
    for attn in ("sdpa", VARLEN_ATTENTION):
        model = AutoModelForCausalLM.from_pretrained(str(tiny_model_path), dtype=torch.bfloat16, device_map={"": "cuda"},
                                                     attn_implementation=attn)
        with torch.no_grad():
            outputs[attn] = model(input_ids=ids, position_ids=positions, cu_seq_lens_q=cu, cu_seq_lens_k=cu,
                                  max_length_q=16, max_length_k=16, use_cache=False).logits.float()
    ref, got = outputs["sdpa"], outputs[VARLEN_ATTENTION]
    assert ((got - ref).norm() / ref.norm()) < 2e-2


def test_cuda_oom_halves_the_micro_batch_and_keeps_the_effective_batch():
    import torch

    from loraflow.tasks.training.oom import run_with_oom_fallback

    calls, events = [], []

    def attempt(micro_batch: int, accumulation: int):
        calls.append((micro_batch, accumulation))
        if micro_batch > 2:  # a real CUDA allocation far beyond the card
            torch.empty(micro_batch * 2**40, dtype=torch.uint8, device="cuda")
        return micro_batch * accumulation

    assert run_with_oom_fallback(attempt, 8, 2, on_fallback=events.append) == 16
    assert calls == [(8, 2), (4, 4), (2, 8)]
    assert [e.micro_batch for e in events] == [4, 2] and "out of memory" in events[0].error.lower()


def test_ddp_on_two_gpus_trains_through_torchrun(tiny_model_path, data, tmp_path):
    import torch

    if torch.cuda.device_count() < 2:
        pytest.skip("needs two GPUs")
    result = _train(tiny_model_path, data, tmp_path, method="qlora", max_steps=10, effective_batch_size=16,
                    num_gpus=2)
    assert result.world_size == 2
    assert (tmp_path / "run" / "model" / "adapter" / "adapter_model.safetensors").is_file()
    assert _losses(result)[-1] < _losses(result)[0]


def _llama_config(hidden: int, intermediate: int, layers: int, heads: int, kv_heads: int) -> dict:
    from transformers import LlamaConfig

    return LlamaConfig(hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
                       num_attention_heads=heads, num_key_value_heads=kv_heads, vocab_size=32000).to_dict()


def test_method_auto_picks_by_the_detected_card():
    """On the detected GPU: a 7B model fits as bf16 LoRA (picked), a 70B one does not (QLoRA picked)."""
    from loraflow.tasks.planning.estimate import estimate_resources
    from loraflow.tasks.common.device import detect_device

    device, memory = detect_device()
    assert device != "cpu" and memory > 40
    common = dict(lora_r=16, seq_len=1024, micro_batch=4, grad_checkpointing=True, n_train_tokens=10**6, epochs=1,
                  gpu_memory_gib=memory, device=device)
    small = estimate_resources(_llama_config(4096, 11008, 32, 32, 32), "auto", **common)
    large = estimate_resources(_llama_config(8192, 28672, 80, 64, 8), "auto", **common)
    assert small.method == "lora" and small.fits, small.notes
    assert large.method == "qlora", large.notes
    assert any("method auto -> qlora" in note for note in large.notes)


def test_qlora_defaults_train_all_bf16_with_auto_unchecked_layers_and_loss_falls(tiny_model_path, data, tmp_path):
    result = _train(tiny_model_path, data, tmp_path, method="qlora", gradient_checkpointing=True)
    assert _falls(_losses(result)), _losses(result)
    import torch
    from transformers import AutoConfig

    from loraflow.tasks.planning.auto_settings import auto_unchecked_layers

    train = TrainConfig(method="qlora", micro_batch_size=8, effective_batch_size=8, gradient_checkpointing=True)
    card_gib = torch.cuda.get_device_properties(0).total_memory / 1024**3
    expected = auto_unchecked_layers(train, LoraConfig(r=8, alpha=16),
                                     AutoConfig.from_pretrained(tiny_model_path).to_dict(), 128, card_gib)
    # the tiny model's fixed buffers are the plain recipe's too: nothing saved to spend, so auto keeps 0 here
    assert result.speed.unchecked_layers == expected


def _pairs(n: int = 32) -> list[dict]:
    """Preference records: the chosen answer in `messages`, the wrong category in `rejected`."""
    return [{"id": f"p{i}", "metadata": {}, "rejected": '{"category": "refund"}',
             "messages": [{"role": "user", "content": f"ticket {i}: my order is late, no refund please"},
                          {"role": "assistant", "content": '{"category": "shipping"}'}]} for i in range(n)]


def test_qlora_sft_then_dpo_on_cuda_raises_the_margin_with_the_adapter_as_its_own_reference(tiny_model_path,
                                                                                           tmp_path):
    """Issue 15, item 3 on the GPU: the 4-bit base, supervised then DPO; the reference is the adapter switched off."""
    train = tmp_path / "pairs.jsonl"
    write_jsonl(train, _pairs())
    result = _train(tiny_model_path, str(train), tmp_path, method="qlora", gradient_checkpointing=True,
                    objective="sft_then_dpo", max_steps=12, learning_rate=5e-3, early_stopping_patience=0)
    assert result.objective == "sft_then_dpo" and result.method == "qlora"
    sft_losses = _losses(result.sft_phase)
    assert sft_losses[-1] < sft_losses[0], sft_losses
    history = json.loads(open(result.log_history).read())
    margins = [h["rewards/margins"] for h in history if "rewards/margins" in h]
    assert len(margins) >= 6 and margins[-1] > margins[0] and margins[-1] > 0, margins
    assert (tmp_path / "run" / "model" / "adapter" / "adapter_model.safetensors").is_file()
