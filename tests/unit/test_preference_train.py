"""Preference objectives on a tiny model: DPO, ORPO and SFT-then-DPO lower their loss and save an adapter."""
import json

import pytest

from loraflow.schemas.config import LoraConfig, TrainConfig
from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.common.jsonl import write_jsonl
from loraflow.tasks.training.train import train_model


def _pairs(n: int) -> list[dict]:
    return [{"id": f"p{i}", "metadata": {}, "rejected": json.dumps({"category": "billing", "priority": "low"}),
             "messages": [{"role": "system", "content": "Answer in JSON."},
                          {"role": "user", "content": f"ticket {i}: my CloudDrive invoice is wrong, urgent"},
                          {"role": "assistant", "content": json.dumps({"category": "billing", "priority": "high"})}]}
            for i in range(n)]


@pytest.fixture
def pairs(tmp_path):
    """16 training and 8 validation pairs in tmp_path."""
    for name, part in (("train", slice(0, 16)), ("val", slice(16, None))):
        write_jsonl(tmp_path / f"{name}.jsonl", _pairs(24)[part])
    return tmp_path


def _history(path) -> list[dict]:
    return json.loads(open(path).read())


@pytest.mark.parametrize("objective, method", [("dpo", "lora"), ("dpo", "qlora"), ("orpo", "lora")])
def test_preference_training_lowers_the_loss_and_logs_rewards(tiny_model_path, pairs, objective, method):
    config = TrainConfig(objective=objective, method=method, learning_rate=5e-3, epochs=4, effective_batch_size=4,
                         micro_batch_size=4, logging_steps=1, early_stopping_patience=0)
    out = pairs / f"{objective}-{method}"
    result = train_model(str(tiny_model_path), str(pairs / "train.jsonl"), str(pairs / "val.jsonl"), LoraConfig(r=8),
                         config, 96, str(out))
    assert result.objective == objective and (out / "model" / "adapter" / "adapter_config.json").is_file()
    history = _history(result.log_history)
    losses = [h["loss"] for h in history if "loss" in h]
    assert len(losses) >= 8 and losses[-1] < losses[0]
    margins = [h["rewards/margins"] for h in history if "rewards/margins" in h]
    assert margins[-1] > margins[0]
    assert any("eval_rewards/accuracies" in h for h in history)
    assert list((out / "train" / "tensorboard").rglob("events.out.tfevents*"))


def test_dpo_reference_is_the_base_with_the_adapter_disabled(tiny_model_path, pairs):
    from peft import LoraConfig as PeftLoraConfig
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from loraflow.tasks.training.preference import build_preference_trainer, to_preference_examples
    from loraflow.tasks.training.speed import resolve_speed
    from loraflow.tasks.common.jsonl import read_jsonl

    model = AutoModelForCausalLM.from_pretrained(tiny_model_path)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_path)
    config = TrainConfig(objective="dpo", micro_batch_size=4, effective_batch_size=4)
    examples = to_preference_examples(read_jsonl(pairs / "train.jsonl"), "dpo", "train.jsonl")
    trainer = build_preference_trainer(model, tokenizer, config, 96, pairs / "ref", False, datasets.Dataset.from_list(examples),
                                       None, PeftLoraConfig(r=4, task_type="CAUSAL_LM"), [],
                                       resolve_speed(config, "cpu"))
    assert trainer.ref_model is None and list(trainer.model.peft_config) == ["default"]


def test_sft_then_dpo_continues_from_the_supervised_adapter(tiny_model_path, pairs):
    config = TrainConfig(objective="sft_then_dpo", learning_rate=5e-3, epochs=3, effective_batch_size=4,
                         micro_batch_size=4, logging_steps=1, early_stopping_patience=0)
    result = train_model(str(tiny_model_path), str(pairs / "train.jsonl"), str(pairs / "val.jsonl"), LoraConfig(r=8),
                         config, 96, str(pairs / "both"))
    assert result.objective == "sft_then_dpo"
    assert (pairs / "both" / "sft_phase" / "model" / "adapter" / "adapter_config.json").is_file()
    assert (pairs / "both" / "model" / "adapter" / "adapter_config.json").is_file()
    sft_losses = [h["loss"] for h in _history(result.sft_phase.log_history) if "loss" in h]
    dpo_history = _history(result.log_history)
    assert sft_losses[-1] < sft_losses[0] and any("rewards/margins" in h for h in dpo_history)
    assert "sft_train_loss" in result.metrics


def test_preference_objective_on_supervised_records_is_a_clear_error(tiny_model_path, tmp_path):
    records = [{k: v for k, v in r.items() if k != "rejected"} for r in _pairs(4)]
    write_jsonl(tmp_path / "train.jsonl", records)
    with pytest.raises(LoraflowError, match="train.objective=dpo"):
        train_model(str(tiny_model_path), str(tmp_path / "train.jsonl"), None, LoraConfig(), TrainConfig(objective="dpo"),
                    64, str(tmp_path))


def _margin_history(margins: list[float]) -> list[dict]:
    from tests.unit.test_diagnosis import healthy, history

    rows = history(healthy(len(margins)))
    for row, margin in zip((r for r in rows if "loss" in r), margins):
        row["rewards/margins"] = margin
    return rows


def test_diagnosis_flags_exploding_and_collapsing_reward_margins():
    from loraflow.tasks.training.diagnosis import diagnose

    rising = [0.05 * i for i in range(12)]
    assert diagnose(_margin_history(rising)) == []
    exploded = diagnose(_margin_history(rising + [35.0]))
    assert [f.code for f in exploded] == ["exploding_reward_margin"] and "preference_beta" in exploded[0].message
    faded = diagnose(_margin_history(rising + [0.05, 0.02, -0.01]))
    assert [f.code for f in faded] == ["collapsing_reward_margin"] and faded[0].data["peak"] == pytest.approx(0.55)
    never = diagnose(_margin_history([-0.01 * i for i in range(12)]))
    assert [f.code for f in never] == ["collapsing_reward_margin"]


@pytest.mark.parametrize(("run", "flagged"), [("run1_dpo_phase", True), ("run2A_dpo_phase_lr1e-4", False),
                                              ("run2B_dpo_phase_lr1e-3_sft_weight1", False)])
def test_diagnosis_flags_chosen_answers_losing_likelihood_on_the_measured_runs(run, flagged):
    """The DPO phases measured on SmolLM2 (benchmarks/RESULTS.md): the one whose greedy answers broke is flagged."""
    from loraflow.tasks.training.diagnosis import diagnose
    from tests.conftest import REPO

    history = json.loads((REPO / "benchmarks" / "results" / f"preference_bench_2026-11-30_{run}_log_history.json").read_text())
    found = [f for f in diagnose(history) if f.code == "falling_chosen_reward"]
    assert bool(found) == flagged
    if flagged:
        assert "train.preference_sft_weight" in found[0].message and all(v < -1.0 for v in found[0].data["recent"])


def test_pairs_longer_than_max_length_are_a_clear_error(tiny_model_path, pairs):
    config = TrainConfig(objective="dpo", micro_batch_size=4, effective_batch_size=4)
    with pytest.raises(LoraflowError, match="model.max_length=4"):
        train_model(str(tiny_model_path), str(pairs / "train.jsonl"), None, LoraConfig(), config, 4, str(pairs / "short"))


def _series(client, run_id: str, name: str) -> list[tuple[int, float]]:
    return [(m.step, m.value) for m in client.get_metric_history(run_id, name)]


def _tensorboard_steps(folder, tag: str) -> list[int]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    [events] = {p.parent for p in folder.rglob("events.out.tfevents*")}
    accumulator = EventAccumulator(str(events))
    accumulator.Reload()
    return [s.step for s in accumulator.Scalars(tag)]


def test_sft_then_dpo_phases_log_from_step_one_in_their_own_series(tiny_model_path, pairs):
    """MLflow: the supervised phase as sft_phase/<name>, the DPO phase under the plain names, no step twice in a series;
    TensorBoard: one folder per phase, each counting from its first step."""
    from mlflow import MlflowClient

    from loraflow.schemas.results import TrackingRun
    from loraflow.tasks.tracking.runs import MlflowMetricsCallback

    uri = f"sqlite:///{pairs / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    run_id = client.create_run(client.create_experiment("phases")).info.run_id
    config = TrainConfig(objective="sft_then_dpo", learning_rate=5e-3, preference_learning_rate=1e-3, epochs=2,
                         effective_batch_size=4, micro_batch_size=4, logging_steps=1, early_stopping_patience=0)
    result = train_model(str(tiny_model_path), str(pairs / "train.jsonl"), None, LoraConfig(r=8), config, 96,
                         str(pairs / "phases"), [MlflowMetricsCallback(TrackingRun(uri, run_id))])

    sft, dpo = _series(client, run_id, "train/sft_phase/loss"), _series(client, run_id, "train/loss")
    assert [step for step, _ in sft] == list(range(1, 9)) and [step for step, _ in dpo] == list(range(1, 9))
    sft_history = [h["loss"] for h in _history(result.sft_phase.log_history) if "loss" in h]
    assert [value for _, value in sft] == pytest.approx(sft_history)  # the supervised losses, not the DPO ones
    assert [step for step, _ in _series(client, run_id, "train/reward_margin")] == list(range(1, 9))
    assert not _series(client, run_id, "train/sft_phase/reward_margin")
    assert _tensorboard_steps(pairs / "phases" / "sft_phase" / "train" / "tensorboard", "train/loss") == list(range(1, 9))
    assert _tensorboard_steps(pairs / "phases" / "train" / "tensorboard", "train/loss") == list(range(1, 9))
    # each phase at its own rate: train.learning_rate for the supervised one, preference_learning_rate for DPO
    sft_rates, dpo_rates = (_series(client, run_id, name) for name in ("train/sft_phase/learning_rate", "train/learning_rate"))
    assert max(v for _, v in dpo_rates) <= 1e-3 < max(v for _, v in sft_rates) <= 5e-3


def test_learning_rate_in_force_per_objective():
    config = TrainConfig(learning_rate=1e-3, preference_learning_rate=1e-4)
    rates = {o: config.model_copy(update={"objective": o}).resolved_learning_rate for o in ("sft", "dpo", "orpo", "sft_then_dpo")}
    assert rates == {"sft": 1e-3, "dpo": 1e-4, "orpo": 1e-4, "sft_then_dpo": 1e-3}  # sft_then_dpo: each phase its own
    assert TrainConfig(objective="dpo", learning_rate=1e-3).resolved_learning_rate == 1e-3
    assert TrainConfig(objective="dpo").resolved_learning_rate == 2e-4


def test_preference_sft_weight_adds_nll_on_the_chosen_answer(tiny_model_path, pairs):
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from loraflow.tasks.common.jsonl import read_jsonl
    from loraflow.tasks.training.lora_setup import peft_lora_config
    from loraflow.tasks.training.preference import build_preference_trainer, to_preference_examples
    from loraflow.tasks.training.speed import resolve_speed

    examples = datasets.Dataset.from_list(to_preference_examples(read_jsonl(pairs / "train.jsonl"), "dpo", "train.jsonl"))

    def trainer(weight: float):
        config = TrainConfig(objective="dpo", micro_batch_size=4, effective_batch_size=4, preference_sft_weight=weight)
        model = AutoModelForCausalLM.from_pretrained(tiny_model_path)
        return build_preference_trainer(model, AutoTokenizer.from_pretrained(tiny_model_path), config, 96, pairs / f"w{weight}",
                                        False, examples, None, peft_lora_config(model, LoraConfig(r=4)), [],
                                        resolve_speed(config, "cpu"))

    assert trainer(0.0).args.loss_type == ["sigmoid"]
    weighted = trainer(0.5)
    assert weighted.args.loss_type == ["sigmoid", "sft"] and weighted.args.loss_weights == [1.0, 0.5]
    # the loss on a batch is DPO's plus half the chosen answers' mean token NLL
    batch = weighted._prepare_inputs(next(iter(weighted.get_train_dataloader())))
    with __import__("torch").no_grad():
        combined = float(weighted.compute_loss(weighted.model, batch))
        weighted.loss_types, weighted.loss_weights = ["sigmoid"], [1.0]
        dpo_only = float(weighted.compute_loss(weighted.model, batch))
    assert combined > dpo_only
