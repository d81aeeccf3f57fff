"""trl's SFTTrainer with its per-micro-batch training metrics kept on the GPU until a logging step.

trl 1.16 computes four metrics in every training micro-batch (token count, entropy, top-1 accuracy, trained tokens),
each through `accelerator.gather_for_metrics(...)` followed by `.item()`: one cross-rank collective and one host-GPU
sync per metric per micro-batch. Under DDP that makes every rank wait for the slowest at each micro-batch (two H200s
scaled 1.64-1.75x at 2048x2 for it, benchmarks/RESULTS.md); on one GPU the `.item()` stops the host from queueing the
backward pass while the forward still runs. Here the same per-micro-batch sums stay on the device and are reduced
across ranks once per logging step; the logged numbers are the ones trl logs (per-micro-batch ratios, averaged over
the micro-batches since the last log; the token count summed over ranks).

Only the default training loss path is deferred (trl's fused LM head, no `compute_loss_func`, label smoothing,
sequence parallelism or MoE auxiliary loss); evaluation and every other path run trl's own `compute_loss`.
"""
import torch
from trl import SFTTrainer


class DeferredMetricsSFTTrainer(SFTTrainer):
    """SFTTrainer that gathers its training metrics across ranks only when it logs (see the module docstring)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._pending: list[tuple[torch.Tensor, ...]] = []  # (label tokens, entropy sum, correct, input tokens) per micro-batch

    def _defers(self, return_outputs: bool) -> bool:
        """Whether this compute_loss call takes the deferred path (trl's default training branch)."""
        parallelism = getattr(self.accelerator, "parallelism_config", None)
        sequence_parallel = parallelism is not None and getattr(parallelism, "sp_enabled", False)
        return (self.model.training and not return_outputs and self.compute_loss_func is None
                and self.label_smoother is None and not self.aux_loss_enabled and not sequence_parallel)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """trl's default training loss (fused LM head, mean over trained tokens), metrics left on the device."""
        if not self._defers(return_outputs):
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)
        inputs["use_cache"] = False
        outputs = model(**inputs, fused_lm_head=True)
        per_token_loss = -outputs.log_probs  # zero on ignored positions
        if self.args.loss_type == "dft":
            per_token_loss = per_token_loss * outputs.log_probs.exp().detach()
        num_tokens = outputs.label_mask.sum() if num_items_in_batch is None else num_items_in_batch
        loss = per_token_loss.sum() / torch.as_tensor(num_tokens).clamp(min=1)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * (self.accelerator.num_processes // self.get_tp_size())
        with torch.no_grad():
            if "attention_mask" in inputs:
                seen = inputs["attention_mask"].sum()
            elif "position_ids" in inputs:  # padding-free batches carry position_ids instead of a mask
                seen = torch.tensor(inputs["position_ids"].size(1), device=inputs["position_ids"].device)
            else:
                raise ValueError("Expected 'attention_mask' or 'position_ids' in inputs.")
            self._pending.append((outputs.label_mask.sum(), outputs.entropy.detach().sum(), outputs.is_top1.sum(), seen))
        return loss

    def pending_local_tokens(self) -> int:
        """Input tokens of this rank's micro-batches since the last log (benchmarks read it at step ends)."""
        return int(sum(int(p[3]) for p in self._pending))

    def _flush_pending(self) -> None:
        """Reduce the pending sums across ranks (two collectives) and append trl's metrics for each micro-batch."""
        if not self._pending:
            return
        counts = torch.stack([torch.stack([p[0], p[2], p[3]]).to(torch.int64) for p in self._pending])
        entropy = torch.stack([p[1] for p in self._pending])
        self._pending = []
        if self.accelerator.num_processes > 1:
            counts = self.accelerator.reduce(counts, reduction="sum")
            entropy = self.accelerator.reduce(entropy, reduction="sum")
        valid, correct, seen = counts.unbind(1)
        # The same arithmetic as trl (entropy sum / label count in the entropy's dtype; accuracy in the default float)
        # so the logged values are identical: one ratio per micro-batch, 0 where a micro-batch had no label tokens.
        ratios = torch.where(valid > 0, entropy / valid.clamp(min=1), 0.0).tolist()
        accuracies = torch.where(valid > 0, correct / valid.clamp(min=1), 0.0).tolist()
        metrics = self._metrics["train"]
        metrics["entropy"].extend(ratios)
        metrics["mean_token_accuracy"].extend(accuracies)
        for tokens in seen.tolist():
            self._total_train_tokens += tokens // self._tp_size
        metrics["num_tokens"] = [self._total_train_tokens]

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Flush the deferred training metrics (every rank calls log), then log as trl does."""
        if self.model.training:  # trl logs the "train" metrics then
            self._flush_pending()
        super().log(logs, start_time)
