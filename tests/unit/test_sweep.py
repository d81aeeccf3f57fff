"""Sweep planning: the grid from --grid flags, its combinations, trial names and configs, picking the best trial."""
import json

import pytest

from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.training.sweep import best_val_loss, expand_grid, parse_grid, pick_best, render_summary, trial_config, trial_name


def test_grid_flags_expand_to_every_combination_in_order():
    grid = parse_grid(["train.learning_rate=1e-4,2e-4", "lora.r=8, 16"])
    assert grid == {"train.learning_rate": ["1e-4", "2e-4"], "lora.r": ["8", "16"]}
    assert expand_grid(grid) == [
        ["train.learning_rate=1e-4", "lora.r=8"], ["train.learning_rate=1e-4", "lora.r=16"],
        ["train.learning_rate=2e-4", "lora.r=8"], ["train.learning_rate=2e-4", "lora.r=16"],
    ]
    assert trial_name(3, ["train.learning_rate=2e-4", "lora.r=8"]) == "trial-03-learning_rate-2e-4-r-8"


@pytest.mark.parametrize("bad", [[], ["lora.r"], ["lora.r="], ["=8,16"], ["lora.r=8", "lora.r=16"]])
def test_malformed_grid_flags_are_user_errors(bad):
    with pytest.raises(LoraflowError):
        parse_grid(bad)


def test_trial_config_applies_the_overrides_and_skips_registration():
    from loraflow.schemas.config import PipelineConfig

    config = trial_config(PipelineConfig(), ["train.learning_rate=1e-4", "lora.r=16"])
    assert config.train.learning_rate == 1e-4 and config.lora.r == 16
    assert config.deploy.register_model is False
    with pytest.raises(LoraflowError):
        trial_config(PipelineConfig(), ["lora.r=-3"])


def test_best_trial_is_the_lowest_finite_val_loss(tmp_path):
    (tmp_path / "a" / "train").mkdir(parents=True)
    (tmp_path / "a" / "train" / "log_history.json").write_text(json.dumps(
        [{"loss": 2.0}, {"eval_loss": 1.5}, {"eval_loss": 1.2}, {"eval_loss": float("nan")}]))
    assert best_val_loss(tmp_path / "a") == 1.2
    assert best_val_loss(tmp_path / "missing") is None
    trials = [{"name": "t1", "overrides": ["lora.r=8"], "val_loss": 1.2}, {"name": "t2", "overrides": ["lora.r=16"], "val_loss": 0.9},
              {"name": "t3", "overrides": ["lora.r=32"], "val_loss": None, "error": "boom"}]
    assert pick_best(trials)["name"] == "t2"
    assert pick_best([trials[2]]) is None
    table = render_summary(trials, pick_best(trials))
    assert table.index("t2 (best)") < table.index("t1") < table.index("t3")
