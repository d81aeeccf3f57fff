"""Packing in the resource estimate: the tokens of a packed micro-batch (a padding-free row), from the data's lengths.

With train.packing on (auto: sft on CUDA) each micro-batch is one row holding about effective_batch_size / micro-batches
examples (tasks/training/packing.py); the training speed is that of a forward pass over the row's tokens, not over
micro_batch_size x max_length. The peak memory stays the padded micro-batch's (a row never exceeds that budget).
"""
from loraflow.schemas.config.train import TrainConfig
from loraflow.tasks.training.packing import PackPlan, plan_packing
from loraflow.tasks.training.speed import resolve_packing


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
