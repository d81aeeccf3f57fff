"""The `auto` training settings the resource estimate decides: train.unchecked_layers, train.offload_activations and
train.distributed.

Planning owns them so that the estimate (`loraflow estimate`, the estimate-resources step) and training resolve `auto`
by the same rule; training imports them from here (the stage order: planning before training).
"""
from loraflow.schemas.config.lora import LoraConfig
from loraflow.schemas.config.train import TrainConfig
from loraflow.tasks.planning.estimate import estimate_resources
from loraflow.tasks.planning.estimate_context import PLAIN_QLORA_RECIPE
from loraflow.tasks.planning.estimate_shapes import shape_from_config

# train.unchecked_layers auto: the estimated peak stays under this share of the plain QLoRA recipe's at the same shape
# (the estimate is within 10-15% of measured peaks, so the measured peak stays under the plain recipe's).
PLAIN_RECIPE_SHARE = 0.9


def auto_unchecked_layers(train: TrainConfig, lora: LoraConfig, model_config: dict, max_length: int,
                          gpu_memory_gib: float | None) -> int:
    """train.unchecked_layers auto: the most last layers that may keep their activations under checkpointing.

    The estimated peak must stay under PLAIN_RECIPE_SHARE of the plain QLoRA recipe's at the same shape (peft's fp32
    upcast, full logits, paged 8-bit AdamW, dropout 0.05: what loraflow's own savings are measured against) and fit
    the card; the memory loraflow saves is spent on recomputing fewer layers.
    """
    method = train.trained_method

    def peak(**settings):
        return estimate_resources(model_config, method, lora.r, max_length, train.micro_batch_size, True, 0, 1.0,
                                  gpu_memory_gib, target_modules=lora.target_modules, **settings)

    plain = peak(**PLAIN_QLORA_RECIPE)
    budget = PLAIN_RECIPE_SHARE * plain.peak_gpu_memory_gib
    for count in range(shape_from_config(model_config).num_layers, 0, -1):
        estimate = peak(optimizer=train.optimizer, qlora_fp32=train.qlora_fp32, lora_dropout=lora.dropout,
                        unchecked_layers=count)
        if estimate.fits and estimate.peak_gpu_memory_gib <= budget:
            return count
    return 0


def auto_offload_activations(train: TrainConfig, lora: LoraConfig, model_config: dict, max_length: int,
                             gpu_memory_gib: float | None) -> bool:
    """train.offload_activations auto: on when, with gradient checkpointing, the micro-batch does not fit the card
    unless the checkpointed layers' inputs wait in host memory (off without a card to size it for)."""
    if not train.gradient_checkpointing or gpu_memory_gib is None:
        return False
    return not estimate_resources(
        model_config, train.trained_method, lora.r, max_length, train.micro_batch_size, True, 0, 1.0, gpu_memory_gib,
        target_modules=lora.target_modules, optimizer=train.optimizer, qlora_fp32=train.qlora_fp32,
        lora_dropout=lora.dropout, objective=train.objective).fits


def ddp_fits(train: TrainConfig, lora: LoraConfig, model_config: dict, max_length: int, gpu_memory_gib: float) -> bool:
    """Whether DDP (the whole model on every GPU) fits one card: exactly when single-GPU training fits."""
    return estimate_resources(
        model_config, train.method if train.method != "auto" else "lora", lora.r, max_length,
        train.micro_batch_size, train.gradient_checkpointing, 0, 1.0, gpu_memory_gib,
        target_modules=lora.target_modules, optimizer=train.optimizer, qlora_fp32=train.qlora_fp32,
        lora_dropout=lora.dropout).fits


def pick_distributed(requested: str, ddp_fits: bool, nproc: int) -> str:
    """The one rule for train.distributed auto: fsdp on several GPUs when DDP (the whole model per GPU) does not fit."""
    if requested != "auto":
        return requested
    return "fsdp" if nproc > 1 and not ddp_fits else "ddp"
