"""GRPO (train.objective grpo / sft_then_grpo): sampling, the KL leash, and rewards read from the task card."""
import importlib
from typing import Literal

from pydantic import Field, field_validator

from loraflow.schemas.config._base import Section


class RewardWeights(Section):
    """Weight of each reward component in the sum GRPO ranks a prompt's completions by; 0 switches a component off."""

    json_valid: float = Field(
        1.0, ge=0.0, description="The answer parses as a JSON object (bare or in a ``` fence, as evaluation reads it): 1, "
        "else 0. Without it a model that has not learned the format gets no signal from the field rewards.")
    fields: float = Field(
        1.0, ge=0.0, description="Each declared answer field right against the record's reference (categorical: the exact "
        "class; text: normalised match, as evaluation's field.<name>.normalized_match): 1, else 0, one component per "
        "field (`field_<name>`) with this weight, so a task's fields count alike.")
    no_extra_text: float = Field(
        0.5, ge=0.0, description="Nothing outside the JSON object (no prose, no fence): 1, else 0. Half weight: format "
        "matters less than the fields, but a fenced or chatty answer breaks a strict parser downstream.")
    rejected: float = Field(
        1.0, ge=0.0, description="Preference pairs and thumbs-down feedback: minus the share of fields in which the "
        "completion repeats the rejected answer where that answer was wrong (all its fields when the record has no "
        "reference), so the answer users turned down scores low; absent where a record has no rejected answer.")
    function: float = Field(1.0, ge=0.0, description="The callable named by train.grpo.reward_function, when set.")
    judge: float = Field(
        0.0, ge=0.0, description="The LLM judge (the `judge` section's endpoint and model) scoring each completion's "
        "accuracy 1-5 against the reference, as (score-1)/4; off by default: one request per completion.")


class GrpoConfig(Section):
    """Group relative policy optimisation through trl's GRPOTrainer; the defaults suit short structured answers."""

    num_generations: int = Field(
        4, ge=2, description="Completions sampled per prompt (the group whose rewards are compared). trl's default is 8; "
        "4 halves generation time and still ranks a handful of answers. train.effective_batch_size counts completions "
        "and must be a multiple of it (16 = 4 prompts x 4 completions per optimizer step).")
    max_completion_length: int = Field(
        128, ge=1, description="Tokens generated per completion at most; a JSON object of a few fields needs 30-80. "
        "Completions that reach it are truncated (diagnosis warns when many do).")
    temperature: float = Field(
        1.0, gt=0.0, le=2.0, description="Sampling temperature of the completions (trl's default 1.0): lower makes a "
        "group's answers alike, and a group that scores all the same teaches nothing.")
    beta: float = Field(
        0.04, ge=0.0, description="KL coefficient against the reference policy (the base with the adapter off; after "
        "sft_then_grpo's first phase the supervised adapter, frozen). 0.04 is the GRPO paper's (DeepSeekMath); trl's "
        "default 0 skips the reference forward but lets the policy drift from what the supervised phase taught.")
    learning_rate: float | None = Field(
        None, gt=0.0, lt=1.0, description="Peak learning rate of the GRPO phase; default: train.learning_rate. RL updates "
        "are noisier than supervised ones: 1e-5 to 1e-4 for LoRA is usual.")
    generation: Literal["auto", "generate", "continuous_batching", "vllm"] = Field(
        "auto", description="How completions are sampled: generate (transformers' generate on the training model, "
        "padded batches), continuous_batching (transformers' generate_batch: paged attention, no padding; "
        "transformers >= 5.8), vllm (trl's vLLM colocate mode: vLLM shares the GPU with training and takes the "
        "updated weights every step; needs CUDA and the vllm package), or auto: vllm where CUDA and vllm are there, "
        "else generate.")
    vllm_gpu_memory_utilization: float = Field(
        0.3, gt=0.0, lt=1.0, description="With vllm generation: the share of the card vLLM's colocated engine takes "
        "(weights and KV cache; trl's default 0.3), the rest is training's.")
    loss_type: str = Field("dapo", description="trl's GRPO loss aggregation (grpo, dr_grpo, dapo, bnpo, ...); trl's default dapo has no length bias.")
    scale_rewards: str = Field("group", description="trl: divide advantages by the group's reward std (group), the batch's (batch) or not (none).")
    weights: RewardWeights = Field(default_factory=RewardWeights, description="Weight per reward component.")
    field_weights: dict[str, float] = Field(
        default_factory=dict, description="Per-field weight overriding train.grpo.weights.fields, e.g. {priority: 2.0}.")
    reward_function: str | None = Field(
        None, description="An extra reward as `module:function` (imported when the config is read): trl's reward "
        "signature `f(prompts, completions, **columns) -> list[float | None]`; columns are `reference`, `rejected`, `id`.")

    @field_validator("reward_function")
    @classmethod
    def _importable(cls, value: str | None) -> str | None:
        if value is None:
            return value
        module, _, name = value.partition(":")
        if not module or not name:
            raise ValueError(f"train.grpo.reward_function={value!r} must be `module:function`, e.g. my_rewards:length_penalty")
        try:
            function = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as error:
            raise ValueError(f"train.grpo.reward_function={value!r} cannot be imported ({type(error).__name__}: {error}); "
                             "put the module on PYTHONPATH or fix the name") from None
        if not callable(function):
            raise ValueError(f"train.grpo.reward_function={value!r} is not callable")
        return value
