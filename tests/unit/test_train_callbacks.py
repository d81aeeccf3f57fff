"""TrainingWatch on a real trl SFTTrainer with the tiny model: spikes name their records, NaN stops at once."""
import json

import pytest
from transformers import TrainerCallback

from loraflow.schemas.config.train import TrainConfig
from loraflow.tasks.training.diagnosis import Thresholds
from loraflow.tasks.training.callbacks import TrainingWatch
from tests.unit.train_watch_support import make_trainer, records, tiny_model

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return tiny_model(tmp_path_factory.mktemp("models"), records(bad=True))


def test_every_step_maps_back_to_its_record_ids_and_a_spike_names_the_bad_record(model_path, tmp_path):
    rows = records(bad=True)
    train = TrainConfig(micro_batch_size=1, effective_batch_size=1, max_steps=len(rows), logging_steps=1,
                        learning_rate=3e-2, warmup_ratio=0.0, lr_scheduler="constant_with_warmup", seed=42)
    # The tiny model's loss falls slowly, so the random-text record stands out by ~15%, not the default 50%.
    watch = TrainingWatch(thresholds=Thresholds(spike_ratio=1.1), report_dir=tmp_path / "report")
    trainer = make_trainer(model_path, rows, tmp_path / "out", train, [watch])
    watch.attach(trainer)
    trainer.train()

    steps = list(watch._steps)
    assert [s for s, _, _ in steps] == list(range(1, len(rows) + 1))
    # one epoch, one record per step: every record trained exactly once, each step named by its record
    assert sorted(rid for _, _, ids in steps for rid in ids) == sorted(r["id"] for r in rows)
    bad_step = next(s for s, _, ids in steps if ids == ["bad"])
    assert bad_step >= 5, "the sampler put the bad record too early to judge (change the seed)"
    spikes = [f for f in watch.findings if f.code == "loss_spike" and f.step == bad_step]
    assert len(spikes) == 1 and spikes[0].data["record_ids"] == ["bad"]
    assert "records in that batch: bad" in spikes[0].message
    report = json.loads((tmp_path / "report" / "diagnosis.json").read_text())
    assert any(f["code"] == "loss_spike" and f["step"] == bad_step for f in report)
    assert "loss_spike" in (tmp_path / "report" / "diagnosis.md").read_text()


class PoisonAt(TrainerCallback):
    """Makes the forward pass of one optimizer step produce NaN, and remembers the adapter weights before it."""

    def __init__(self, step: int):
        self.step, self.active, self.before = step, False, None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        embeddings = model.get_input_embeddings()
        embeddings.register_forward_hook(lambda module, inputs, output: output * float("nan") if self.active else output)

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        self.active = state.global_step + 1 == self.step
        if self.active:
            self.before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def test_nan_stops_at_once_without_updating_or_checkpointing_and_names_the_batch(model_path, tmp_path):
    rows = records()
    train = TrainConfig(micro_batch_size=2, effective_batch_size=4, max_steps=6, logging_steps=1, seed=1)
    poison = PoisonAt(step=3)
    watch = TrainingWatch(report_dir=tmp_path / "report")
    trainer = make_trainer(model_path, rows, tmp_path / "out", train, [poison, watch], save_steps=1)
    watch.attach(trainer)
    trainer.train()

    assert trainer.state.global_step == 3  # stopped at once, not at max_steps
    assert watch.stopped is not None and watch.stopped.code == "non_finite" and watch.stopped.step == 3
    ids = watch.stopped.data["record_ids"]
    assert len(ids) == 4 and set(ids) <= {r["id"] for r in rows}  # the micro-batches of that step
    after = {n: p.detach() for n, p in trainer.model.named_parameters() if p.requires_grad}
    for name, value in poison.before.items():
        assert value.isfinite().all() and (after[name] == value).all(), f"{name} changed by the NaN step"
    saved = sorted(p.name for p in (tmp_path / "out").glob("checkpoint-*"))
    assert saved == ["checkpoint-1", "checkpoint-2"]  # nothing written for the broken step
    assert "| critical | non_finite | 3 |" in (tmp_path / "report" / "diagnosis.md").read_text()
