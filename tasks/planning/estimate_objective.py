"""What train.objective adds to the resource estimate: two sequences per pair, DPO's reference forward, two phases.

trl's DPOTrainer and ORPOTrainer put the chosen and the rejected answer of every pair in one batch (chosen first), so
a micro-batch of B pairs holds 2B sequences in memory and in compute. DPO also scores each batch with the reference
model: with LoRA/QLoRA that is the same weights with the adapter disabled (or, continuing an adapter as sft_then_dpo
does, trl's frozen "ref" copy of it) under no_grad: one more forward per step and no second copy of the weights.
Full fine-tuning has no adapter to disable, so trl loads a second model.

GRPO samples train.grpo.num_generations completions of every prompt with HF generate before each optimizer step
(trl's generation batch is the effective batch of completions), then trains on them like supervised sequences, with
the reference forward when its KL beta is above 0. Generation holds the weights, adapter, optimizer state and a KV cache
for the whole generation batch (the activations and gradients are freed by then); decoding is memory-bound.
"""
import dataclasses
import math
from dataclasses import dataclass

from loraflow.tasks.planning.estimate_shapes import NF4_BYTES, NF4_CONST_BYTES

PAIR_SEQUENCES = 2
# FLOPs per token in units of the parameter count: a training step is forward 2 + backward 4, plus a second forward
# with gradient checkpointing; the reference is one forward.
TRAIN_STEP_FLOPS, RECOMPUTE_FLOPS, FORWARD_FLOPS = 6, 2, 2


@dataclass(frozen=True)
class Phase:
    """One trainer run of an objective."""

    name: str
    sequences: int = 1  # sequences per training example: 2 for a pair
    reference_forward: bool = False  # DPO: a no-grad forward of the reference model per batch
    fused_lm_head: bool = True  # SFT and DPO score through trl's chunked LM head; ORPO builds the full logits
    continues_adapter: bool = False  # starts from a trained adapter: trl keeps a frozen copy of it as the reference
    generates: bool = False  # GRPO: samples completions before each optimizer step


@dataclass(frozen=True)
class Generation:
    """GRPO's sampling as the estimate needs it (train.grpo and the effective batch)."""

    num_generations: int
    max_completion_length: int
    beta: float
    generation_batch: int  # completions generated at once: trl's default is the effective batch
    prompts: int | None = None  # training prompts per epoch (records of train.jsonl) when known


PHASES = {
    "sft": (Phase("sft"),),
    "dpo": (Phase("dpo", PAIR_SEQUENCES, reference_forward=True),),
    "orpo": (Phase("orpo", PAIR_SEQUENCES, fused_lm_head=False),),
    "sft_then_dpo": (Phase("sft"), Phase("dpo", PAIR_SEQUENCES, reference_forward=True, continues_adapter=True)),
    # trl's GRPOTrainer scores completions through the same fused, chunked LM head as SFT (add_fused_lm_head)
    "grpo": (Phase("grpo", reference_forward=True, generates=True),),
    "sft_then_grpo": (Phase("sft"), Phase("grpo", reference_forward=True, continues_adapter=True, generates=True)),
}
# Decoding reads every weight once per generated token: spec-sheet memory bandwidth (bytes/s) times the share HF
# generate reaches (assumed 0.5), and a floor per decode step for the kernel launches of each layer (assumed 0.25 ms on
# a GPU, 1 ms on the CPU). Not measured: a GRPO step's generation time is the estimate's least certain part.
MEMORY_BANDWIDTH = {"H100": 3.35e12, "H200": 4.8e12, "A100": 2.0e12, "cpu": 2.0e10}
DECODE_EFFICIENCY = 0.5
DECODE_LAYER_FLOOR_S = {"gpu": 0.25e-3, "cpu": 1e-3}


def phases_for(objective: str, generation: Generation | None = None) -> tuple[Phase, ...]:
    """The trainer runs of train.objective, in order (GRPO with beta 0 has no reference forward)."""
    phases = PHASES[objective]
    if generation is not None and generation.beta == 0:
        phases = tuple(dataclasses.replace(p, reference_forward=False) if p.generates else p for p in phases)
    return phases


def samples_per_example(phase: Phase, generation: Generation | None) -> int:
    """Sequences trained per training example: 2 for a pair, num_generations for GRPO, else 1."""
    return phase.sequences * (generation.num_generations if phase.generates and generation else 1)


def kv_cache_bytes(shape, sequences: int, tokens: int) -> float:
    """bf16 keys and values of every layer for `sequences` sequences of `tokens` tokens."""
    return 2.0 * shape.num_layers * shape.num_kv_heads * shape.head_dim * 2 * sequences * tokens


def generation_parts(train_parts: dict[str, float], shape, generation: Generation, seq_len: int, gib: float) -> dict[str, float]:
    """GiB held while GRPO generates: the persistent parts of training plus the generation batch's KV cache and the
    sampling logits (fp32, two copies); the activations and gradients of the last step are freed by then."""
    kept = {k: v for k, v in train_parts.items() if k not in ("activations", "gradients")}
    kept["generation_kv_cache"] = kv_cache_bytes(shape, generation.generation_batch, seq_len) / gib
    kept["generation_logits"] = generation.generation_batch * shape.vocab_size * 8.0 / gib
    return kept


def generation_seconds(shape, method: str, generation: Generation, device: str, n_train_tokens: int, seq_len: int,
                       epochs: float) -> float:
    """Decode time of GRPO's sampling: max_completion_length memory-bound steps per generation round, one round per
    optimizer step; without a prompt count, prompts are taken as n_train_tokens / seq_len (fewer: a lower bound)."""
    family = next((f for f in MEMORY_BANDWIDTH if f.lower() in device.lower()), "H100")
    weights = shape.layer_linear_params * (NF4_BYTES + NF4_CONST_BYTES if method == "qlora" else 2.0) + shape.embedding_params * 2.0
    cache = kv_cache_bytes(shape, generation.generation_batch, seq_len) / 2  # the cache grows over the completion
    floor = shape.num_layers * DECODE_LAYER_FLOOR_S["cpu" if family == "cpu" else "gpu"]
    step = max((weights + cache) / (MEMORY_BANDWIDTH[family] * DECODE_EFFICIENCY), floor)
    prompts = generation.prompts or max(1, n_train_tokens // max(seq_len, 1))
    rounds = math.ceil(prompts * generation.num_generations / generation.generation_batch) * epochs
    return rounds * generation.max_completion_length * step


def compute_factor(phase: Phase, grad_checkpointing: bool) -> float:
    """Compute per sequence token relative to a supervised step: 1, or more with DPO's reference forward."""
    step = TRAIN_STEP_FLOPS + (RECOMPUTE_FLOPS if grad_checkpointing else 0)
    return (step + (FORWARD_FLOPS if phase.reference_forward else 0)) / step


def reference_bytes(phase: Phase, method: str, total_params: int, trainable: int) -> float:
    """GPU bytes the reference model adds: none with the adapter disabled, a continued adapter's fp32 copy, or for
    full fine-tuning a second bf16 model."""
    if not phase.reference_forward:
        return 0.0
    if method == "full":
        return total_params * 2.0
    return trainable * 4.0 if phase.continues_adapter else 0.0


def objective_note(objective: str, grad_checkpointing: bool, separate_reference_gib: float, method: str,
                   generation: Generation | None = None, generation_hours: float = 0.0) -> str | None:
    """One line for the estimate's notes on what the objective costs; None for sft."""
    if objective == "sft":
        return None
    if objective in ("grpo", "sft_then_grpo"):
        return _grpo_note(objective, grad_checkpointing, separate_reference_gib, method, generation, generation_hours)
    pairs = "each pair is 2 sequences (chosen + rejected) per micro-batch entry: 2x the activations and tokens of sft"
    if objective == "orpo":
        return f"train.objective orpo: {pairs}; no reference model (ORPO builds the full logits, no fused LM head)"
    dpo = phases_for(objective)[-1]
    extra = compute_factor(dpo, grad_checkpointing) - 1
    if method == "full":
        reference = "a second bf16 copy of the model (full fine-tuning has no adapter to disable)"
    else:
        own = "a frozen copy of the supervised adapter on the same weights" if dpo.continues_adapter else "the base with the adapter disabled"
        reference = f"{own} (no second copy of the weights; a separate reference model would add {separate_reference_gib:.2f} GiB)"
    phases = "the supervised phase on the chosen answers, then " if objective == "sft_then_dpo" else ""
    return (f"train.objective {objective}: {phases}DPO, {pairs}; its reference is {reference}, one more forward per step "
            f"(+{extra:.0%} compute)")


def _grpo_note(objective, grad_checkpointing, separate_reference_gib, method, generation, generation_hours) -> str:
    grpo = phases_for(objective, generation)[-1]
    if not grpo.reference_forward:
        reference = "no reference (train.grpo.beta 0)"
    elif method == "full":
        reference = "reference: a second bf16 copy of the model"
    else:
        own = "a frozen copy of the supervised adapter" if grpo.continues_adapter else "the base with the adapter disabled"
        reference = (f"reference: {own}, one more forward per step (+{compute_factor(grpo, grad_checkpointing) - 1:.0%} "
                     f"compute; a separate reference model would add {separate_reference_gib:.2f} GiB)")
    phases = "the supervised phase, then " if objective == "sft_then_grpo" else ""
    g = generation.num_generations if generation else "num_generations"
    sampled = (f"{generation.generation_batch} completions of up to {generation.max_completion_length} tokens generated "
               f"per optimizer step (~{generation_hours:.2g} h of decoding in all, memory-bound: the least certain part)"
               if generation else "completions generated before each step")
    return f"train.objective {objective}: {phases}GRPO, each prompt sampled {g} times and trained on; {sampled}; {reference}"
