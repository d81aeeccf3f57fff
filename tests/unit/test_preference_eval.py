"""Held-out preference accuracy on a tiny model before and after DPO, and the gate's preference rules."""
import pytest

from loraflow.schemas.results import TrackingRun
from loraflow.schemas.config import LoraConfig, TrainConfig
from loraflow.tasks.common.jsonl import write_jsonl
from loraflow.tasks.evaluation.preference import preference_summary, score_pairs
from loraflow.tasks.evaluation.promotion import should_promote
from loraflow.tasks.training.train import train_model
from tests.unit.test_preference_train import _pairs
from tests.unit.test_promotion import CARD, CONFIG, _cmp, _fails, _label, _summary


def test_dpo_raises_held_out_preference_accuracy_and_the_reference_is_the_base(tiny_model_path, tmp_path):
    records = _pairs(24)
    write_jsonl(tmp_path / "train.jsonl", records[:16])
    write_jsonl(tmp_path / "test.jsonl", records[16:])
    config = TrainConfig(objective="dpo", learning_rate=5e-3, epochs=4, effective_batch_size=4, micro_batch_size=4,
                         logging_steps=1, early_stopping_patience=0)
    trained = train_model(str(tiny_model_path), str(tmp_path / "train.jsonl"), None, LoraConfig(r=8), config, 96,
                          str(tmp_path / "run"))
    base = score_pairs(str(tiny_model_path), None, str(tmp_path / "test.jsonl"))
    candidate = score_pairs(str(tiny_model_path), trained.adapter_path, str(tmp_path / "test.jsonl"))
    assert base["n"] == candidate["n"] == 8 and "accuracy_vs_reference" not in base
    assert candidate["accuracy"] == 1.0 and candidate["accuracy_vs_reference"] == 1.0
    assert candidate["mean_margin"] > base["mean_margin"]
    # the adapter switched off scores exactly as the base model does
    assert candidate["reference_accuracy"] == base["accuracy"]
    summary = preference_summary({"candidate": candidate, "base": base, "champion": None})
    assert summary.accuracy == {"candidate": 1.0, "base": base["accuracy"]}
    assert summary.mlflow_metrics["candidate.preference_accuracy_vs_reference"] == 1.0


def test_supervised_test_split_has_no_preference_score(tiny_model_path, tmp_path):
    write_jsonl(tmp_path / "test.jsonl", [{k: v for k, v in r.items() if k != "rejected"} for r in _pairs(2)])
    assert score_pairs(str(tiny_model_path), None, str(tmp_path / "test.jsonl")) is None


def test_gate_requires_preference_accuracy_not_to_fall_and_the_task_metric_not_to_regress():
    good = should_promote(_summary(preference={"n": 8, "accuracy": {"candidate": 0.9, "base": 0.3}}), CARD, CONFIG)
    assert good.promote, _fails(good)
    lines = [r for r in good.reasons if "preference" in r]
    assert lines[0].startswith("pass: held-out preference accuracy: candidate 0.900 vs base 0.300")
    assert lines[1].startswith("pass: preference tuning does not regress rougeL on the frozen test set")
    fell = should_promote(_summary(champion=_label(0.68, 0.69, 0.67),
                                   preference={"n": 8, "accuracy": {"candidate": 0.6, "base": 0.3, "champion": 0.8}}), CARD, CONFIG)
    assert not fell.promote and "must not fall below champion" in _fails(fell)
    regressed = should_promote(_summary(champion=_label(0.75, 0.70, 0.70),
                                        comparisons={"base": _cmp(0.3, 0.2, 0.4), "champion": _cmp(-0.05, -0.09, -0.01)},
                                        preference={"n": 8, "accuracy": {"candidate": 0.95, "base": 0.3, "champion": 0.5}}),
                               CARD, CONFIG)
    assert "fail: preference tuning does not regress rougeL" in _fails(regressed)


@pytest.mark.parametrize("preference", [None, {"n": 0, "accuracy": {}}])
def test_gate_says_nothing_about_preferences_without_pairs(preference):
    decision = should_promote(_summary(preference=preference), CARD, CONFIG)
    assert decision.promote and not any("preference" in r for r in decision.reasons)


def test_reward_metrics_stream_to_mlflow_under_their_own_names(tmp_path):
    from types import SimpleNamespace

    from loraflow.tasks.tracking.runs import MlflowMetricsCallback, client, ensure_experiment

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_id = client(uri).create_run(ensure_experiment(uri, "prefs")).info.run_id
    logs = {"loss": 0.6, "rewards/chosen": 0.2, "rewards/rejected": -0.1, "rewards/margins": 0.3, "rewards/accuracies": 0.75,
            "eval_rewards/margins": 0.25}
    MlflowMetricsCallback(TrackingRun(uri, run_id)).on_log(None, SimpleNamespace(global_step=3, num_input_tokens_seen=0), None, logs)
    metrics = client(uri).get_run(run_id).data.metrics
    assert {k: metrics[k] for k in ("train/reward_chosen", "train/reward_rejected", "train/reward_margin",
                                    "train/preference_accuracy", "val/reward_margin")} == {
        "train/reward_chosen": 0.2, "train/reward_rejected": -0.1, "train/reward_margin": 0.3,
        "train/preference_accuracy": 0.75, "val/reward_margin": 0.25}
