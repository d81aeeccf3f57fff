"""Preference objectives through trl: DPO and ORPO trainers, and SFT on the chosen answers followed by DPO."""
from collections.abc import Callable
from pathlib import Path

from loraflow.schemas.config.lora import LoraConfig
from loraflow.schemas.config.train import TrainConfig
from loraflow.schemas.results.training import SpeedPlan, TrainingPhase, TrainingResult
from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.training.trainer_args import trainer_arguments


def to_preference_examples(records: list[dict], objective: str, path: str) -> list[dict]:
    """trl's conversational preference examples: prompt turns, the chosen and the rejected answer as one turn each."""
    from loraflow.schemas.preferences import is_pair  # pandera: not imported where the trainer alone is built (GPU benchmarks)

    examples = []
    for record in records:
        if not is_pair(record):
            raise LoraflowError(f"{path}: record {record['id']} has no rejected answer, but train.objective={objective} "
                                "learns from preference pairs; give the data chosen/rejected pairs or set train.objective=sft.")
        examples.append({"id": record["id"], "prompt": record["messages"][:-1], "chosen": [record["messages"][-1]],
                         "rejected": [{"role": "assistant", "content": record["rejected"]}]})
    return examples


def build_preference_trainer(model, tokenizer, train: TrainConfig, max_length: int, output_dir: Path, bf16: bool,
                             train_dataset, eval_dataset, peft_config, callbacks: list, speed: SpeedPlan,
                             world_size: int = 1):
    """trl's DPOTrainer or ORPOTrainer over the shared training arguments.

    DPO gets ref_model=None: on a peft model trl then computes the reference log-probs with the adapter disabled
    (the frozen base; DPOTrainer.compute_ref_log_probs -> use_adapter(model, None) -> model.disable_adapter()), or,
    when the model arrives with a trained adapter (sft_then_dpo), against a frozen copy of that adapter named "ref".
    Either way no second copy of the base weights is loaded. ORPO needs no reference at all.
    """
    common = trainer_arguments(train, output_dir, bf16, len(train_dataset), eval_dataset is not None, speed, world_size)
    if train.objective == "orpo":
        from trl.experimental.orpo import ORPOConfig, ORPOTrainer

        args = ORPOConfig(**common, max_length=max_length, beta=train.preference_beta)
        trainer = ORPOTrainer(model=model, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset,
                              processing_class=tokenizer, peft_config=peft_config, callbacks=callbacks)
    else:
        from trl import DPOConfig, DPOTrainer

        # preference_sft_weight > 0: DPO's sigmoid loss plus NLL on the chosen answer (trl's "sft" loss term).
        losses = {"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, train.preference_sft_weight]} \
            if train.preference_sft_weight > 0 else {}
        args = DPOConfig(**common, max_length=max_length, beta=train.preference_beta,
                         pad_to_multiple_of=speed.pad_to_multiple_of, **losses)
        trainer = DPOTrainer(model=model, ref_model=None, args=args, train_dataset=train_dataset,
                             eval_dataset=eval_dataset, processing_class=tokenizer, peft_config=peft_config,
                             callbacks=callbacks)
    if len(trainer.train_dataset) == 0:  # trl drops pairs whose prompt alone fills max_length
        raise LoraflowError(f"every training pair's prompt is longer than model.max_length={max_length} tokens, so trl "
                            "dropped them all; raise model.max_length or shorten the prompts.")
    return trainer


def train_sft_then_dpo(train_model: Callable[..., TrainingResult], model_path: str, train_path: str, val_path: str | None,
                       lora: LoraConfig, train: TrainConfig, max_length: int, out_dir: str, callbacks: list | None = None,
                       on_finding=None, second: str = "dpo", **second_phase) -> TrainingResult:
    """Supervised training on the chosen answers (in out_dir/sft_phase), then DPO (or `second`: grpo) from that adapter.

    train_model (tasks.training.train's, handed in) trains one phase; second_phase goes to the second one's call.
    """
    if train.method == "full":
        raise LoraflowError(f"train.objective=sft_then_{second} continues from the supervised adapter, so it needs "
                            f"train.method lora or qlora; change train.method or use train.objective={second}.")
    # Each phase's trainer counts steps from 0: the supervised phase logs under its own names (MLflow `sft_phase/...`;
    # TensorBoard: its own folder, sft_phase/train/tensorboard), so the two curves never share a step.
    sft_callbacks = [c.for_phase("sft_phase") if hasattr(c, "for_phase") else c for c in callbacks or []]
    sft = train_model(model_path, train_path, val_path, lora, train.model_copy(update={"objective": "sft"}), max_length,
                      str(Path(out_dir) / "sft_phase"), sft_callbacks, on_finding)
    dpo = train_model(model_path, train_path, val_path, lora, train.model_copy(update={"objective": second}), max_length,
                      out_dir, callbacks, on_finding, init_adapter=sft.adapter_path, **second_phase)
    return dpo.model_copy(update={
        "objective": f"sft_then_{second}",
        "metrics": {**dpo.metrics, **{f"sft_{k}": v for k, v in sft.metrics.items()}},
        "diagnosis": sft.diagnosis + dpo.diagnosis,
        "sft_phase": TrainingPhase(adapter_path=sft.adapter_path, log_history=sft.log_history,
                                   tensorboard_dir=sft.tensorboard_dir),
    })
