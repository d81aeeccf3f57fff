"""The pipeline config: guide defaults, overrides, every problem at once, frozen sections."""
import pydantic
import pytest

from loraflow.schemas.config import PipelineConfig, recommendation_warnings
from loraflow.tasks.common.config_files import flatten_config, load_config, parse_override
from loraflow.tasks.common.errors import LoraflowError


def test_defaults_follow_the_fine_tuning_guide():
    c = PipelineConfig()
    assert c.train.resolved_learning_rate == 2e-4
    assert c.train.model_copy(update={"method": "full"}).resolved_learning_rate == 2e-5
    assert c.train.effective_batch_size == 16 and c.train.micro_batch_size * c.train.gradient_accumulation_steps == 16
    assert (c.train.epochs, c.train.warmup_ratio, c.train.weight_decay, c.lora.r) == (3, 0.05, 0.01, 8)
    assert c.train.early_stopping_patience > 0
    assert (c.split.train, c.split.val, c.split.test, c.split.seed) == (0.8, 0.1, 0.1, 42)
    assert recommendation_warnings(c) == []


def test_every_field_is_described():
    def walk(model):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
                walk(annotation)

    walk(PipelineConfig)


def test_config_is_frozen():
    c = PipelineConfig()
    with pytest.raises(pydantic.ValidationError):
        c.train.epochs = 5


def test_overrides_are_typed_like_yaml():
    assert parse_override("train.learning_rate=1e-4") == (["train", "learning_rate"], 1e-4)
    assert parse_override("lora.target_modules=[q_proj, v_proj]") == (["lora", "target_modules"], ["q_proj", "v_proj"])
    c = load_config(None, ["train.epochs=4", "eval.compare_base=false", "model.name_or_path=tiny-random"])
    assert c.train.epochs == 4 and c.eval.compare_base is False and c.model.name_or_path == "tiny-random"


def test_all_problems_are_reported_together_by_key_path():
    with pytest.raises(LoraflowError) as info:
        load_config(None, ["train.lerning_rate=1", "train.micro_batch_size=0", "split.train=0.9", "lora.r=abc"])
    message = str(info.value)
    for part in ("train.lerning_rate: unknown key", "train.micro_batch_size", "split: split shares", "lora.r"):
        assert part in message


def test_batch_must_divide():
    with pytest.raises(LoraflowError, match="multiple of train.micro_batch_size"):
        load_config(None, ["train.effective_batch_size=10", "train.micro_batch_size=4"])


def test_unusual_values_warn_with_the_range():
    c = load_config(None, ["train.learning_rate=5e-4", "train.effective_batch_size=64", "train.epochs=1", "lora.r=4",
                           "train.warmup_ratio=0.2", "train.weight_decay=0.2"])
    warnings = "\n".join(recommendation_warnings(c))
    for expected in ("train.learning_rate=0.0005 is outside the recommended range 0.0001..0.0002",
                     "train.effective_batch_size=64", "train.epochs=1", "lora.r=4", "train.warmup_ratio=0.2", "train.weight_decay=0.2"):
        assert expected in warnings
    full = load_config(None, ["train.method=full", "train.learning_rate=2e-4"])
    assert "1e-05..2e-05" in "\n".join(recommendation_warnings(full))


def test_relative_paths_resolve_against_the_config_file(tmp_path):
    (tmp_path / "sub").mkdir()
    cfg = tmp_path / "sub" / "p.yaml"
    cfg.write_text("data:\n  path: d.jsonl\nmodel:\n  name_or_path: ./m\n")
    c = load_config(cfg)
    assert c.data.path == str(tmp_path / "sub" / "d.jsonl")
    assert c.model.name_or_path == str(tmp_path / "sub" / "m")


def test_flatten_config_gives_dotted_params():
    flat = flatten_config(PipelineConfig())
    assert flat["lora.r"] == "8" and flat["split.seed"] == "42" and "task_card.name" in flat


@pytest.mark.parametrize("name", ["quickstart", "tiny", "gpu"])
def test_every_example_config_loads_with_its_data_file(name):
    from pathlib import Path

    config = load_config(f"examples/{name}/pipeline.yaml")
    assert Path(config.data.path).is_file()


def test_the_gpu_example_fits_an_80_gib_card_as_estimated():
    from loraflow.tasks.planning.estimate import estimate_resources

    config = load_config("examples/gpu/pipeline.yaml")
    train = config.train
    qwen_7b = {"model_type": "qwen2", "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
               "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152064, "tie_word_embeddings": False}

    def on_card(gpu_memory_gib: float):
        return estimate_resources(qwen_7b, train.method, config.lora.r, config.model.max_length, train.micro_batch_size,
                                  train.gradient_checkpointing, 10**6, 1.0, gpu_memory_gib, optimizer=train.optimizer,
                                  qlora_fp32=train.qlora_fp32, unchecked_layers=train.unchecked_layers)

    on_80, on_24 = on_card(80.0), on_card(24.0)
    assert on_80.fits and on_80.method == "lora"  # bf16 LoRA fits an 80 GiB card with margin
    assert on_24.method == "qlora" and on_24.fits
