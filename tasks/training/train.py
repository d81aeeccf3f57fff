"""Fine-tuning with trl's SFTTrainer + peft: LoRA, QLoRA (4-bit NF4) or full. No prefect here (GPU benchmarks import it bare)."""
import json
import logging
import os
import time
from pathlib import Path

from loraflow.schemas.config.lora import LoraConfig
from loraflow.schemas.config.train import TrainConfig
from loraflow.schemas.results.training import OomFallback, RankMemory, SpeedPlan, TrainingResult
from loraflow.schemas.run_folder import RunFolder
from loraflow.tasks.common.device import training_precision
from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.common.jsonl import read_jsonl
from loraflow.tasks.training.distributed import worker_settings
from loraflow.tasks.training.oom import run_with_oom_fallback
from loraflow.tasks.training.lora_setup import peft_lora_config
from loraflow.tasks.training.resume import checkpoints_dir, last_good_checkpoint
from loraflow.tasks.training.speed import (compile_decoder_layers, decoder_layers, keep_activations_of_last_layers,
                                           resolve_speed)
from loraflow.tasks.training.trainer_args import build_sft_config


def to_prompt_completion(records: list[dict]) -> list[dict]:
    """One training example per assistant turn: the turns before it are the prompt, it is the completion.

    trl computes the loss on the completion only, so every assistant turn is learned and no user or system
    token is: the same as assistant-only loss, without needing generation markers in the model's chat template.
    """
    examples = []
    for record in records:
        messages = record["messages"]
        for i, message in enumerate(messages):
            if message["role"] == "assistant" and i > 0:
                examples.append({"prompt": messages[:i], "completion": [message], "id": record["id"]})
    return examples


def training_examples(records: list[dict], objective: str, path: str) -> list[dict]:
    """The trainer's examples for the objective: prompt/completion turns for sft, prompt/chosen/rejected for dpo and orpo,
    prompts with their reference (and rejected) answer for grpo."""
    if objective == "sft":
        return to_prompt_completion(records)
    if objective == "grpo":
        from loraflow.tasks.training.grpo import to_grpo_examples

        return to_grpo_examples(records)
    from loraflow.tasks.training.preference import to_preference_examples

    return to_preference_examples(records, objective, path)


def load_model(model_path: str | None, method: str, device: str, bf16: bool, gradient_checkpointing: bool, *,
               attn_implementation: str = "sdpa", qlora_fp32: str = "none", fsdp: bool = False, **from_pretrained_kwargs):
    """The base model for the method: 4-bit NF4 for QLoRA (never merged into), 16/32-bit otherwise.

    fsdp: loaded for FSDP sharding (tasks/training/distributed.py): 4-bit weights stored in the compute dtype, no device_map.
    from_pretrained_kwargs go to `from_pretrained` (the GPU benchmark passes `config` and `state_dict` of a random model).
    """
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    dtype = torch.bfloat16 if bf16 else torch.float32
    kwargs: dict = {"dtype": dtype, "device_map": None if fsdp else {"": device},
                    "attn_implementation": attn_implementation, **from_pretrained_kwargs}
    if method == "qlora":
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype,
            **({"bnb_4bit_quant_storage": dtype} if fsdp else {}),
        )
    loader = AutoModelForCausalLM
    if model_path is None:  # built in memory from `config` + `state_dict`: the Auto class needs a path, the model class not
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

        loader = MODEL_FOR_CAUSAL_LM_MAPPING[type(kwargs["config"])]
    model = loader.from_pretrained(model_path, **kwargs)
    if method == "qlora":
        from peft import prepare_model_for_kbit_training

        # Non-reentrant checkpointing: the one that works with compiled layers (and needs no input-grad hook).
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing,
                                                gradient_checkpointing_kwargs={"use_reentrant": False})
        if qlora_fp32 == "norms" and dtype != torch.float32:
            # The QLoRA paper keeps only the norms in fp32: bf16 embeddings and LM head need no per-step autocast copy.
            for module in (model.get_input_embeddings(), model.get_output_embeddings()):
                if module is not None:
                    module.to(dtype)
        elif qlora_fp32 == "none" and dtype != torch.float32:
            # fp32 norms make every projection's output (bitsandbytes returns its input's dtype) and so the residual
            # stream and each checkpointed layer input fp32; all-bf16 halves that traffic and memory.
            for param in model.parameters():
                if param.dtype == torch.float32:
                    param.data = param.data.to(dtype)
    return model


def build_trainer(model, tokenizer, train: TrainConfig, lora: LoraConfig | None, max_length: int, output_dir: Path,
                  bf16: bool, train_dataset, eval_dataset=None, callbacks: list | None = None,
                  speed: SpeedPlan | None = None, world_size: int = 1, rewards: tuple[list, list[float]] | None = None):
    """trl's SFTTrainer (or DPO/ORPO/GRPO for train.objective; GRPO scores with `rewards`: functions and weights) with loraflow's settings: LoRA from `lora` (unless the model already is a peft model), speed options.

    The GPU benchmark calls this too, so what it measures is the path train_model runs.
    """
    from peft import PeftModel
    from transformers import EarlyStoppingCallback

    from loraflow.tasks.training.train_metrics import DeferredMetricsSFTTrainer

    speed = speed or resolve_speed(train, str(model.device), model.config.to_dict(), max_length, lora)
    if train.objective == "grpo":
        from loraflow.tasks.training.grpo import grpo_speed

        speed = grpo_speed(speed, train)
    peft_config = None
    if lora is not None and not isinstance(model, PeftModel):
        peft_config = peft_lora_config(model, lora)
    all_callbacks = list(callbacks or [])
    if speed.unchecked_layers:
        all_callbacks.append(_unchecked_layers_callback(speed.unchecked_layers))
    if eval_dataset is not None and train.early_stopping_patience > 0:
        all_callbacks.append(EarlyStoppingCallback(early_stopping_patience=train.early_stopping_patience))
    if train.objective in ("dpo", "orpo"):
        from loraflow.tasks.training.preference import build_preference_trainer

        trainer = build_preference_trainer(model, tokenizer, train, max_length, output_dir, bf16, train_dataset,
                                           eval_dataset, peft_config, all_callbacks, speed, world_size)
    elif train.objective == "grpo":
        from loraflow.tasks.training.grpo import build_grpo_trainer

        trainer = build_grpo_trainer(model, tokenizer, train, output_dir, bf16, train_dataset, eval_dataset, peft_config,
                                     all_callbacks, speed, rewards, world_size)
    else:
        trainer_class, pack = DeferredMetricsSFTTrainer, None
        if speed.packing:
            from loraflow.tasks.planning.estimate_packing import plan_packing
            from loraflow.tasks.training.packing import budget_packing_trainer, example_token_lengths

            pack = plan_packing(example_token_lengths(train_dataset, tokenizer), train.effective_batch_size,
                                train.micro_batch_size, max_length, world_size)
            logging.getLogger("loraflow.train").info("packing: %s", pack.to_dict())
            trainer_class = budget_packing_trainer(DeferredMetricsSFTTrainer, max_length)
        args = build_sft_config(train, max_length, output_dir, bf16, len(train_dataset), eval_dataset is not None, speed,
                                world_size, pack)
        trainer = trainer_class(model=model, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset,
                                processing_class=tokenizer, peft_config=peft_config, callbacks=all_callbacks)
        trainer.pack_plan = pack
    if speed.compile_layers:
        compile_decoder_layers(trainer.model)  # after peft wrapping, so the LoRA layers are inside the compiled graphs
    if speed.offload_activations:  # the offloading __call__ runs around the (compiled) call, outside the checkpoint
        from loraflow.tasks.training.offload import offload_checkpointed_inputs

        offload_checkpointed_inputs(decoder_layers(trainer.model))
    return trainer


def _unchecked_layers_callback(count: int):
    """A callback that keeps the last `count` layers' activations once Trainer.train() has enabled checkpointing."""
    from transformers import TrainerCallback

    class UncheckedLayers(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            changed = keep_activations_of_last_layers(model, count)
            logging.getLogger("loraflow.train").info(
                "gradient checkpointing off for the last %d decoder layers (train.unchecked_layers=%d)", changed, count)

    return UncheckedLayers()


def train_model(model_path: str, train_path: str, val_path: str | None, lora: LoraConfig, train: TrainConfig,
                max_length: int, out_dir: str, callbacks: list | None = None, on_finding=None,
                init_adapter: str | None = None, rewards: tuple[list, list[float]] | None = None) -> TrainingResult:
    """Fine-tune the base model on train.jsonl, early-stopping on val loss; save the best adapter (or full model).

    train.objective picks what is learned (sft, dpo, orpo, sft_then_dpo, grpo, sft_then_grpo); init_adapter continues
    from a saved adapter; rewards (reward functions and their weights, tasks/evaluation/rewards.py) score GRPO's samples.

    With several GPUs (train.num_gpus, default all) it re-runs itself under torchrun, one DDP or FSDP process per GPU
    (train.distributed).
    Returns paths (adapter or full model, log history, TensorBoard dir), final metrics, diagnosis and speed options.
    """
    from transformers import AutoConfig, AutoTokenizer
    import datasets

    from loraflow.tasks.training.gpu_memory import GpuMemoryRecorder, memory_per_rank
    from loraflow.tasks.training.launch import gpus_for, launch_training, local_rank, rank, world_size
    from loraflow.tasks.training.callbacks import TrainingWatch

    if train.objective in ("grpo", "sft_then_grpo") and gpus_for(train) > 1:
        raise LoraflowError(f"train.objective={train.objective} trains in one process (its reward functions do not cross "
                            "to torchrun workers yet); set train.num_gpus=1.")
    if world_size() == 1 and gpus_for(train) > 1:
        return launch_training(model_path, train_path, val_path, lora, train, max_length, out_dir, callbacks, gpus_for(train))
    if train.objective in ("sft_then_dpo", "sft_then_grpo"):
        from loraflow.tasks.training.preference import train_sft_then_dpo

        return train_sft_then_dpo(train_model, model_path, train_path, val_path, lora, train, max_length, out_dir, callbacks,
                                  on_finding, second=train.objective.removeprefix("sft_then_"), rewards=rewards)
    out = RunFolder(out_dir)
    train_dir = out.train
    train_dir.mkdir(parents=True, exist_ok=True)
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(train_dir / "tensorboard")
    train_examples = training_examples(read_jsonl(train_path), train.objective, train_path)
    val_examples = training_examples(read_jsonl(val_path), train.objective, val_path) if val_path and Path(val_path).is_file() else []
    if not train_examples:
        raise LoraflowError(f"no training examples in {train_path}: every record was quarantined or removed; see data/report.json")
    method = train.trained_method
    device, bf16_ok = training_precision()
    if device == "cuda" and world_size() > 1:
        device = f"cuda:{local_rank()}"  # each DDP process loads its own copy (QLoRA: its own 4-bit weights) on its GPU
    bf16 = bf16_ok if train.bf16 is None else train.bf16
    if bf16 and not bf16_ok:
        raise LoraflowError("train.bf16=true but this device has no bf16 support; set train.bf16=false or leave it unset")
    model_config = AutoConfig.from_pretrained(model_path).to_dict()
    train, fsdp = worker_settings(train, lora, model_config, max_length, world_size())
    speed = resolve_speed(train, device, model_config, max_length, lora)

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    adapter = lora if method in ("lora", "qlora") else None
    watch = TrainingWatch(on_finding=on_finding, report_dir=train_dir)
    memory = GpuMemoryRecorder()
    fallbacks: list[OomFallback] = []

    def attempt(micro_batch: int, accumulation: int):
        # Each attempt (first run, OOM retry, relaunch) resumes from the last good checkpoint of this run folder.
        current = train.model_copy(update={"micro_batch_size": micro_batch, "effective_batch_size": micro_batch * accumulation})
        # On the CPU bf16 means autocast over fp32 weights (the Trainer's bf16 flag); on a GPU the weights are bf16 too.
        model = load_model(model_path, method, device, bf16 and device.startswith("cuda"), current.gradient_checkpointing,
                           attn_implementation=speed.attn_implementation, qlora_fp32=train.qlora_fp32, fsdp=fsdp)
        if init_adapter:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, init_adapter, is_trainable=True)
        trainer = build_trainer(
            model, tokenizer, current, adapter, max_length, checkpoints_dir(out_dir), bf16,
            datasets.Dataset.from_list(train_examples),
            datasets.Dataset.from_list(val_examples) if val_examples else None,
            [*(callbacks or []), watch, memory], speed, world_size(), rewards,
        )
        watch.attach(trainer)
        last = last_good_checkpoint(trainer.args.output_dir)
        return trainer, trainer.train(resume_from_checkpoint=last), last

    started = time.perf_counter()
    trainer, result, last = run_with_oom_fallback(
        attempt, train.micro_batch_size, train.gradient_accumulation_steps, on_fallback=fallbacks.append,
    )
    seconds = time.perf_counter() - started

    saved_dir = out.adapter if adapter else out.model / "full"
    trainer.save_model(str(saved_dir))  # only the main process writes under DDP (FSDP: every rank gathers, rank 0 writes)
    gpu_memory = memory_per_rank(memory.memory)
    history_path = train_dir / "log_history.json"
    if rank() == 0:
        tokenizer.save_pretrained(str(saved_dir))
        history_path.write_text(json.dumps(trainer.state.log_history, indent=1))
    final = {k: v for k, v in result.metrics.items() if isinstance(v, (int, float))}
    evals = [h["eval_loss"] for h in trainer.state.log_history if "eval_loss" in h]
    if evals:
        final["best_eval_loss"] = min(evals)
    final.update({"train_seconds": seconds, "global_step": trainer.state.global_step, "train_examples": len(train_examples)})
    return TrainingResult(
        adapter_path=str(saved_dir) if adapter else None,
        model_path=str(saved_dir) if not adapter else model_path,
        base_model_path=model_path,
        method=method,
        objective=train.objective,
        log_history=str(history_path),
        tensorboard_dir=str(train_dir / "tensorboard"),
        best_checkpoint=trainer.state.best_model_checkpoint,
        resumed_from=last,
        metrics=final,
        diagnosis=[f.to_dict() for f in watch.findings],
        diagnosis_md=str(train_dir / "diagnosis.md"),
        stopped_on_non_finite=watch.stopped.step if watch.stopped else None,
        oom_fallbacks=fallbacks,
        micro_batch_size=trainer.args.per_device_train_batch_size,
        speed=speed,
        packing=getattr(trainer, "pack_plan", None),
        world_size=world_size(),
        distributed=train.distributed if world_size() > 1 else None,
        gpu_memory_per_rank=[RankMemory(**memory) for memory in gpu_memory if memory],  # empty: no CUDA
    )
