"""What train.objective adds to the resource estimate: two sequences per pair, DPO's reference forward, two phases.

trl's DPOTrainer and ORPOTrainer put the chosen and the rejected answer of every pair in one batch (chosen first), so
a micro-batch of B pairs holds 2B sequences in memory and in compute. DPO also scores each batch with the reference
model: with LoRA/QLoRA that is the same weights with the adapter disabled (or, continuing an adapter as sft_then_dpo
does, trl's frozen "ref" copy of it) under no_grad: one more forward per step and no second copy of the weights.
Full fine-tuning has no adapter to disable, so trl loads a second model.
"""
from dataclasses import dataclass

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


PHASES = {
    "sft": (Phase("sft"),),
    "dpo": (Phase("dpo", PAIR_SEQUENCES, reference_forward=True),),
    "orpo": (Phase("orpo", PAIR_SEQUENCES, fused_lm_head=False),),
    "sft_then_dpo": (Phase("sft"), Phase("dpo", PAIR_SEQUENCES, reference_forward=True, continues_adapter=True)),
}


def phases_for(objective: str) -> tuple[Phase, ...]:
    """The trainer runs of train.objective, in order."""
    return PHASES[objective]


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


def objective_note(objective: str, grad_checkpointing: bool, separate_reference_gib: float, method: str) -> str | None:
    """One line for the estimate's notes on what the objective costs; None for sft."""
    if objective == "sft":
        return None
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
