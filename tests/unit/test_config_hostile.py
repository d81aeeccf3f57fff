"""Hostile configs: duplicate keys, empty files, non-finite and negative numbers, step settings trl would reject."""
import pytest

from loraflow.tasks.common.config_files import load_config
from loraflow.tasks.common.errors import LoraflowError


def write(tmp_path, text: str):
    path = tmp_path / "pipeline.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_duplicated_section_is_refused_with_both_lines(tmp_path):
    path = write(tmp_path, "train:\n  max_steps: 6\n  micro_batch_size: 8\n  effective_batch_size: 8\nlora:\n  r: 8\ntrain:\n  epochs: 1\n")
    with pytest.raises(LoraflowError) as info:
        load_config(path)
    message = str(info.value)
    assert f"{path}:7" in message and "train" in message and "line 1" in message


def test_a_duplicated_nested_key_is_refused_with_its_dotted_name(tmp_path):
    path = write(tmp_path, "train:\n  epochs: 1\n  epochs: 2\n")
    with pytest.raises(LoraflowError, match=r"pipeline.yaml:3.*train\.epochs"):
        load_config(path)


@pytest.mark.parametrize("text", ["", "# only a comment\n", "{}\n"])
def test_an_empty_config_is_refused(tmp_path, text):
    with pytest.raises(LoraflowError, match="is empty"):
        load_config(write(tmp_path, text))


@pytest.mark.parametrize("override", ["train.epochs=1e309", "train.epochs=.inf", "train.learning_rate=nan",
                                      "eval.bootstrap_samples=1e309"])
def test_non_finite_numbers_are_refused(override):
    with pytest.raises(LoraflowError, match=override.split("=")[0]):
        load_config(None, [override])


def test_a_non_finite_number_in_a_file_names_its_line(tmp_path):
    path = write(tmp_path, "task_card:\n  name: t\ntrain:\n  epochs: .inf\n")
    with pytest.raises(LoraflowError, match=r"pipeline\.yaml: train\.epochs: .*finite number \(line 4\)"):
        load_config(path)


@pytest.mark.parametrize("override", ["train.max_steps=-7", "train.max_steps=0", "train.seed=-1", "split.seed=-3",
                                      "data.seed=-1", "augment.seed=-1", "judge.seed=-1"])
def test_negative_counts_and_seeds_are_refused(override):
    with pytest.raises(LoraflowError, match=override.split("=")[0]):
        load_config(None, [override])


def test_max_steps_minus_one_still_means_all_epochs():
    assert load_config(None, ["train.max_steps=-1"]).train.max_steps == -1


def test_save_steps_that_are_not_a_multiple_of_eval_steps_are_refused():
    with pytest.raises(LoraflowError, match=r"train\.save_steps .*multiple of train\.eval_steps"):
        load_config(None, ["train.save_steps=20", "train.eval_steps=15"])
    assert load_config(None, ["train.save_steps=30", "train.eval_steps=15"]).train.save_steps == 30


@pytest.mark.parametrize("settings", [{"max_steps": 400, "save_steps": 20}, {"save_steps": 7}, {"eval_steps": 5},
                                      {"save_steps": 30, "eval_steps": 10}])
def test_every_accepted_step_setting_builds_training_arguments_trl_accepts(tmp_path, settings):
    from loraflow.schemas.config import TrainConfig
    from loraflow.tasks.training.trainer_args import build_sft_config

    train = TrainConfig(**settings)
    args = build_sft_config(train, 128, tmp_path, False, n_train=100, has_val=True)  # trl validates in __post_init__
    assert args.load_best_model_at_end and args.save_steps % args.eval_steps == 0
    assert args.save_steps == (settings.get("save_steps") or args.eval_steps)
