"""Watching a training run live: diagnosis on every log, NaN/inf stop, and the record ids behind each batch."""
import json
import logging
import math
from collections import deque
from collections.abc import Callable
from pathlib import Path

from transformers import TrainerCallback

from loraflow.tasks.training.diagnosis import Finding, Thresholds, diagnose, render_diagnosis_markdown
from loraflow.tasks.training.diagnosis_rl import diagnose_rl

logger = logging.getLogger("loraflow.train")


def _log_finding(finding: Finding) -> None:
    logger.warning("diagnosis [%s] %s", finding.severity, finding.message)


class TrainingWatch(TrainerCallback):
    """Runs the diagnosis on every log, stops at once on NaN/inf, and names the records of suspect batches.

    Pass it in the trainer's callbacks and call `attach(trainer)` once the trainer exists (it indexes the
    tokenized train set so batches map back to record ids); without `attach` everything but the ids still works.
    """

    def __init__(self, on_finding: Callable[[Finding], None] | None = None, thresholds: Thresholds | None = None,
                 report_dir: str | Path | None = None, keep_steps: int = 1000):
        self.on_finding = on_finding or _log_finding
        self.thresholds = thresholds or Thresholds()
        self.report_dir = Path(report_dir) if report_dir else None
        self.findings: list[Finding] = []
        self.stopped: Finding | None = None  # the non-finite finding that stopped training
        self._seen: set[str] = set()
        self._ids_by_tokens: dict[int, list[str]] = {}
        self._handle = None
        self._micro: list[tuple[object, list[str]]] = []  # (loss tensor, record ids) of the current optimizer step
        self._steps: deque[tuple[int, float, list[str]]] = deque(maxlen=keep_steps)
        self._batch_records: dict[int, list[str]] = {}
        self._last_logged_step = 0

    # -- wiring -------------------------------------------------------------------------------------------
    def attach(self, trainer) -> "TrainingWatch":
        """Index the trainer's tokenized train set by token sequence and hook its model's forward pass."""
        dataset = trainer.train_dataset
        self._ids_by_tokens = {}
        self._micro = []  # a failed attempt (OOM) may have left a half-accumulated step behind
        columns = getattr(dataset, "column_names", None) or []
        if "id" in columns and "input_ids" in columns:
            for record_id, tokens in zip(dataset["id"], dataset["input_ids"]):
                self._ids_by_tokens.setdefault(hash(tuple(tokens)), []).append(str(record_id))
        self._hook(trainer.model)
        return self

    def _hook(self, model) -> None:
        if self._handle is not None:
            self._handle.remove()  # a retried attempt (OOM fallback) brings a fresh model
        self._handle = model.register_forward_hook(self._on_forward, with_kwargs=True)

    def _on_forward(self, module, args, kwargs, output) -> None:
        if not module.training:
            return
        loss = output.get("loss") if isinstance(output, dict) else getattr(output, "loss", None)
        ids = self._record_ids(kwargs.get("input_ids"), kwargs.get("attention_mask"), kwargs.get("position_ids"))
        self._micro.append((loss.detach() if loss is not None else None, ids))

    def _record_ids(self, input_ids, attention_mask, position_ids) -> list[str]:
        """Record ids of the sequences in a micro-batch (padded rows, or packed rows split where positions restart)."""
        if input_ids is None or not self._ids_by_tokens:
            return []
        rows = input_ids.tolist()
        sequences = []
        if attention_mask is not None:
            for row, mask in zip(rows, attention_mask.tolist()):
                sequences.append([t for t, keep in zip(row, mask) if keep])
        elif position_ids is not None:
            for row, positions in zip(rows, position_ids.tolist()):
                starts = [i for i, p in enumerate(positions) if p == 0] + [len(row)]
                sequences += [row[a:b] for a, b in zip(starts, starts[1:])]
        else:
            sequences = rows
        found = []
        for tokens in sequences:
            found += self._ids_by_tokens.get(hash(tuple(tokens)), [])
        return found

    # -- trainer events -----------------------------------------------------------------------------------
    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if self._handle is None and model is not None:
            self._hook(model)
        self._last_logged_step = state.global_step

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        import torch

        step = state.global_step + 1
        losses = [loss for loss, _ in self._micro if loss is not None]
        step_ids = [rid for _, ids in self._micro for rid in ids]
        step_loss = float(torch.stack([l.float() for l in losses]).sum()) if losses else None
        grads = [p.grad for p in model.parameters() if p.grad is not None] if model is not None else []
        grad_norm = float(torch.nn.utils.get_total_norm(grads)) if grads else None
        bad_ids = [rid for loss, ids in self._micro if loss is not None and not math.isfinite(float(loss)) for rid in ids]
        self._micro = []
        if step_loss is not None and math.isfinite(step_loss):
            self._steps.append((step, step_loss, step_ids))
        if all(v is None or math.isfinite(v) for v in (step_loss, grad_norm)) or self.stopped:
            return
        # Drop this update so the weights stay those of the last good step; then stop.
        for parameter in model.parameters():
            parameter.grad = None
        suspects = bad_ids or step_ids
        what = "loss" if step_loss is None or not math.isfinite(step_loss) else "gradient norm"
        self.stopped = Finding(
            "non_finite", "critical",
            f"{what} became NaN/inf at step {step}: training stopped before the update, so the weights and the last "
            "checkpoint stay good; lower the learning rate, keep clipping on, prefer bf16 over fp16"
            + (f"; records in that batch: {', '.join(suspects[:20])}" if suspects else ""),
            step, {"metric": what, "record_ids": suspects, "loss": step_loss, "grad_norm": grad_norm},
        )
        self._emit(self.stopped)
        control.should_training_stop = True

    def on_step_end(self, args, state, control, **kwargs):
        if self.stopped:
            # No checkpoint or evaluation of the step that went wrong.
            control.should_save = False
            control.should_evaluate = False

    def on_log(self, args, state, control, logs=None, **kwargs):
        step = state.global_step
        window = [s for s in self._steps if self._last_logged_step < s[0] <= step]
        if window:
            # A spike in the averaged log points at the worst optimizer step since the previous log.
            self._batch_records[step] = max(window, key=lambda s: s[1])[2]
        self._last_logged_step = step
        found = diagnose(state.log_history, self.thresholds, self._batch_records) + diagnose_rl(state.log_history)
        for finding in found:
            if finding.key in self._seen or (finding.code == "non_finite" and self.stopped):
                continue
            self._emit(finding)
            if finding.code == "non_finite":
                self.stopped = finding
                control.should_training_stop = True

    def on_train_end(self, args, state, control, **kwargs):
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        self.write_report()

    # -- output -------------------------------------------------------------------------------------------
    def _emit(self, finding: Finding) -> None:
        self.findings.append(finding)
        self._seen.add(finding.key)
        self.on_finding(finding)
        self.write_report()

    def write_report(self) -> None:
        """Write diagnosis.md and diagnosis.json into report_dir (kept current while training runs)."""
        if self.report_dir is None:
            return
        self.report_dir.mkdir(parents=True, exist_ok=True)
        (self.report_dir / "diagnosis.md").write_text(render_diagnosis_markdown(self.findings), encoding="utf-8")
        data = [f.to_dict() for f in self.findings]
        (self.report_dir / "diagnosis.json").write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
