"""Merge a real peft LoRA adapter into a tiny Llama and check the parity gate catches broken merges."""
import json
import shutil

import pytest
from tests.unit.deploy_support import PROMPTS, build_adapter, build_tiny_base

from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.deploy.merge import check_parity, merge_adapter


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("merge")
    base = build_tiny_base(root / "base")
    adapter = build_adapter(base, root / "adapter")
    return base, adapter


def test_merge_matches_adapter_and_keeps_template(pair, tmp_path):
    base, adapter = pair
    result = merge_adapter(str(base), str(adapter), str(tmp_path), "lora", PROMPTS, 1e-3, max_new_tokens=8)
    merged = tmp_path / "model" / "merged"
    assert result["merged_path"] == str(merged)
    assert result["dtype"] == "float32"  # CPU default
    parity = result["parity"]
    assert parity["passed"] and parity["outputs_equal"]
    assert parity["max_abs_logit_diff"] < 1e-3
    assert parity["chat_template_equal"] and parity["eos_token_equal"] and parity["generation_eos_equal"]
    assert (merged / "model.safetensors").is_file() and not (merged / "adapter_config.json").exists()
    assert result["size_bytes"] > (merged / "model.safetensors").stat().st_size
    assert json.loads((tmp_path / "model" / "parity.json").read_text())["passed"] is True
    # The report travels in the registered version to run.json's outcome and is read back typed (`loraflow run`'s
    # closing lines): its lists and the stored dtype once failed that read after every successful quickstart.
    from loraflow.schemas.results import RegisteredModel, RunOutcome

    registered = RegisteredModel(name="m", version="1", model_uri="models:/m/1", source="s", merged_path="p", parity=parity)
    outcome = RunOutcome(registered_model=registered)
    assert RunOutcome.model_validate(json.loads(json.dumps(outcome.model_dump(mode="json")))).registered_model.parity == parity


def test_merged_model_differs_from_base(pair, tmp_path):
    """The adapter is non-trivial: a 'merge' that just copies the base is caught by the parity check."""
    base, adapter = pair
    merge_adapter(str(base), str(adapter), str(tmp_path), "lora", PROMPTS, 1e-3, max_new_tokens=8)
    merged = tmp_path / "model" / "merged"
    shutil.copy(base / "model.safetensors", merged / "model.safetensors")
    with pytest.raises(LoraflowError, match="does not match the adapter model"):
        check_parity(str(base), str(adapter), str(merged), "lora", PROMPTS, 1e-3, max_new_tokens=8)
    report = json.loads((tmp_path / "model" / "parity.json").read_text())
    assert report["passed"] is False and report["max_abs_logit_diff"] > 1e-3


def test_changed_chat_template_or_eos_blocks_deploy(pair, tmp_path):
    base, adapter = pair
    merge_adapter(str(base), str(adapter), str(tmp_path), "lora", PROMPTS, 1e-3, max_new_tokens=4)
    merged = tmp_path / "model" / "merged"
    template = merged / "chat_template.jinja"
    template.write_text(template.read_text().replace("<|im_end|>", "</s>"))
    with pytest.raises(LoraflowError, match="chat template differs"):
        check_parity(str(base), str(adapter), str(merged), "lora", PROMPTS, 1e-3, max_new_tokens=4)
    config_path = merged / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["eos_token"] = "<|endoftext|>"
    config_path.write_text(json.dumps(config))
    with pytest.raises(LoraflowError, match="eos token differs"):
        check_parity(str(base), str(adapter), str(merged), "lora", PROMPTS, 1e-3, max_new_tokens=4)


def test_16bit_storage_uses_its_own_tolerance(pair, tmp_path):
    base, adapter = pair
    result = merge_adapter(
        str(base), str(adapter), str(tmp_path), "lora", PROMPTS, 1e-9, dtype="bfloat16", tolerance_16bit=0.5, max_new_tokens=4
    )
    assert result["dtype"] == "bfloat16" and result["parity"]["tolerance"] == 0.5
    assert 0 < result["parity"]["max_abs_logit_diff"] < 0.5


def test_bad_inputs_fail_with_one_sentence(pair, tmp_path):
    base, adapter = pair
    with pytest.raises(LoraflowError, match="no adapter_config.json"):
        merge_adapter(str(base), str(tmp_path), str(tmp_path), "lora", PROMPTS, 1e-3)
    with pytest.raises(LoraflowError, match="train.method"):
        merge_adapter(str(base), str(adapter), str(tmp_path), "prefix", PROMPTS, 1e-3)
    with pytest.raises(LoraflowError, match="deploy.merge_dtype"):
        merge_adapter(str(base), str(adapter), str(tmp_path), "lora", PROMPTS, 1e-3, dtype="int3")


def test_qlora_adapter_merges_into_full_precision_base(pair, tmp_path):
    """A QLoRA adapter (trained on the 4-bit base) is merged into the float32 base, never into 4-bit weights."""
    base, _ = pair
    adapter = build_adapter(base, tmp_path / "qlora_adapter", qlora=True)
    result = merge_adapter(str(base), str(adapter), str(tmp_path / "run"), "qlora", PROMPTS, 1e-3, max_new_tokens=4)
    config = json.loads((tmp_path / "run" / "model" / "merged" / "config.json").read_text())
    assert "quantization_config" not in config
    assert result["parity"]["passed"]


@pytest.mark.gpu
def test_merge_on_gpu_stores_16bit_and_passes_parity(pair, tmp_path):
    base, adapter = pair
    result = merge_adapter(str(base), str(adapter), str(tmp_path), "lora", PROMPTS, 1e-3, max_new_tokens=8)
    assert result["dtype"] in ("bfloat16", "float16") and result["parity"]["passed"]
    assert json.loads((tmp_path / "model" / "merged" / "config.json").read_text())["dtype"] == result["dtype"]
