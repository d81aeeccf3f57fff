"""Packing to a token budget that keeps the effective batch: examples per optimizer step stay about
train.effective_batch_size (so the guide's learning-rate and batch ranges keep their meaning), padding-free.

Padded training runs `effective_batch_size` examples per optimizer step in micro-batches of `micro_batch_size` rows of
up to `max_length` tokens: the card is sized for `micro_batch_size x max_length` tokens per forward pass (the budget).
Packed training puts the step's examples (about `effective_batch_size x mean length` tokens) into as few micro-batches
as that budget allows; each micro-batch is one padding-free row (trl's best-fit-decreasing packing, position ids that
restart at every example, varlen flash attention on CUDA that keeps attention inside each example; the loss is the
mean over every trained token of the step either way). So a step holds about the same examples and the same trained
tokens as unpacked, in fewer and fuller forward passes, and the peak memory stays the padded micro-batch's.

The plan is made here, in planning, because the resource estimate needs it too: with train.packing on (auto: sft on
CUDA) the training speed is that of a forward pass over a row's tokens, not over micro_batch_size x max_length; the
peak memory stays the padded micro-batch's (a row never exceeds that budget). Training packs with trl
(tasks/training/packing.py).
"""
import math

from loraflow.schemas.config.train import TrainConfig
from loraflow.schemas.results.training import PackPlan


def plan_packing(lengths: list[int], effective_batch_size: int, micro_batch_size: int, max_length: int,
                 world_size: int = 1) -> PackPlan:
    """Rows and micro-batches per step that keep about effective_batch_size examples per optimizer step.

    The step's tokens (effective_batch_size x the mean example length) are split into the fewest micro-batches of at
    most micro_batch_size x max_length tokens (a multiple of world_size, one row per GPU per micro-batch), each row
    sized to hold its share. A row is never shorter than the longest example (best-fit packing must not cut one; the
    trainer widens a row to the longest tokenized example if these lengths were short of it), so with few, long
    examples a step holds somewhat more than the effective batch.
    """
    clipped = [min(max(1, n), max_length) for n in lengths] or [max_length]
    mean = sum(clipped) / len(clipped)
    step_tokens = effective_batch_size * mean
    budget = micro_batch_size * max_length
    micro_batches = max(1, math.ceil(step_tokens / budget))
    micro_batches = math.ceil(micro_batches / world_size) * world_size
    row = min(budget, max(max(clipped), math.ceil(step_tokens / micro_batches)))
    return PackPlan(row_tokens=int(row), micro_batches=micro_batches, examples_per_row=round(row / mean, 2),
                    mean_tokens=round(mean, 1))


def resolve_packing(train: TrainConfig, cuda: bool) -> bool:
    """train.packing auto: on for supervised training on CUDA (exact: padding-free rows, varlen attention per example).

    Off on the CPU (no varlen kernel: SDPA over a block-diagonal mask of the whole row) and for dpo/orpo (their
    trainers pad chosen/rejected pairs). An explicit true/false is kept.
    """
    if train.packing == "auto":
        return cuda and train.objective == "sft"
    return bool(train.packing)


def packed_plan(train: TrainConfig, device: str, max_length: int, lengths: list[int] | None,
                num_gpus: int = 1) -> tuple[PackPlan | None, str | None]:
    """The packing plan the run would use (None when packing is off or no record lengths are known yet) and a note.

    lengths: the training records' approximate tokens (estimate_config.record_token_lengths), None without a split.
    """
    if not resolve_packing(train, device != "cpu"):
        return None, None
    if not lengths:
        return None, "train.packing on: rows not sized (no train split yet); speed assumes padded micro-batches"
    plan = plan_packing(lengths, train.effective_batch_size, train.micro_batch_size, max_length, num_gpus)
    return plan, (f"train.packing on: {plan.micro_batches} padding-free row(s) of <= {plan.row_tokens} tokens per step "
                  f"(~{plan.examples_per_row:g} examples of ~{plan.mean_tokens:g} tokens each)")
