"""`train.schedule: auto`: epochs, batch and learning rate from the number of training records and answer classes.

The rule, and the measurements behind it (benchmarks/RESULTS.md, "What each lever gave" and the real-data table):
- Few records (up to SMALL_DATA records). What teaches a small model the classes is the number of optimizer steps,
  not epochs of data: on the quickstart, the same 2 epochs as 54, 106 and 212 steps gave priority accuracy 0.41, 0.79,
  1.00. So steps hold SMALL_BATCH examples at SMALL_LR (LoRA; a tenth of it for full fine-tuning), and there are
  STEPS_PER_CLASS steps for every answer class the task card declares (at least MIN_STEPS), spread over
  MIN_EPOCHS..MAX_EPOCHS epochs: more classes need more steps to see each one often enough, and early stopping ends a
  run that has learned them sooner.
- More records: the fine-tuning guide's defaults (16-example steps at 2e-4 for LoRA, 2e-5 full, 3 epochs), which a
  large set on a GPU is measured with.
A key the config file sets is kept (`TrainConfig.schedule_from_data` lists the keys it left open).
"""
import math

from loraflow.schemas.config.train import TrainConfig

SMALL_DATA = 2000
SMALL_BATCH = 2
SMALL_LR = 1e-3
STEPS_PER_CLASS = 25
MIN_STEPS = 200
MIN_EPOCHS, MAX_EPOCHS = 2, 10
LARGE = {"effective_batch_size": 16, "micro_batch_size": 4, "epochs": 3.0}


def declared_classes(fields: dict) -> int:
    """Answer classes the task card declares: the sum over categorical fields of their values (text fields count 0)."""
    return sum(len(values) for values in (fields or {}).values() if not isinstance(values, str))


def auto_schedule(n_train: int, classes: int, method: str) -> tuple[dict, str]:
    """The schedule the rule picks for `n_train` records and `classes` answer classes, and one line saying why."""
    full = method == "full"
    if n_train > SMALL_DATA:
        values = {**LARGE, "learning_rate": 2e-5 if full else 2e-4}
        return values, f"{n_train} training records > {SMALL_DATA}: the guide's 16-example steps for 3 epochs"
    steps = max(MIN_STEPS, STEPS_PER_CLASS * classes)
    epochs = min(MAX_EPOCHS, max(MIN_EPOCHS, math.ceil(steps * SMALL_BATCH / max(n_train, 1))))
    values = {"effective_batch_size": SMALL_BATCH, "micro_batch_size": SMALL_BATCH, "epochs": float(epochs),
              "learning_rate": SMALL_LR / 10 if full else SMALL_LR}
    return values, (f"{n_train} training records, {classes} declared answer classes: ~{steps} steps of {SMALL_BATCH} examples "
                    f"({STEPS_PER_CLASS} per class, at least {MIN_STEPS}) = {epochs} epochs ({MIN_EPOCHS}-{MAX_EPOCHS})")


def resolve_schedule(train: TrainConfig, n_train: int, classes: int) -> tuple[TrainConfig, str]:
    """The train config with the auto schedule filled in where the file left it open, and the note for the run.

    train.schedule=fixed (or every key set) returns the config as it is.
    """
    open_keys = [k for k in train.schedule_from_data if k != "micro_batch_size" or "effective_batch_size" in train.schedule_from_data]
    if train.schedule != "auto" or not train.schedule_from_data:
        return train, "train.schedule fixed: the configured epochs, batch and learning rate"
    values, why = auto_schedule(n_train, classes, train.trained_method)
    update = {k: values[k] for k in open_keys}
    effective = update.get("effective_batch_size", train.effective_batch_size)
    micro = update.get("micro_batch_size", train.micro_batch_size)
    if effective % micro:  # a micro-batch the file fixed: the effective batch becomes its nearest multiple
        update["effective_batch_size"] = max(micro, round(effective / micro) * micro)
    update["schedule"] = "fixed"  # resolved: nothing downstream changes it again
    chosen = ", ".join(f"{k}={v:g}" for k, v in update.items() if k != "schedule")
    kept = [k for k in ("epochs", "effective_batch_size", "micro_batch_size", "learning_rate") if k not in update]
    note = f"train.schedule auto -> {chosen or 'nothing left open'} ({why})" + (f"; kept from the config: {', '.join(kept)}" if kept else "")
    return train.model_copy(update=update), note
