"""Packing is exact: the same examples packed (padding-free rows, position ids, varlen attention) and padded give the
same per-example loss and the same LoRA gradients. On CUDA in bf16 with loraflow's varlen flash attention; on the CPU
(fp32, SDPA over transformers' packed-sequence mask) as the reference check of the packing semantics."""
import pytest

from loraflow.schemas.config.lora import LoraConfig
from loraflow.schemas.config.train import TrainConfig


def _examples(n: int = 12) -> list[dict]:
    """Prompt/completion turns of uneven lengths (so packed rows hold several examples and padded rows pad)."""
    from loraflow.tasks.training.train import to_prompt_completion

    records = [{"id": f"r{i}", "messages": [
        {"role": "user", "content": f"ticket {i}: " + "my order is late and nobody answers " * (1 + i % 4)},
        {"role": "assistant", "content": '{"category": "billing", "note": "' + "late " * (1 + (i * 7) % 5) + '"}'}]}
        for i in range(n)]
    return to_prompt_completion(records)


def _trainer(model, tokenizer, packing: bool, device: str, tmp_path):
    import datasets

    from loraflow.tasks.training.speed import resolve_speed
    from loraflow.tasks.training.train import build_trainer

    train = TrainConfig(micro_batch_size=4, effective_batch_size=12, max_steps=1, packing=packing, save_steps=100,
                        compile_layers=False, unchecked_layers=0)
    speed = resolve_speed(train, device)
    return build_trainer(model, tokenizer, train, LoraConfig(r=8, alpha=16, dropout=0.0), 256, tmp_path / str(packing),
                         device == "cuda", datasets.Dataset.from_list(_examples()), speed=speed)


def _per_example(model, batch) -> tuple[dict, "object", int]:
    """{input token ids: (loss sum, trained tokens)} of each example in the batch, the summed loss and its token count."""
    import torch

    batch = {k: v.to(model.device) if hasattr(v, "to") else v for k, v in batch.items()}
    logits = model(**{k: v for k, v in batch.items() if k != "labels"}, use_cache=False).logits.float()
    labels = torch.nn.functional.pad(batch["labels"], (0, 1), value=-100)[:, 1:]  # next-token targets
    token_loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100, reduction="none")
    found = {}
    if "position_ids" in batch and "attention_mask" not in batch:  # one padding-free row: split at position 0
        ids, pos = batch["input_ids"][0], batch["position_ids"][0]
        starts = (pos == 0).nonzero().flatten().tolist() + [len(pos)]
        spans = [(0, a, b) for a, b in zip(starts, starts[1:]) if b > a]
    else:
        ids = None
        spans = [(r, 0, int(batch["attention_mask"][r].sum())) for r in range(batch["input_ids"].shape[0])]
    for row, a, b in spans:
        tokens = (batch["input_ids"][row] if ids is None else ids)[a:b]
        trained = labels[row, a:b] != -100
        if trained.any():
            # the packed row's last target of an example is the next example's first token, masked by the collator
            found[tuple(tokens.tolist())] = (token_loss[row, a:b][trained].sum(), int(trained.sum()))
    return found, sum(v[0] for v in found.values()), sum(v[1] for v in found.values())


def _compare(tiny_model_path, tmp_path, device: str, loss_tol: float, grad_tol: float):
    import torch
    from transformers import AutoTokenizer

    from loraflow.tasks.training.speed import resolve_speed
    from loraflow.tasks.training.train import load_model

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_path)
    attn = resolve_speed(TrainConfig(packing=True), device).attn_implementation
    model = load_model(str(tiny_model_path), "lora", device, device == "cuda", False, attn_implementation=attn)
    packed = _trainer(model, tokenizer, True, device, tmp_path)
    peft_model = packed.model
    with torch.no_grad():  # LoRA B starts at zero: give it values so the adapter changes the loss
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.02)
    padded = _trainer(peft_model, tokenizer, False, device, tmp_path)
    assert packed.args.per_device_train_batch_size == 1 and packed.args.gradient_accumulation_steps == packed.pack_plan.micro_batches

    results = {}
    for name, trainer in (("packed", packed), ("padded", padded)):
        rows = [trainer.train_dataset[i] for i in range(len(trainer.train_dataset))]
        size = 1 if name == "packed" else 4
        batches = [trainer.data_collator(rows[i:i + size]) for i in range(0, len(rows), size)]
        if name == "packed":
            assert all(b["input_ids"].shape[0] == 1 and "attention_mask" not in b for b in batches)
            assert max(int((b["position_ids"] == 0).sum()) for b in batches) >= 3  # several examples in a row
        peft_model.zero_grad()
        per_example, total_loss, total_tokens = {}, 0.0, 0
        for batch in batches:
            found, loss_sum, tokens = _per_example(peft_model, batch)
            per_example.update(found)
            total_loss, total_tokens = total_loss + loss_sum, total_tokens + tokens
        (total_loss / total_tokens).backward()
        grads = {n: p.grad.detach().float().clone() for n, p in peft_model.named_parameters() if p.grad is not None}
        results[name] = ({k: float(v[0] / v[1]) for k, v in per_example.items()}, grads)

    losses_packed, grads_packed = results["packed"]
    losses_padded, grads_padded = results["padded"]
    assert len(losses_packed) == len(_examples()) and set(losses_packed) == set(losses_padded)
    worst = max(abs(losses_packed[k] - losses_padded[k]) / abs(losses_padded[k]) for k in losses_padded)
    assert worst < loss_tol, f"per-example loss differs by {worst:.2e} (relative)"
    assert set(grads_packed) == set(grads_padded) and grads_packed
    num = sum(float((grads_packed[n] - grads_padded[n]).norm() ** 2) for n in grads_padded) ** 0.5
    den = sum(float(grads_padded[n].norm() ** 2) for n in grads_padded) ** 0.5
    assert den > 0 and num / den < grad_tol, f"LoRA gradients differ by {num / den:.2e} (relative norm)"
    return worst, num / den


def test_packed_and_padded_examples_give_the_same_loss_and_gradients_on_the_cpu(tiny_model_path, tmp_path):
    _compare(tiny_model_path, tmp_path, "cpu", 1e-4, 1e-4)


@pytest.mark.gpu
def test_packed_and_padded_examples_give_the_same_loss_and_gradients_on_cuda(tiny_model_path, tmp_path):
    """bf16 weights and activations: per-example losses within 2% and gradients within 5% (relative norm)."""
    worst, grad = _compare(tiny_model_path, tmp_path, "cuda", 2e-2, 5e-2)
    print(f"packed vs padded on CUDA: per-example loss {worst:.2e}, LoRA gradient {grad:.2e} (relative)")
