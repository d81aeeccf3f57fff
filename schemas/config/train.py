"""Training hyper-parameters; defaults are the fine-tuning guide's."""
from typing import Literal

from pydantic import Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from loraflow.schemas.config._base import Section
from loraflow.schemas.config.grpo import GrpoConfig

Method = Literal["lora", "qlora", "full", "auto"]
# What train.schedule=auto chooses from the data, unless the config file sets it (loraflow.tasks.planning.schedule).
SCHEDULE_KEYS = ("epochs", "effective_batch_size", "micro_batch_size", "learning_rate")


class TrainConfig(Section):
    objective: Literal["sft", "dpo", "orpo", "sft_then_dpo", "grpo", "sft_then_grpo"] = Field(
        "sft", description="What is learned: sft (the reference answers), dpo or orpo (preference pairs: chosen over "
        "rejected), or sft_then_dpo (supervised on the chosen answers, then DPO from that adapter). DPO's reference "
        "is the frozen base with the adapter switched off (after sft_then_dpo's first phase: a frozen copy of that "
        "adapter), never a second copy of the model's weights when training LoRA or QLoRA. grpo: reinforcement from rewards "
        "the task card defines (JSON validity, each field right, no extra text; train.grpo); sft_then_grpo: supervised "
        "first, then GRPO from that adapter, the supervised adapter frozen as GRPO's reference.")
    preference_beta: float = Field(
        0.1, gt=0.0, description="DPO's beta (how far the policy may move from the reference; trl's default 0.1) or "
        "ORPO's lambda (weight of the odds-ratio term beside the supervised loss; 0.1 in the ORPO paper).")
    preference_learning_rate: float | None = Field(
        None, gt=0.0, lt=1.0, description="Peak learning rate of preference training (dpo, orpo, and the DPO phase of "
        "sft_then_dpo, whose supervised phase keeps train.learning_rate); default: train.learning_rate. DPO moves the "
        "policy by the log-probability ratio alone, so a rate that suits supervised LoRA (1e-3 on the CPU examples) "
        "can push the chosen answer's likelihood down with the rejected one and break greedy answers.")
    preference_sft_weight: float = Field(
        0.0, ge=0.0, description="DPO: weight of a supervised (NLL) loss on the chosen answer added to DPO's loss "
        "(trl loss_type [sigmoid, sft], as in RPO); keeps the chosen answer likely while the margin grows. 0: DPO alone.")
    grpo: GrpoConfig = Field(default_factory=GrpoConfig, description="GRPO's sampling, KL and rewards (objectives grpo and sft_then_grpo).")
    method: Method = Field("lora", description="lora (16/32-bit base), qlora (4-bit NF4 base), full fine-tuning, or auto (by the resource estimate).")
    schedule: Literal["auto", "fixed"] = Field(
        "auto", description="auto: epochs, batch and learning rate follow from the number of training records and answer "
        "classes (a few hundred records: many 2-example steps at lr 1e-3, about 25 steps per class, 2-10 epochs; "
        "over 2,000: the guide's 16-example steps at 2e-4 for 3 epochs); a key the config file sets is kept. fixed: the "
        "configured values and the defaults below, as written.")
    schedule_from_data: SkipJsonSchema[tuple[str, ...]] = Field(
        (), description="Set by loading: the schedule keys the config file left to train.schedule=auto.")
    learning_rate: float | None = Field(None, gt=0.0, lt=1.0, description="Peak learning rate; default 2e-4 for LoRA/QLoRA and 2e-5 for full fine-tuning (guide).")
    effective_batch_size: int = Field(16, ge=1, description="Examples per optimizer step = micro_batch_size x gradient accumulation (guide: 16-32).")
    micro_batch_size: int = Field(4, ge=1, description="Examples per forward pass; gradient accumulation makes up the effective batch.")
    epochs: float = Field(3, gt=0, description="Passes over the training data (guide: 3-5 with early stopping).")
    max_steps: int = Field(-1, ge=-1, description="Stop after this many optimizer steps (-1: run all epochs).")
    warmup_ratio: float = Field(0.05, ge=0.0, lt=1.0, description="Share of steps for linear warm-up (guide: 0.05-0.1).")
    weight_decay: float = Field(0.01, ge=0.0, lt=1.0, description="AdamW weight decay (guide: 0.01-0.1).")
    lr_scheduler: Literal["cosine", "linear", "constant_with_warmup"] = Field("cosine", description="Learning-rate schedule after warm-up.")
    max_grad_norm: float = Field(1.0, gt=0.0, description="Gradient clipping norm.")
    early_stopping_patience: int = Field(2, ge=0, description="Evaluations without val-loss improvement before stopping (0: off); the best checkpoint is restored.")
    logging_steps: int = Field(10, ge=1, description="Log train loss, learning rate and grad norm every N optimizer steps.")
    eval_steps: int | None = Field(
        None, ge=1, description="Evaluate val loss every N steps; default: at every checkpoint when train.save_steps is set, "
        "else about 5 times over the run (a curve, not one point).")
    save_steps: int | None = Field(
        None, ge=1, description="Checkpoint every N steps, a multiple of train.eval_steps (the best checkpoint is chosen "
        "at evaluations); default with every evaluation.")
    gradient_checkpointing: bool = Field(False, description="Trade compute for memory (recomputes activations in the backward pass).")
    unchecked_layers: int | Literal["auto"] = Field(
        "auto", description="With gradient checkpointing: keep the activations of this many last decoder layers instead "
        "of recomputing them in the backward pass (~1.5% faster per layer; each layer after the first costs memory, ~1 "
        "GiB at 8k tokens per micro-batch for a 7B model). auto: as many as keep the estimated peak under 90% of the "
        "plain QLoRA recipe's (peft's fp32 upcast, full logits, paged 8-bit AdamW) at the same shape, and on the card; "
        "0 on the CPU.")
    offload_activations: bool | Literal["auto"] = Field(
        "auto", description="With gradient checkpointing: keep each checkpointed decoder layer's input in pinned host "
        "memory instead of on the GPU and bring it back for the layer's recompute in the backward pass (offloaded "
        "checkpointing, as Unsloth's): frees layers x tokens x hidden x 2 bytes of GPU memory (32 GiB for an 8B model at "
        "128k tokens), costs a copy each way per layer and step, and needs that much host memory (pinned blocks round up "
        "to a power of two). auto: on with CUDA when the resource estimate says the micro-batch does not fit the card "
        "without it; off on the CPU. true on the CPU copies in host memory (nothing to free; the path runs). Not under "
        "FSDP (train.distributed fsdp turns it off).")
    bf16: bool | None = Field(None, description="Train in bf16; default: on where the device supports it.")
    seed: int = Field(42, ge=0, description="Seed for initialisation and data order.")
    compile_layers: bool | None = Field(
        None, description="torch.compile each decoder layer (7B QLoRA on an H100: ~1.9x tokens/s at the same memory); "
        "default: on with CUDA, off on the CPU. The first steps pay 10-30 s of compilation.")
    packing: bool | Literal["auto"] = Field(
        "auto", description="Pack examples padding-free into rows sized to keep about train.effective_batch_size "
        "examples per optimizer step (a row holds at most micro_batch_size x model.max_length tokens, so the peak "
        "memory is the padded micro-batch's; position ids restart per example and varlen flash attention keeps "
        "attention inside each example). auto: on for sft on CUDA (no padding: much faster on "
        "short, ragged data), off on the CPU and for dpo/orpo. false: padded micro-batches of micro_batch_size examples.")
    liger: bool = Field(False, description="Liger kernels for RMSNorm, SwiGLU and RoPE (needs liger-kernel); "
                        "measured slower than compile_layers, and turns its default off.")
    qlora_fp32: Literal["norms", "all", "none"] = Field(
        "none", description="QLoRA: which non-quantised weights are kept in fp32: `none` (every non-quantised weight in "
        "the compute dtype, as bf16 LoRA trains; the LoRA weights stay fp32: 7B on an H200 as fast as `norms` with "
        "2.2 GiB less at 1024x8, which unchecked_layers auto spends on speed), `norms` (the QLoRA paper's recipe: fp32 "
        "norms make the residual stream fp32) or `all` (peft's prepare_model_for_kbit_training).")
    optimizer: Literal["auto", "adamw_torch_fused", "adamw_torch", "paged_adamw_8bit", "adamw_8bit"] = Field(
        "auto", description="Optimizer; auto: fused torch AdamW on CUDA (one kernel for all parameters: the per-tensor "
        "8-bit optimizers cost ~6% of a 7B QLoRA step for ~0.25 GiB saved on LoRA weights), plain AdamW on the CPU. "
        "paged_adamw_8bit saves memory where the trainable parameters are many (full fine-tuning of large models).")
    num_gpus: int | None = Field(
        None, ge=1, description="GPUs for data-parallel training (DDP through torchrun, one process per GPU); "
        "default: every visible GPU. 1 keeps training in this process.")
    distributed: Literal["auto", "ddp", "fsdp"] = Field(
        "auto", description="How training spreads over several GPUs (torchrun, one process per GPU): ddp (a whole copy "
        "of the model on every GPU; fastest while it fits), fsdp (FSDP + QLoRA/LoRA: weights, adapter, gradients and "
        "optimizer state sharded across the GPUs through accelerate's FSDP2, for a model whose weights and activations "
        "do not fit one card; needs qlora_fp32 none), or auto: fsdp when the resource estimate says DDP does not fit "
        "one card, else ddp. Ignored on one GPU.")

    @property
    def trained_method(self) -> str:
        """The method training uses: the configured one; `auto` that no estimate resolved trains LoRA."""
        return "lora" if self.method == "auto" else self.method

    @property
    def resolved_learning_rate(self) -> float:
        """The learning rate in force: preference_learning_rate for dpo/orpo when set, else the configured one or the
        guide's default for the method."""
        if self.objective in ("dpo", "orpo") and self.preference_learning_rate is not None:
            return self.preference_learning_rate
        if self.objective == "grpo" and self.grpo.learning_rate is not None:
            return self.grpo.learning_rate
        if self.learning_rate is not None:
            return self.learning_rate
        return 2e-5 if self.method == "full" else 2e-4

    @property
    def grpo_rewards(self) -> GrpoConfig | None:
        """train.grpo when the objective learns from rewards (grpo, sft_then_grpo), else None."""
        return self.grpo if self.objective in ("grpo", "sft_then_grpo") else None

    @property
    def gradient_accumulation_steps(self) -> int:
        """Accumulation steps that turn micro-batches into the effective batch."""
        return max(1, self.effective_batch_size // self.micro_batch_size)

    @model_validator(mode="before")
    @classmethod
    def _note_schedule_keys(cls, data):
        """Remember which schedule keys the file left open, once: a dumped and reloaded config keeps the same answer."""
        if isinstance(data, dict) and "schedule_from_data" not in data:
            data = {**data, "schedule_from_data": tuple(k for k in SCHEDULE_KEYS if k not in data)}
        return data

    @model_validator(mode="after")
    def _batch_divides(self) -> "TrainConfig":
        if self.effective_batch_size % self.micro_batch_size:
            raise ValueError(
                f"train.effective_batch_size ({self.effective_batch_size}) must be a multiple of "
                f"train.micro_batch_size ({self.micro_batch_size})"
            )
        if self.objective in ("grpo", "sft_then_grpo") and self.effective_batch_size % self.grpo.num_generations:
            raise ValueError(
                f"train.effective_batch_size ({self.effective_batch_size}) counts GRPO's completions and must be a multiple "
                f"of train.grpo.num_generations ({self.grpo.num_generations}); e.g. train.effective_batch_size="
                f"{self.grpo.num_generations * max(1, self.effective_batch_size // self.grpo.num_generations)}")
        if self.offload_activations is True and not self.gradient_checkpointing:
            raise ValueError("train.offload_activations=true offloads the inputs gradient checkpointing keeps; set "
                             "train.gradient_checkpointing=true (or train.offload_activations=auto)")
        if self.max_steps == 0:
            raise ValueError("train.max_steps must be -1 (run all train.epochs) or a positive number of steps, not 0")
        if self.save_steps and self.eval_steps and self.save_steps % self.eval_steps:
            raise ValueError(
                f"train.save_steps ({self.save_steps}) must be a multiple of train.eval_steps ({self.eval_steps}): the best "
                f"checkpoint is chosen at evaluations; set train.save_steps={self.eval_steps * max(1, round(self.save_steps / self.eval_steps))} "
                "or leave train.eval_steps unset (it then follows train.save_steps)"
            )
        return self
