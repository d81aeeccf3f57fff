"""The Trainer arguments every objective shares (SFT, DPO, ORPO), mapped from our TrainConfig and the speed plan."""
import math
from pathlib import Path

from loraflow.schemas.config.train import TrainConfig
from loraflow.schemas.results.training import PackPlan, SpeedPlan
from loraflow.tasks.common.device import device as current_device
from loraflow.tasks.training.distributed import fsdp_arguments
from loraflow.tasks.training.speed import resolve_speed

VAL_POINTS = 5  # validation-loss evaluations over a run when train.eval_steps is not set


def trainer_arguments(train: TrainConfig, output_dir: Path, bf16: bool, n_train: int, has_val: bool, speed: SpeedPlan,
                      world_size: int = 1) -> dict:
    """The TrainingArguments every objective shares (SFT, DPO, ORPO), from our TrainConfig and the speed plan."""
    steps_per_epoch = max(1, -(-n_train // train.effective_batch_size))
    # Under DDP every GPU runs its own micro-batches: divide accumulation so the effective batch stays the same.
    accumulation = max(1, train.gradient_accumulation_steps // world_size)
    total_steps = train.max_steps if train.max_steps > 0 else math.ceil(steps_per_epoch * train.epochs)
    # trl refuses checkpoints between evaluations (the best one is picked at evaluations): save_steps alone sets both.
    # Otherwise validation loss at about VAL_POINTS points of the run (not once per epoch): a curve, for diagnosis.
    eval_steps = train.eval_steps or train.save_steps or max(1, math.ceil(total_steps / VAL_POINTS))
    strategy = "steps" if has_val else "no"
    return dict(
        output_dir=str(output_dir),
        per_device_train_batch_size=train.micro_batch_size,
        per_device_eval_batch_size=train.micro_batch_size,
        gradient_accumulation_steps=accumulation,
        learning_rate=train.resolved_learning_rate,
        num_train_epochs=train.epochs,
        max_steps=train.max_steps,
        warmup_steps=train.warmup_ratio,  # a float below 1 is a ratio of the total steps
        weight_decay=train.weight_decay,
        lr_scheduler_type=train.lr_scheduler,
        max_grad_norm=train.max_grad_norm,
        optim=speed.optimizer,
        logging_nan_inf_filter=False,  # a NaN loss must show in the log history, not be averaged away
        logging_steps=train.logging_steps,
        logging_first_step=True,
        eval_strategy=strategy,
        eval_steps=eval_steps,
        save_strategy=strategy if has_val else "steps",
        save_steps=train.save_steps or eval_steps,
        save_total_limit=2,
        load_best_model_at_end=has_val,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        gradient_checkpointing=train.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False},
        bf16=bf16,
        ddp_find_unused_parameters=False if world_size > 1 else None,
        ddp_broadcast_buffers=False if world_size > 1 else None,  # rotary tables are constants: no per-forward broadcast
        seed=train.seed,
        report_to=["tensorboard"],
        dataloader_num_workers=0,
        use_cpu=not current_device() == "cuda",
        **fsdp_arguments(train, world_size),
    )


def build_sft_config(train: TrainConfig, max_length: int, output_dir: Path, bf16: bool, n_train: int, has_val: bool,
                     speed: SpeedPlan | None = None, world_size: int = 1, pack: PackPlan | None = None):
    """Map our TrainConfig (and the resolved speed options) onto trl's SFTConfig.

    pack (tasks/planning/estimate_packing.py): with packing, one padding-free row of pack.row_tokens per micro-batch and
    pack.micro_batches rows per optimizer step over all GPUs (about train.effective_batch_size examples); without a
    plan, packing fills micro_batch_size rows of max_length.
    """
    from trl import SFTConfig

    speed = speed or resolve_speed(train, "cuda" if current_device() == "cuda" else "cpu")
    arguments = trainer_arguments(train, output_dir, bf16, n_train, has_val, speed, world_size)
    if speed.packing and pack is not None:
        arguments.update(per_device_train_batch_size=1, per_device_eval_batch_size=1,
                         gradient_accumulation_steps=max(1, pack.micro_batches // world_size))
        max_length = pack.row_tokens  # the row; examples are cut at model.max_length before packing (packing.py)
    return SFTConfig(
        **arguments,
        max_length=max_length,
        packing=speed.packing,  # bfd packing: padding-free rows with position_ids
        pad_to_multiple_of=speed.pad_to_multiple_of,
        use_liger_kernel=speed.liger,
    )
