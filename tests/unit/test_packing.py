"""Packing to a token budget: examples per optimizer step stay about train.effective_batch_size; the estimate knows."""
import json

import pytest

from loraflow.tasks.planning.estimate_packing import plan_packing

pytestmark = pytest.mark.filterwarnings("ignore")


def test_rows_keep_the_effective_batch_within_the_micro_batch_budget():
    one = plan_packing([256] * 100, 16, 4, 1024)  # 16 x 256 = 4096 tokens = the budget of 4 x 1024: one row
    assert (one.micro_batches, one.row_tokens, one.examples_per_row) == (1, 4096, 16)
    three = plan_packing([320] * 100, 32, 4, 1024)  # 10,240 tokens over a 4,096 budget: three rows of a third
    assert three.micro_batches == 3 and three.row_tokens == 3414 and 3 * three.examples_per_row == pytest.approx(32, abs=0.1)
    small = plan_packing([200] * 10, 8, 8, 1024)  # 8 examples per step: one row of 1,600 tokens, not 8 x 1024
    assert small.micro_batches == 1 and small.row_tokens == 1600
    ddp = plan_packing([256] * 100, 16, 4, 1024, world_size=2)  # one row per GPU per micro-batch
    assert ddp.micro_batches == 2 and ddp.row_tokens == 2048
    long = plan_packing([1000, 50, 50, 50], 2, 1, 1024)  # a row never cuts an example: it holds the longest
    assert long.row_tokens == 1000 and long.micro_batches == 1
    cut = plan_packing([5000, 100], 4, 2, 1024)  # examples count at most max_length (training cuts them there)
    assert cut.mean_tokens == (1024 + 100) / 2


def test_estimate_sizes_packed_rows_on_a_gpu_and_not_on_the_cpu(tmp_path):
    from loraflow.tasks.common.config_files import load_config
    from loraflow.tasks.common.jsonl import write_jsonl
    from loraflow.tasks.planning.estimate_config import estimate_for_config

    record = {"id": "a", "messages": [{"role": "user", "content": "word " * 100}, {"role": "assistant", "content": "ok " * 40}],
              "metadata": {}}
    write_jsonl(tmp_path / "train.jsonl", [record] * 40)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text(json.dumps({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096, "intermediate_size": 11008,
        "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32, "vocab_size": 32000,
        "max_position_embeddings": 4096, "tie_word_embeddings": False}))
    config_file = tmp_path / "pipeline.yaml"
    config_file.write_text("model:\n  name_or_path: ./model\n  max_length: 1024\ndata:\n  path: train.jsonl\n"
                           "train:\n  method: qlora\n  micro_batch_size: 4\n  effective_batch_size: 16\n")
    packed = estimate_for_config(load_config(config_file), train_jsonl=tmp_path / "train.jsonl", gpu_memory_gib=80.0, device="H100")
    padded = estimate_for_config(load_config(config_file, ["train.packing=false"]), train_jsonl=tmp_path / "train.jsonl",
                                 gpu_memory_gib=80.0, device="H100")
    note = next(n for n in packed.notes if n.startswith("train.packing on"))
    assert "1 padding-free row(s)" in note and "~16 examples" in note
    assert not any(n.startswith("train.packing") for n in padded.notes)
    # 16 examples of ~140 tokens in one row of ~2,300 tokens: the same tokens as 4 padded rows would carry in 4 passes
    assert packed.peak_gpu_memory_gib == padded.peak_gpu_memory_gib
    assert packed.tokens_per_s != padded.tokens_per_s
    cpu = estimate_for_config(load_config(config_file), train_jsonl=tmp_path / "train.jsonl", gpu_memory_gib=None, device="cpu")
    assert not any(n.startswith("train.packing") for n in cpu.notes)
