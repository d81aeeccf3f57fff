"""Packing to a token budget that keeps the effective batch: examples per optimizer step stay about
train.effective_batch_size (so the guide's learning-rate and batch ranges keep their meaning), padding-free.

Padded training runs `effective_batch_size` examples per optimizer step in micro-batches of `micro_batch_size` rows of
up to `max_length` tokens: the card is sized for `micro_batch_size x max_length` tokens per forward pass (the budget).
Packed training puts the step's examples (about `effective_batch_size x mean length` tokens) into as few micro-batches
as that budget allows; each micro-batch is one padding-free row (trl's best-fit-decreasing packing, position ids that
restart at every example, varlen flash attention on CUDA that keeps attention inside each example; the loss is the
mean over every trained token of the step either way). So a step holds about the same examples and the same trained
tokens as unpacked, in fewer and fuller forward passes, and the peak memory stays the padded micro-batch's.
"""
import copy
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class PackPlan:
    """How examples are packed: rows of at most `row_tokens` tokens, `micro_batches` rows per optimizer step (all GPUs)."""

    row_tokens: int
    micro_batches: int
    examples_per_row: float
    mean_tokens: float

    def to_dict(self) -> dict:
        """Plain dict for logs and results."""
        return dict(self.__dict__)


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


def example_token_lengths(dataset, tokenizer) -> list[int]:
    """Token count of every training example: its input_ids, or prompt + completion through the chat template."""
    columns = dataset.column_names
    if "input_ids" in columns:
        return [len(ids) for ids in dataset["input_ids"]]
    if "prompt" in columns and "completion" in columns:
        texts = [tokenizer.apply_chat_template(p + c, tokenize=False) for p, c in zip(dataset["prompt"], dataset["completion"], strict=True)]
    elif "messages" in columns:
        texts = [tokenizer.apply_chat_template(m, tokenize=False) for m in dataset["messages"]]
    else:
        texts = list(dataset["text"])
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def budget_packing_trainer(trainer_class, example_max_length: int):
    """`trainer_class` whose packed datasets are cut to example_max_length per example before packing into rows.

    trl packs to rows of args.max_length and truncates only what overflows a row; here a row (the token budget) may be
    longer or shorter than model.max_length, so each example is first truncated to model.max_length, as unpacked
    training does, and a row is widened to the longest example where the planned row is shorter.
    """

    class BudgetPackingTrainer(trainer_class):
        def _prepare_dataset(self, dataset, processing_class, args, packing, formatting_func, dataset_name):
            if not packing or args.max_length is None:
                return super()._prepare_dataset(dataset, processing_class, args, packing, formatting_func, dataset_name)
            from trl.data_utils import pack_dataset

            per_example = copy.copy(args)
            per_example.max_length = example_max_length
            prepared = super()._prepare_dataset(dataset, processing_class, per_example, False, formatting_func, dataset_name)
            longest = max((len(ids) for ids in prepared["input_ids"]), default=0)
            row = max(args.max_length, longest)  # best-fit packing cuts what overflows a row: no example may
            return pack_dataset(prepared.select_columns(["input_ids", "labels"]), row, args.packing_strategy, {})

    BudgetPackingTrainer.__name__ = BudgetPackingTrainer.__qualname__ = f"BudgetPacking{trainer_class.__name__}"
    return BudgetPackingTrainer
