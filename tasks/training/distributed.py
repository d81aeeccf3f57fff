"""How training spreads over several GPUs: DDP (a copy per GPU) or FSDP + QLoRA/LoRA (sharded), and `auto`'s choice.

FSDP runs through the engines that already exist: torchrun starts one process per GPU (tasks/training/launch.py) and the
transformers Trainer hands `fsdp`/`fsdp_config` to accelerate, whose FSDP2 plugin shards the model. The settings are
the FSDP + QLoRA recipe's (Answer.AI / bitsandbytes / PEFT docs) in FSDP2 terms, FSDP2 being the only FSDP that
transformers >= 5.20 drives:

- 4-bit weights stored as bf16 (`bnb_4bit_quant_storage`), every other weight bf16 too (`train.qlora_fp32: none`),
  so each wrapped unit is sharded in one dtype; no `device_map` (each rank loads on its own GPU, FSDP places shards);
- FULL_SHARD = `reshard_after_forward: true`; transformer-layer auto-wrap (`TRANSFORMER_BASED_WRAP`: the model's
  `_no_split_modules`, its decoder layer);
- `use_orig_params: false` and `sync_module_states: true` are FSDP1 switches: FSDP2 always shards the original
  parameters one by one (frozen 4-bit and trainable LoRA weights may share a unit), and `cpu_ram_efficient_loading`
  (on) loads the weights once on rank 0 and broadcasts them, which replaces `sync_module_states` (accelerate skips
  it for 4-bit weights: every rank quantises its own copy on its GPU before sharding, so the load peak holds the
  whole 4-bit model once);
- full state dicts of the adapter only at checkpoints (`FULL_STATE_DICT`: a few MB, readable without FSDP), gradient
  checkpointing through transformers as on one GPU, compiled layers off unless asked for.
"""
import os

from loraflow.schemas.config.lora import LoraConfig
from loraflow.schemas.config.train import TrainConfig
from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.planning.auto_settings import ddp_fits, pick_distributed

FSDP_CONFIG = {
    "version": 2,
    "reshard_after_forward": True,  # FULL_SHARD
    "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
    "cpu_ram_efficient_loading": True,
    "state_dict_type": "FULL_STATE_DICT",
    "activation_checkpointing": False,  # transformers' gradient checkpointing (train.gradient_checkpointing) instead
}
# Read by transformers' from_pretrained (is_fsdp_enabled) once torch.distributed is up: rank 0 loads, the rest wait.
FSDP_LOADING_ENV = {"ACCELERATE_USE_FSDP": "true", "FSDP_CPU_RAM_EFFICIENT_LOADING": "true"}


def uses_fsdp(train: TrainConfig, world_size: int) -> bool:
    """Whether this training process shards the model with FSDP (train.distributed resolved to fsdp, several ranks)."""
    return world_size > 1 and train.distributed == "fsdp"


def resolve_distributed(train: TrainConfig, lora: LoraConfig, model_config: dict, max_length: int,
                        gpu_memory_gib: float | None, nproc: int) -> TrainConfig:
    """train with `distributed` resolved for nproc GPUs: auto is fsdp when the estimate says DDP does not fit one card.

    DDP holds the whole model on every GPU, so it fits exactly when single-GPU training fits; FSDP is refused for
    settings its recipe excludes (fp32 non-quantised weights).
    """
    fits = True
    if train.distributed == "auto" and nproc > 1 and gpu_memory_gib:
        fits = ddp_fits(train, lora, model_config, max_length, gpu_memory_gib)
    choice = pick_distributed(train.distributed, fits, nproc)
    if choice == "fsdp":
        check_fsdp_settings(train)
    return train.model_copy(update={"distributed": choice})


def check_fsdp_settings(train: TrainConfig) -> None:
    """Refuse settings the FSDP + QLoRA recipe rules out, each with the fix."""
    if train.method in ("qlora", "auto") and train.qlora_fp32 != "none":
        raise LoraflowError(f"train.distributed=fsdp with train.qlora_fp32={train.qlora_fp32} keeps some weights in "
                            "fp32 beside the bf16-stored 4-bit ones, and FSDP shards each unit in one dtype; set "
                            "train.qlora_fp32=none (the default) or train.distributed=ddp")


def fsdp_arguments(train: TrainConfig, world_size: int) -> dict:
    """TrainingArguments entries that make the Trainer shard with FSDP ({} when not sharding)."""
    if not uses_fsdp(train, world_size):
        return {}
    return {"fsdp": True, "fsdp_config": dict(FSDP_CONFIG)}


def fsdp_training_settings(train: TrainConfig) -> TrainConfig:
    """The train settings an FSDP worker trains with: compiled layers off unless asked for (untested inside FSDP units),
    no offloaded checkpointing (its hook would also see what FSDP's unit hooks save)."""
    update = {"offload_activations": False} if train.offload_activations is not False else {}
    if train.compile_layers is None:
        update["compile_layers"] = False
    return train.model_copy(update=update) if update else train


def worker_settings(train: TrainConfig, lora: LoraConfig, model_config: dict, max_length: int,
                    world_size: int) -> tuple[TrainConfig, bool]:
    """In a training process: the train settings in force and whether it shards (auto still unresolved only under a
    torchrun started by hand: decided here as the launcher decides)."""
    if world_size > 1 and train.distributed == "auto":
        from loraflow.tasks.common.device import detect_device

        train = resolve_distributed(train, lora, model_config, max_length, detect_device()[1], world_size)
    fsdp = uses_fsdp(train, world_size)
    return (fsdp_training_settings(train) if fsdp else train), fsdp


def start_fsdp_worker() -> None:
    """In an FSDP worker, before the model loads: the loading switches and the process group (rank 0 loads bf16 LoRA
    weights once, the others receive them when the model is sharded)."""
    os.environ.update(FSDP_LOADING_ENV)
    from accelerate import PartialState

    PartialState()  # initialises torch.distributed from torchrun's environment; the Trainer's Accelerator reuses it
