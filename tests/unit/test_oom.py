"""OOM fallback: halve the micro-batch, double accumulation, resume from the last checkpoint; unit and real-trainer."""
import pytest
import torch
from transformers import TrainerCallback

from loraflow.schemas.config.train import TrainConfig
from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.training.oom import is_cuda_oom, run_with_oom_fallback
from loraflow.tasks.training.resume import last_good_checkpoint
from tests.unit.train_watch_support import make_trainer, records, tiny_model

pytestmark = pytest.mark.filterwarnings("ignore")


def test_is_cuda_oom_recognises_torch_and_cuda_messages():
    assert is_cuda_oom(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_cuda_oom(RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling cublasCreate(handle)"))
    assert not is_cuda_oom(RuntimeError("shape mismatch"))
    assert not is_cuda_oom(ValueError("CUDA out of memory"))


def test_fallback_halves_micro_batch_keeps_the_effective_batch_and_logs_each_step():
    tried, events = [], []

    def attempt(micro_batch, accumulation):
        tried.append((micro_batch, accumulation))
        if micro_batch > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")
        return "done"

    assert run_with_oom_fallback(attempt, 8, 2, on_fallback=events.append) == "done"
    assert tried == [(8, 2), (4, 4), (2, 8)]
    assert [(e.from_micro_batch, e.micro_batch, e.accumulation) for e in events] == [(8, 4, 4), (4, 2, 8)]
    assert events[0].error.startswith("CUDA out of memory")


def test_out_of_memory_at_micro_batch_1_is_a_clear_error_and_other_errors_pass_through():
    def always_oom(micro_batch, accumulation):
        raise torch.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(LoraflowError, match="even at micro-batch 1"):
        run_with_oom_fallback(always_oom, 2, 8)

    def broken(micro_batch, accumulation):
        raise KeyError("not memory")

    with pytest.raises(KeyError):
        run_with_oom_fallback(broken, 4, 4)


class OomAfter(TrainerCallback):
    """Raises CUDA OOM at the start of optimizer step `step` while the micro-batch is above 1 (as a big batch would)."""

    def __init__(self, step: int):
        self.step = step

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step + 1 == self.step and args.per_device_train_batch_size > 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 4.00 GiB")


def test_real_trainer_falls_back_and_resumes_from_the_last_checkpoint(tmp_path):
    rows = records(24)
    model_path = tiny_model(tmp_path / "models", rows)
    out = tmp_path / "out"
    resumed, finished = [], {}

    def attempt(micro_batch, accumulation):
        train = TrainConfig(micro_batch_size=micro_batch, effective_batch_size=micro_batch * accumulation,
                            max_steps=5, logging_steps=1, seed=3)
        trainer = make_trainer(model_path, rows, out, train, [OomAfter(step=4)], save_steps=2)
        checkpoint = last_good_checkpoint(out)
        resumed.append(checkpoint and checkpoint.rsplit("/", 1)[-1])
        trainer.train(resume_from_checkpoint=checkpoint)
        finished.update(step=trainer.state.global_step, batch=trainer.args.per_device_train_batch_size,
                        accumulation=trainer.args.gradient_accumulation_steps)
        return trainer.state.global_step

    events = []
    assert run_with_oom_fallback(attempt, 4, 1, on_fallback=events.append) == 5
    assert [(e.micro_batch, e.accumulation) for e in events] == [(2, 2), (1, 4)]
    # the first attempt started fresh; each retry resumed from checkpoint-2 instead of starting over
    assert resumed == [None, "checkpoint-2", "checkpoint-2"]
    assert finished == {"step": 5, "batch": 1, "accumulation": 4}
