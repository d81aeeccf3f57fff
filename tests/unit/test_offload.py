"""Offloaded gradient checkpointing (train.offload_activations) on the CPU: the same loss and LoRA gradients as plain
checkpointing, eager and compiled; only checkpointed layers offload, exactly their inputs; training runs through
train_model with QLoRA. (On the CPU the copy frees nothing; the GPU test is tests/integration/test_gpu_long_context.py.)"""
import functools
import json

import pytest
import torch
from torch.utils.checkpoint import checkpoint

from loraflow.schemas.config import LoraConfig, TrainConfig
from loraflow.tasks.common.jsonl import write_jsonl
from loraflow.tasks.training.offload import MARK, offload_checkpointed_inputs, offloaded_bytes
from loraflow.tasks.training.speed import compile_decoder_layers, decoder_layers, keep_activations_of_last_layers

HIDDEN, LAYERS, TOKENS = 64, 3, 2 * 24  # batch 2 x 24 tokens


def _lora_model():
    """A seeded 3-layer random Llama with LoRA on every projection, checkpointing on (non-reentrant, as Trainer sets)."""
    import torch
    from peft import LoraConfig as PeftLora, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=HIDDEN, intermediate_size=128, num_hidden_layers=LAYERS, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=256, tie_word_embeddings=False)
    model = get_peft_model(LlamaForCausalLM(config), PeftLora(r=4, lora_alpha=8, target_modules="all-linear",
                                                               init_lora_weights=False))  # non-zero B: real gradients
    model.train()
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model


def _loss_and_grads(model) -> tuple[float, dict]:
    import torch

    ids = torch.randint(0, 256, (2, TOKENS // 2), generator=torch.Generator().manual_seed(1))
    loss = model(input_ids=ids, labels=ids, use_cache=False).loss
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad(set_to_none=True)
    return float(loss), grads


def _assert_same(reference: tuple[float, dict], got: tuple[float, dict]) -> None:
    import torch

    assert got[0] == pytest.approx(reference[0], rel=1e-6)
    assert set(got[1]) == set(reference[1]) and len(got[1]) == LAYERS * 7 * 2
    for name, grad in reference[1].items():
        assert grad.abs().sum() > 0, name
        torch.testing.assert_close(got[1][name], grad, rtol=1e-5, atol=1e-7, msg=name)


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_offloaded_checkpointing_gives_the_same_loss_and_lora_gradients(compiled):
    model = _lora_model()
    layers = decoder_layers(model)
    if compiled:
        assert compile_decoder_layers(model) == LAYERS
    reference = _loss_and_grads(model)
    assert offload_checkpointed_inputs(layers) == LAYERS
    assert offload_checkpointed_inputs(layers) == 0  # idempotent
    assert {type(layer).__name__ for layer in layers} == {"LlamaDecoderLayer"}  # the subclass keeps the name
    if compiled:  # the compiled call runs inside the offloading __call__
        assert all(layer._compiled_call_impl is not None for layer in layers)
    _assert_same(reference, _loss_and_grads(model))
    # exactly each checkpointed layer's fp32 input went to host memory, once per forward
    assert offloaded_bytes(layers) == LAYERS * TOKENS * HIDDEN * 4


def test_only_checkpointed_layers_offload_and_nothing_offloads_without_gradients():
    import torch

    model = _lora_model()
    layers = decoder_layers(model)
    reference = _loss_and_grads(model)
    offload_checkpointed_inputs(layers)
    assert keep_activations_of_last_layers(model, 1) == 1  # train.unchecked_layers=1
    _assert_same(reference, _loss_and_grads(model))
    assert offloaded_bytes(layers) == (LAYERS - 1) * TOKENS * HIDDEN * 4
    before = offloaded_bytes(layers)
    with torch.no_grad():
        model(input_ids=torch.ones(1, 8, dtype=torch.long), use_cache=False)
    model.eval()
    model(input_ids=torch.ones(1, 8, dtype=torch.long), use_cache=False).logits.sum().backward()
    assert offloaded_bytes(layers) == before


def test_a_deep_copy_of_a_layer_keeps_offloading_with_a_counter_of_its_own():
    import copy

    model = _lora_model()
    layer = decoder_layers(model)[0]
    offload_checkpointed_inputs([layer])
    twin = copy.deepcopy(layer)
    assert type(twin) is type(layer) and getattr(twin, MARK) is not getattr(layer, MARK)
    assert offload_checkpointed_inputs([twin]) == 0


class _Block(torch.nn.Module):
    """A layer whose forward saves several tensors bigger than its input (as an MLP's do)."""

    gradient_checkpointing = True

    def __init__(self):
        super().__init__()
        self.up, self.down = torch.nn.Linear(16, 64), torch.nn.Linear(64, 16)

    def forward(self, x):
        return x + self.down(torch.relu(self.up(x)))


class _CheckpointsInCall(_Block):
    """transformers <= 5.17's GradientCheckpointingLayer: the checkpoint wraps __call__."""

    def __call__(self, *args, **kwargs):
        if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(functools.partial(super().__call__, **kwargs), *args, use_reentrant=False)
        return super().__call__(*args, **kwargs)


class _CheckpointsInForward(_Block):
    """transformers >= 5.25's: the checkpoint wraps forward (inside nn.Module's call and a compiled layer's graph)."""

    def forward(self, x):
        if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(super().forward, x, use_reentrant=False)
        return super().forward(x)


@pytest.mark.parametrize("layer_class", [_CheckpointsInCall, _CheckpointsInForward], ids=["tf-5.17", "tf-5.25"])
def test_only_the_checkpointed_input_is_offloaded_wherever_transformers_puts_the_checkpoint(layer_class):
    """A hook entered inside the checkpoint would override the checkpoint's own and copy every tensor the layer
    saves (here 4x the input): the offloading call sits outside it in both transformers layouts."""
    torch.manual_seed(0)
    layers = [layer_class(), layer_class()]
    x = torch.randn(8, 16, requires_grad=True)

    def grads():
        out = layers[1](layers[0](x))
        out.square().sum().backward()
        found = [x.grad.clone(), *(p.grad.clone() for layer in layers for p in layer.parameters())]
        x.grad = None
        for layer in layers:
            layer.zero_grad(set_to_none=True)
        return found

    reference = grads()
    assert offload_checkpointed_inputs(layers) == 2
    for got, want in zip(grads(), reference):
        torch.testing.assert_close(got, want)
    assert offloaded_bytes(layers) == 2 * x.numel() * 4


def test_qlora_trains_through_train_model_with_offloading_and_its_loss_falls(tiny_model_path, tmp_path, monkeypatch):
    from loraflow.tasks.training import offload

    wrapped: list = []
    install = offload.offload_checkpointed_inputs
    monkeypatch.setattr(offload, "offload_checkpointed_inputs", lambda layers: install(wrapped.extend(layers) or layers))
    records = [{"id": f"r{i}", "metadata": {}, "messages": [
        {"role": "user", "content": f"ticket {i}: my CloudDrive invoice is wrong"},
        {"role": "assistant", "content": json.dumps({"category": "billing"})}]} for i in range(16)]
    write_jsonl(tmp_path / "train.jsonl", records)
    config = TrainConfig(method="qlora", learning_rate=2e-3, max_steps=12, effective_batch_size=4, micro_batch_size=4,
                         logging_steps=1, warmup_ratio=0.0, save_steps=1000, gradient_checkpointing=True,
                         offload_activations=True)
    from loraflow.tasks.training.train import train_model

    result = train_model(str(tiny_model_path), str(tmp_path / "train.jsonl"), None, LoraConfig(r=8), config, 64,
                         str(tmp_path / "run"))
    assert result.speed.offload_activations is True and result.speed.unchecked_layers == 0
    assert len(wrapped) == 2 and offloaded_bytes(wrapped) > 0  # build_trainer wrapped both layers; training offloaded
    losses = [h["loss"] for h in json.loads(open(result.log_history).read()) if "loss" in h]
    assert len(losses) == 12 and sum(losses[-3:]) / 3 < sum(losses[:3]) / 3


def test_offloading_needs_checkpointing_is_auto_off_on_the_cpu_and_under_fsdp():
    from loraflow.tasks.training.distributed import fsdp_training_settings
    from loraflow.tasks.training.speed import resolve_speed

    with pytest.raises(ValueError, match="train.gradient_checkpointing=true"):
        TrainConfig(offload_activations=True)
    assert TrainConfig(offload_activations="auto").offload_activations == "auto"  # auto is fine without checkpointing
    tiny = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 256}
    checked = TrainConfig(gradient_checkpointing=True)
    assert resolve_speed(checked, "cpu", tiny, 4096).offload_activations is False  # auto: no card on the CPU
    assert resolve_speed(checked.model_copy(update={"offload_activations": True}), "cpu").offload_activations is True
    assert fsdp_training_settings(checked.model_copy(update={"offload_activations": True})).offload_activations is False
