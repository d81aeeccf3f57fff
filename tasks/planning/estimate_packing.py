"""Packing in the resource estimate: the tokens of a packed micro-batch (a padding-free row), from the data's lengths.

With train.packing on (auto: sft on CUDA) each micro-batch is one row holding about effective_batch_size / micro-batches
examples (tasks/training/packing.py); the training speed is that of a forward pass over the row's tokens, not over
micro_batch_size x max_length. The peak memory stays the padded micro-batch's (a row never exceeds that budget).
"""
from pathlib import Path

from loraflow.schemas.config.train import TrainConfig
from loraflow.tasks.common.jsonl import iter_jsonl
from loraflow.tasks.training.packing import PackPlan, plan_packing
from loraflow.tasks.training.speed import resolve_packing


def record_token_lengths(path: str | Path, max_length: int) -> list[int]:
    """Approximate tokens of each record of a canonical JSONL file (as count_record_tokens counts them), cut at max_length."""
    from loraflow.tasks.planning.lengths import approx_tokens

    lengths = []
    for record in iter_jsonl(path):
        messages = record.get("messages", [])
        lengths.append(min(max_length, approx_tokens(" ".join(m.get("content", "") for m in messages)) + 4 * len(messages)))
    return lengths


def packed_plan(train: TrainConfig, device: str, max_length: int, train_jsonl: str | Path | None,
                num_gpus: int = 1) -> tuple[PackPlan | None, str | None]:
    """The packing plan the run would use (None when packing is off or the split is not there yet) and a note."""
    if not resolve_packing(train, device != "cpu"):
        return None, None
    if not train_jsonl or not Path(train_jsonl).is_file():
        return None, "train.packing on: rows not sized (no train split yet); speed assumes padded micro-batches"
    plan = plan_packing(record_token_lengths(train_jsonl, max_length), train.effective_batch_size,
                        train.micro_batch_size, max_length, num_gpus)
    return plan, (f"train.packing on: {plan.micro_batches} padding-free row(s) of <= {plan.row_tokens} tokens per step "
                  f"(~{plan.examples_per_row:g} examples of ~{plan.mean_tokens:g} tokens each)")
