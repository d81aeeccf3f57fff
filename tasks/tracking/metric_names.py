"""The one place where loraflow's flat metric keys become MLflow's grouped names (`train/loss`, `eval/candidate/...`).

MLflow's UI builds a chart section per name prefix before a `/`; with flat names every chart lands in one alphabetical
section. loraflow computes and stores its numbers under flat keys (metrics.json, run.json, the reports); only what goes
to MLflow is renamed, at log time, by `mlflow_metric_name`:

    train_loss                                   -> train/loss           (every `train_*` per-step curve)
    val_loss                                     -> val/loss             (every `val_*`)
    learning_rate, grad_norm, epoch, ...         -> train/learning_rate, ...
    sft_phase/train_loss                         -> train/sft_phase/loss (a phase of a multi-phase training)
    train_reward.json_valid                      -> train/reward/json_valid (a part of a training curve: GRPO's rewards)
    train_summary.steps_done                     -> train/summary/steps_done
    candidate.field.category.accuracy            -> eval/candidate/field/category/accuracy (any model or baseline label)
    candidate_vs_majority.field.x.macro_f1.diff  -> eval/candidate_vs_majority/field/x/macro_f1/diff
    data.removed.exact_duplicate                 -> data/removed/exact_duplicate
    estimate.peak_gib, merge.*, variant.*        -> estimate/peak_gib, deploy/merge/..., deploy/variant/...

A name that already holds a `/` (other than a phase prefix) is taken as grouped and kept, so mapping twice is safe.
"""

# Per-step training numbers that carry no train_/val_ prefix of their own.
TRAIN_CURVES = frozenset({"learning_rate", "grad_norm", "epoch", "tokens_per_second", "gpu_memory_allocated_gib",
                          "gpu_memory_peak_gib"})
# Flat keys of the sweep's parent run.
SWEEP_NAMES = {"trial_val_loss": "val/trial_loss", "best_val_loss": "val/best_loss"}
# The first dotted part of a key -> its section; any other dotted key is an evaluation number of a model, a baseline
# (majority, stratified, classical, ...), a comparison (candidate_vs_*), the LLM judge or the human raters.
SECTIONS = {"data": "data", "estimate": "estimate", "train_summary": "train/summary", "merge": "deploy/merge",
            "variant": "deploy/variant"}
PHASE_SUFFIX = "_phase"


def mlflow_metric_name(key: str) -> str:
    """The grouped MLflow name of a loraflow metric key (see the module docstring for the rules)."""
    if "/" in key:
        head, rest = key.split("/", 1)
        if head.endswith(PHASE_SUFFIX):  # sft_phase/train_loss -> train/sft_phase/loss: a phase's curves beside the rest
            section, _, tail = mlflow_metric_name(rest).partition("/")
            return f"{section}/{head}/{tail}" if tail else f"{head}/{section}"
        return key
    if key in SWEEP_NAMES:
        return SWEEP_NAMES[key]
    if key in TRAIN_CURVES:
        return f"train/{key}"
    if "." in key:
        head, rest = key.split(".", 1)
        for split in ("train", "val"):  # train_reward.json_valid -> train/reward/json_valid: a training curve's parts
            if head.startswith(f"{split}_") and head not in SECTIONS:
                return f"{split}/{head[len(split) + 1:]}/{rest.replace('.', '/')}"
        return f"{SECTIONS.get(head, 'eval/' + head)}/{rest.replace('.', '/')}"
    for split in ("train", "val"):
        if key.startswith(f"{split}_"):
            return f"{split}/{key[len(split) + 1:]}"
    return key


def mlflow_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """The same metrics under their grouped MLflow names."""
    return {mlflow_metric_name(k): v for k, v in metrics.items()}
