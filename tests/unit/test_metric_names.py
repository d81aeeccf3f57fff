"""MLflow metric names grouped with `/`: one mapping at log time, for every stage's flat keys."""
from types import SimpleNamespace

import pytest

from loraflow.schemas.results import TrackingRun
from loraflow.tasks.tracking.metric_names import mlflow_metric_name


@pytest.mark.parametrize("key, name", [
    ("train_loss", "train/loss"), ("val_loss", "val/loss"), ("learning_rate", "train/learning_rate"),
    ("grad_norm", "train/grad_norm"), ("tokens_per_second", "train/tokens_per_second"), ("epoch", "train/epoch"),
    ("train_token_accuracy", "train/token_accuracy"), ("val_reward_margin", "val/reward_margin"),
    ("train_reward", "train/reward"), ("train_reward.json_valid", "train/reward/json_valid"),
    ("val_reward.field_category", "val/reward/field_category"), ("train_kl", "train/kl"),
    ("grpo_phase/train_reward.rejected", "train/grpo_phase/reward/rejected"),
    ("candidate.reward.field_priority", "eval/candidate/reward/field_priority"),
    ("sft_phase/train_loss", "train/sft_phase/loss"), ("sft_phase/learning_rate", "train/sft_phase/learning_rate"),
    ("train_summary.mean_train_loss_all_steps", "train/summary/mean_train_loss_all_steps"),
    ("candidate.field.category.accuracy", "eval/candidate/field/category/accuracy"),
    ("base.json_field_score", "eval/base/json_field_score"), ("base.bleu", "eval/base/bleu"),
    ("majority.field.priority.macro_f1", "eval/majority/field/priority/macro_f1"),
    # a baseline label the mapping has never heard of is an evaluation number like any other
    ("classical.field.category.accuracy", "eval/classical/field/category/accuracy"),
    ("candidate_vs_majority.field.x.macro_f1.diff", "eval/candidate_vs_majority/field/x/macro_f1/diff"),
    ("candidate_vs_base.json_field_score.ci_low", "eval/candidate_vs_base/json_field_score/ci_low"),
    ("candidate.zh.json_field_score", "eval/candidate/zh/json_field_score"),
    ("judge.accuracy.mean", "eval/judge/accuracy/mean"), ("human.n_raters", "eval/human/n_raters"),
    ("data.removed.exact_duplicate", "data/removed/exact_duplicate"), ("data.kept", "data/kept"),
    ("estimate.peak_gib", "estimate/peak_gib"), ("merge.max_logit_diff", "deploy/merge/max_logit_diff"),
    ("variant.int8.drop", "deploy/variant/int8/drop"),
    ("best_val_loss", "val/best_loss"), ("trial_val_loss", "val/trial_loss"),
    ("train/loss", "train/loss"), ("eval/base/bleu", "eval/base/bleu"),  # already grouped: kept
])
def test_each_flat_key_gets_its_section(key, name):
    assert mlflow_metric_name(key) == name
    assert mlflow_metric_name(name) == name  # mapping twice changes nothing


def test_logged_metrics_and_live_training_curves_land_under_grouped_names(tmp_path):
    from loraflow.tasks.tracking.runs import MlflowMetricsCallback, client, ensure_experiment, log_metrics

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_id = client(uri).create_run(ensure_experiment(uri, "names")).info.run_id
    run = TrackingRun(uri, run_id)
    log_metrics(run, {"candidate.field.category.accuracy": 0.5, "classical.field.category.accuracy": 0.4,
                      "data.kept": 11, "estimate.peak_gib": 1.5})
    callback = MlflowMetricsCallback(run)
    callback.on_log(None, SimpleNamespace(global_step=2, num_input_tokens_seen=0), None, {"loss": 1.25, "learning_rate": 2e-4})
    callback.for_phase("sft_phase").on_log(None, SimpleNamespace(global_step=2, num_input_tokens_seen=0), None, {"eval_loss": 1.5})
    metrics = client(uri).get_run(run_id).data.metrics
    assert metrics == {"eval/candidate/field/category/accuracy": 0.5, "eval/classical/field/category/accuracy": 0.4,
                       "data/kept": 11.0, "estimate/peak_gib": 1.5, "train/loss": 1.25, "train/learning_rate": 2e-4,
                       "val/sft_phase/loss": 1.5}
