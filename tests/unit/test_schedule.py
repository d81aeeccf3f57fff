"""train.schedule: auto — the schedule from the number of records and declared classes; keys the file sets are kept."""
from loraflow.schemas.config import TrainConfig
from loraflow.tasks.common.config_files import load_config
from loraflow.tasks.planning.schedule import auto_schedule, declared_classes, resolve_schedule


def test_the_quickstart_gets_the_schedule_it_was_measured_with():
    config = load_config("examples/quickstart/pipeline.yaml", [])
    classes = declared_classes(config.task_card.fields)
    assert classes == 8  # category 5 + priority 3; the product is free text
    train, note = resolve_schedule(config.train, 219, classes)
    assert (train.effective_batch_size, train.micro_batch_size, train.epochs, train.resolved_learning_rate) == (2, 2, 2.0, 1e-3)
    assert train.schedule == "fixed" and "8 declared answer classes" in note


def test_more_classes_get_more_steps_and_a_large_set_the_guide_defaults():
    few, _ = auto_schedule(300, 8, "lora")
    many, _ = auto_schedule(300, 40, "lora")  # 1000 steps of 2 examples over 300 records
    assert few["epochs"] == 2 and many["epochs"] == 7
    assert auto_schedule(300, 400, "lora")[0]["epochs"] == 10  # capped
    large, why = auto_schedule(50_000, 10, "lora")
    assert (large["effective_batch_size"], large["epochs"], large["learning_rate"]) == (16, 3.0, 2e-4) and "guide" in why
    assert auto_schedule(300, 8, "full")[0]["learning_rate"] == 1e-4


def test_keys_the_file_sets_are_kept_and_the_batch_stays_a_multiple_of_the_micro_batch():
    train, note = resolve_schedule(TrainConfig(epochs=5, micro_batch_size=4), 300, 10)
    assert train.epochs == 5 and train.micro_batch_size == 4 and train.effective_batch_size == 4
    assert "kept from the config: epochs, micro_batch_size" in note
    fixed, _ = resolve_schedule(TrainConfig(schedule="fixed"), 300, 10)
    assert (fixed.epochs, fixed.effective_batch_size) == (3, 16)


def test_a_dumped_and_reloaded_config_still_knows_what_the_file_left_open():
    train = TrainConfig(epochs=4)
    again = TrainConfig.model_validate(train.model_dump(mode="json"))
    assert again.schedule_from_data == train.schedule_from_data == ("effective_batch_size", "micro_batch_size", "learning_rate")
    assert resolve_schedule(again, 300, 10)[0].epochs == 4
