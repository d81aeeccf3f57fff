"""GRPO through trl's GRPOTrainer: sampled completions per prompt, scored by the task card's rewards, LoRA or QLoRA.

The reference policy costs no second copy of the weights: with a fresh adapter trl computes the reference log-probs
with the adapter disabled (the frozen base: GRPOTrainer -> use_adapter(model, None)); continuing a trained adapter
(sft_then_grpo) it first copies that adapter, frozen, as "ref" on the same weights. The reward functions come in from
the caller (tasks/evaluation/rewards.py builds them from the task card), as trl's `reward_funcs` and `reward_weights`.
"""
import dataclasses
import importlib.util
from pathlib import Path

from loraflow.schemas.config.grpo import GrpoConfig
from loraflow.schemas.config.train import TrainConfig
from loraflow.schemas.results.training import SpeedPlan
from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.training.trainer_args import trainer_arguments

GRPO_OBJECTIVES = ("grpo", "sft_then_grpo")


def rejected_answer(record: dict) -> str | None:
    """The answer GRPO scores low for this record: a pair's rejected side, or the model's answer a feedback correction
    replaced (tasks/feedback/export.py keeps it in the metadata, so supervised data stays supervised)."""
    if record.get("rejected"):
        return record["rejected"]
    metadata = record.get("metadata") or {}
    return metadata.get("model_output") if metadata.get("source") == "feedback" else None


def to_grpo_examples(records: list[dict]) -> list[dict]:
    """trl's conversational prompts with the columns the rewards read: the reference answer and, for pairs and
    corrected or thumbs-down feedback, the rejected one."""
    examples = []
    for record in records:
        messages = record["messages"]
        last = max((i for i, m in enumerate(messages) if m["role"] == "assistant" and i > 0), default=None)
        prompt = messages[:last] if last is not None else messages
        examples.append({"id": record["id"], "prompt": prompt,
                         "reference": messages[last]["content"] if last is not None else None,
                         "rejected": rejected_answer(record)})
    return examples


def grpo_speed(speed: SpeedPlan, train: TrainConfig) -> SpeedPlan:
    """The speed plan for GRPO: no packing, and compiled layers only when asked for (generation feeds the layers one
    token at a time with a growing cache: a new shape per step, so compiled layers would recompile until they give up)."""
    return dataclasses.replace(speed, packing=False, pad_to_multiple_of=None,
                               compile_layers=bool(train.compile_layers))


def generation_arguments(grpo: GrpoConfig, cuda: bool) -> dict:
    """GRPOConfig's keys for how completions are sampled (train.grpo.generation; auto: vLLM colocate where CUDA and vllm
    are there, else transformers' generate)."""
    has_vllm = importlib.util.find_spec("vllm") is not None
    mode = grpo.generation
    if mode == "auto":
        mode = "vllm" if cuda and has_vllm else "generate"
    if mode == "vllm":
        if not (cuda and has_vllm):
            missing = "CUDA" if not cuda else "the vllm package (pip install vllm)"
            raise LoraflowError(f"train.grpo.generation=vllm needs {missing}; set train.grpo.generation to auto, "
                                "generate or continuous_batching")
        return {"use_vllm": True, "vllm_mode": "colocate",
                "vllm_gpu_memory_utilization": grpo.vllm_gpu_memory_utilization}
    if mode == "continuous_batching":
        return {"use_transformers_continuous_batching": True}
    return {}


def build_grpo_trainer(model, tokenizer, train: TrainConfig, output_dir: Path, bf16: bool, train_dataset, eval_dataset,
                       peft_config, callbacks: list, speed: SpeedPlan, rewards: tuple[list, list[float]] | None,
                       world_size: int = 1):
    """trl's GRPOTrainer over the shared training arguments, sampling settings from train.grpo."""
    from trl import GRPOConfig, GRPOTrainer

    if not rewards or not rewards[0]:
        raise LoraflowError(f"train.objective={train.objective} needs reward functions, and every train.grpo.weights "
                            "component is 0 or none applies; give a component a positive weight.")
    grpo = train.grpo
    # Each prompt is sampled num_generations times and the effective batch counts completions.
    common = trainer_arguments(train, output_dir, bf16, len(train_dataset) * grpo.num_generations, eval_dataset is not None,
                               speed, world_size)
    # Evaluation samples completions of the validation prompts too: the held-out reward (and each field's share right)
    # picks the best checkpoint; GRPO's loss is not a quality measure. Eval batches hold whole groups of completions.
    eval_batch = grpo.num_generations * max(1, train.micro_batch_size // grpo.num_generations)
    common.update(per_device_eval_batch_size=eval_batch, metric_for_best_model="eval_reward", greater_is_better=True)
    args = GRPOConfig(**common, num_generations=grpo.num_generations, max_completion_length=grpo.max_completion_length,
                      temperature=grpo.temperature, beta=grpo.beta, loss_type=grpo.loss_type,
                      scale_rewards=grpo.scale_rewards, reward_weights=list(rewards[1]), log_completions=False,
                      **generation_arguments(grpo, str(model.device).startswith("cuda")))
    return GRPOTrainer(model=model, reward_funcs=list(rewards[0]), args=args, train_dataset=train_dataset,
                       eval_dataset=eval_dataset, processing_class=tokenizer, peft_config=peft_config, callbacks=callbacks)
