"""Held-out preference accuracy: does the model give the chosen answer a higher log-probability than the rejected one."""
from loraflow.schemas.preferences import is_pair, rejected_messages
from loraflow.schemas.results import PreferenceAccuracy
from loraflow.tasks.common.jsonl import read_jsonl


def _answer_logprob(model, tokenizer, messages: list[dict]) -> float:
    """Sum of the log-probabilities of the last (assistant) turn's tokens given the turns before it."""
    import torch

    prompt = tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    ids = tokenizer(full, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids], device=model.device)).logits[0, :-1].float()
    logprobs = torch.log_softmax(logits, dim=-1)
    targets = torch.tensor(ids[1:], device=logits.device)
    token_logprobs = logprobs.gather(1, targets[:, None])[:, 0]
    return float(token_logprobs[len(prompt_ids) - 1:].sum())


def pair_margins(model, tokenizer, records: list[dict]) -> list[float]:
    """log p(chosen) - log p(rejected) per pair under the model as it is (adapter on, if it has one)."""
    return [_answer_logprob(model, tokenizer, r["messages"]) - _answer_logprob(model, tokenizer, rejected_messages(r))
            for r in records]


def _accuracy(margins: list[float]) -> float:
    return sum(m > 0 for m in margins) / len(margins) if margins else 0.0


def score_pairs(model_path: str, adapter_path: str | None, test_path: str, limit: int | None = None) -> dict | None:
    """Preference accuracy and mean margin of one model on the test split's pairs; None when it holds no pairs.

    With an adapter the same pairs are also scored with the adapter disabled (the frozen base: DPO's reference), giving
    the accuracy of the implicit reward, i.e. whether training moved chosen above rejected relative to the reference.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    records = [r for r in read_jsonl(test_path) if is_pair(r)][:limit]
    if not records:
        return None
    tokenizer = AutoTokenizer.from_pretrained(adapter_path or model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    if adapter_path:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter_path)
    model.eval()
    margins = pair_margins(model, tokenizer, records)
    result = {"n": len(records), "accuracy": _accuracy(margins), "mean_margin": sum(margins) / len(margins),
              "margins": {r["id"]: round(m, 4) for r, m in zip(records, margins)}}
    if adapter_path:
        with model.disable_adapter():
            reference = pair_margins(model, tokenizer, records)
        rewards = [m - ref for m, ref in zip(margins, reference)]
        result.update({"reference_accuracy": _accuracy(reference), "accuracy_vs_reference": _accuracy(rewards)})
    return result


def preference_summary(scores: dict[str, dict | None]) -> PreferenceAccuracy:
    """Each scored label's accuracy on the pairs, plus MLflow metrics."""
    scored = {label: s for label, s in scores.items() if s}
    metrics = {f"{label}.preference_accuracy": s["accuracy"] for label, s in scored.items()}
    metrics.update({f"{label}.preference_accuracy_vs_reference": s["accuracy_vs_reference"]
                    for label, s in scored.items() if "accuracy_vs_reference" in s})
    return PreferenceAccuracy(n=max((s["n"] for s in scored.values()), default=0),
                              accuracy={label: s["accuracy"] for label, s in scored.items()}, mlflow_metrics=metrics)
