"""INT8/INT4 (bitsandbytes on CPU) and GGUF variants of a merged tiny Llama: saved, reloaded, close to the original."""
import shutil

import pytest
import torch
from tests.unit.deploy_support import PROMPTS, build_adapter, build_tiny_base

from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.deploy.merge import dir_size, merge_adapter, prompt_ids
from loraflow.tasks.common.model_variants import load_variant
from loraflow.tasks.deploy.quantize import quantize_model, variant_size_gate


@pytest.fixture(scope="module")
def merged(tmp_path_factory):
    root = tmp_path_factory.mktemp("quantize")
    base = build_tiny_base(root / "base")
    adapter = build_adapter(base, root / "adapter")
    return merge_adapter(str(base), str(adapter), str(root / "run"), "lora", PROMPTS, 1e-3, max_new_tokens=4)["merged_path"]


def _logits(model, tokenizer):
    with torch.no_grad():
        return model(input_ids=prompt_ids(tokenizer, PROMPTS[0])).logits.float()


@pytest.fixture(scope="module")
def reference(merged):
    return _logits(*load_variant(merged, device="cpu"))


@pytest.mark.parametrize("bits, bound", [("int8", 0.1), ("int4", 0.5)])
def test_bitsandbytes_variant_saves_reloads_and_stays_close(merged, reference, tmp_path, bits, bound):
    result = quantize_model(merged, str(tmp_path), bits)
    assert result["path"] == str(tmp_path / "model" / bits) and result["size_bytes"] == dir_size(result["path"])
    model, tokenizer = load_variant(result["path"], device="cpu")
    layer = type(model.model.layers[0].mlp.down_proj).__name__
    assert layer == {"int8": "Linear8bitLt", "int4": "Linear4bit"}[bits]
    diff = float((_logits(model, tokenizer) - reference).abs().max())
    assert 0 < diff < bound  # quantisation changes the logits, but only a little
    out = model.generate(prompt_ids(tokenizer, PROMPTS[0]), max_new_tokens=3, do_sample=False)
    assert out.shape[1] > prompt_ids(tokenizer, PROMPTS[0]).shape[1]


@pytest.mark.parametrize("bits, bound", [("gguf-f16", 5e-3), ("gguf-q8_0", 0.1), ("gguf-q4_0", 0.5)])
def test_gguf_round_trips_through_transformers(merged, reference, tmp_path, bits, bound):
    result = quantize_model(merged, str(tmp_path), bits)
    assert result["path"].endswith(f"model-{bits.removeprefix('gguf-')}.gguf") and result["size_bytes"] > 0
    model, tokenizer = load_variant(result["path"], device="cpu")
    assert float((_logits(model, tokenizer) - reference).abs().max()) < bound
    # the tokenizer, EOS and chat template embedded in the GGUF file (read alone, as llama.cpp would) match
    from transformers import AutoTokenizer

    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(result["path"], alone / "model.gguf")
    embedded = AutoTokenizer.from_pretrained(alone, gguf_file="model.gguf")
    original = AutoTokenizer.from_pretrained(merged)
    assert embedded.chat_template == original.chat_template and embedded.eos_token == original.eos_token
    assert torch.equal(prompt_ids(embedded, PROMPTS[1]), prompt_ids(original, PROMPTS[1]))


def test_smaller_files_for_fewer_bits(merged, tmp_path):
    sizes = {bits: quantize_model(merged, str(tmp_path), bits)["size_bytes"] for bits in ("gguf-f16", "gguf-q8_0", "gguf-q4_0")}
    assert sizes["gguf-q4_0"] < sizes["gguf-q8_0"] < sizes["gguf-f16"] < dir_size(merged)


def test_unknown_bits_and_missing_model_fail_clearly(merged, tmp_path):
    with pytest.raises(LoraflowError, match="quantisation 'int3' is unknown"):
        quantize_model(merged, str(tmp_path), "int3")
    with pytest.raises(LoraflowError, match="holds no merged model"):
        quantize_model(str(tmp_path), str(tmp_path), "int8")


def test_variant_gate():
    assert variant_size_gate(0.80, 0.78, 0.05)["passed"]
    assert variant_size_gate(0.80, 0.75, 0.05)["passed"]  # exactly at the tolerance
    failed = variant_size_gate(0.80, 0.70, 0.05)
    assert not failed["passed"] and failed["drop"] == pytest.approx(0.10)
    assert not variant_size_gate(1.0, 1.2, 0.1, higher_is_better=False)["passed"]  # e.g. a loss went up
    assert variant_size_gate(0.5, 0.9, 0.0)["passed"]  # improving is always fine


@pytest.mark.parametrize("bits", ["int4", "gguf-q8_0"])
def test_evaluation_generates_with_a_quantized_variant(merged, tmp_path, bits):
    """The evaluation path loads INT4 folders and GGUF files the way quantisation saved them."""
    from loraflow.tasks.evaluation.generate import generate_predictions
    from loraflow.tasks.common.jsonl import write_jsonl

    built = quantize_model(merged, str(tmp_path), bits)
    write_jsonl(tmp_path / "test.jsonl", [{"id": f"p{i}", "metadata": {}, "messages": [*p, {"role": "assistant", "content": "x"}]}
                                           for i, p in enumerate(PROMPTS)])
    rows = generate_predictions(built["path"], None, str(tmp_path / "test.jsonl"), 4, 2, None)
    assert [r["id"] for r in rows] == ["p0", "p1"] and all(isinstance(r["prediction"], str) for r in rows)
