"""model.max_length: auto — the length chosen from the data, the cost table, and the message that blames the limit."""
import json
from collections import Counter
from dataclasses import replace

import pytest

from loraflow.schemas.config import DataConfig, LoraConfig, ModelConfig, TrainConfig
from loraflow.tasks.common.base_model import build_tiny_model
from loraflow.tasks.common.jsonl import write_jsonl
from loraflow.tasks.data.token_lengths import measure_token_lengths, plan_lengths, sample_records
from loraflow.tasks.data.validate import invalid_error, validate_records
from loraflow.tasks.planning.lengths import choose_max_length, length_hint, length_percentiles, model_context_limit

TINY_CONFIG = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
               "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 512, "max_position_embeddings": 2048}


def test_auto_keeps_99_5_percent_rounded_up_and_never_passes_the_model_limit():
    lengths = list(range(100, 300)) * 5  # 1000 records, 100..299 tokens
    chosen = choose_max_length(lengths, 8192)
    assert chosen % 32 == 0
    assert sum(length <= chosen for length in lengths) / len(lengths) >= 0.995
    assert chosen - 32 < sorted(lengths)[994]  # the smallest such multiple
    assert choose_max_length(lengths, 256) == 256  # capped by the model's context
    assert choose_max_length([], 8192) == 2048


def test_percentiles_are_real_record_lengths():
    points = length_percentiles([5, 1, 9, 3])
    assert points["p50"] == 3 and points["max"] == 9 and set(points.values()) <= {1, 3, 5, 9}


def test_model_limit_reads_the_config():
    assert model_context_limit({"max_position_embeddings": 8192}) == 8192
    assert model_context_limit({"n_positions": 1024}) == 1024


def test_explicit_limit_that_cuts_records_blames_the_limit_and_names_what_keeps_them():
    lengths = [170] * 60 + [120] * 40  # 60% of the records are longer than 160
    plan = plan_lengths(lengths, 100, ModelConfig(max_length=160), None, TINY_CONFIG, TrainConfig(), LoraConfig())
    assert plan.max_length == 160 and plan.above_limit == 60 and plan.above_share == 0.6
    assert any(c.length == 192 and c.keeps_share == 1.0 for c in plan.choices)
    hint = length_hint(plan)
    assert "longer than model.max_length=160 tokens" in hint and "set model.max_length: auto, or 192" in hint
    error = invalid_error(0.6, DataConfig(), Counter({"max_tokens": 60}), "runs/x", plan)
    assert "raise the length limit" in str(error) and "fix the data" not in str(error) and "model.max_length: auto" in str(error)
    auto = plan_lengths(lengths, 100, ModelConfig(), None, TINY_CONFIG, TrainConfig(), LoraConfig())
    assert auto.max_length == 192 and auto.above_limit == 0 and length_hint(auto) == ""


def _record(i: int, words: int) -> dict:
    return {"id": f"r{i}", "messages": [{"role": "system", "content": "Classify the review."},
                                        {"role": "user", "content": " ".join(["good value"] * words)},
                                        {"role": "assistant", "content": json.dumps({"label": "pos"})}],
            "metadata": {"language": "en"}}


def test_measured_with_the_tokenizer_auto_validates_every_record_a_small_fixed_limit_would_cut(tmp_path):
    records = [_record(i, 5 + i % 40) for i in range(200)]
    path = tmp_path / "ingested.jsonl"
    write_jsonl(path, records)
    model = build_tiny_model(tmp_path / "tiny", [m["content"] for r in records for m in r["messages"]])
    sample, n = sample_records(str(path), 50, seed=1)
    assert n == 200 and len(sample) == 50
    plan = measure_token_lengths(str(path), str(model), ModelConfig(), None, TrainConfig(), LoraConfig())
    assert plan.source == "auto" and plan.n_measured == 200 and plan.above_limit <= 1
    result = validate_records(str(path), DataConfig(), ["en"], str(model), plan.validation_limit, str(tmp_path / "run"),
                              lengths=plan)
    assert result["counts"]["kept"] >= 199  # >= 99.5% kept: only a true outlier may go
    tight = plan_lengths([plan.percentiles["p50"]] * 2, 2, ModelConfig(max_length=plan.percentiles["p50"]), None,
                         TINY_CONFIG, TrainConfig(), LoraConfig())
    with pytest.raises(Exception, match="model.max_length"):
        validate_records(str(path), DataConfig(), ["en"], str(model), tight.validation_limit, str(tmp_path / "run2"),
                         lengths=replace(plan, validation_limit=tight.validation_limit, max_length=tight.max_length,
                                         above_limit=100, above_share=0.5))
