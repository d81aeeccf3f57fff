"""Loading a saved model variant: a merged folder, a bitsandbytes INT8/INT4 folder or a GGUF file.

Below every stage that reads one: evaluation scores variants, deploy builds them (tasks/deploy/quantize.py).
"""
import json
import logging
from pathlib import Path
from typing import Any

from loraflow.tasks.common.device import device as current_device
from loraflow.tasks.common.errors import LoraflowError

TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json", "vocab.json", "merges.txt",
    "tokenizer.model", "added_tokens.json",
)


def load_variant(path: str, device: str | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) for a merged folder, a bitsandbytes folder or a GGUF file (tokenizer None if none saved)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = device or current_device()
    location = Path(path)
    if location.suffix == ".gguf":
        # transformers dequantises GGUF weights on load: this measures the file's quality, not llama.cpp's speed.
        model = AutoModelForCausalLM.from_pretrained(location.parent, gguf_file=location.name, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(location.parent) if (location.parent / "tokenizer.json").is_file() \
            else AutoTokenizer.from_pretrained(location.parent, gguf_file=location.name)
        return model.to(device).eval(), tokenizer
    if not (location / "config.json").is_file():
        raise LoraflowError(f"{path} is not a model folder or .gguf file; pass the path quantize_model returned.")
    if is_bitsandbytes_folder(location):
        # bitsandbytes int8 casts float32 inputs to fp16 and logs it on every matmul; that is expected here.
        logging.getLogger("bitsandbytes.autograd._functions").addFilter(_quiet_int8_cast)
        model = AutoModelForCausalLM.from_pretrained(location, device_map=device)
    else:
        model = AutoModelForCausalLM.from_pretrained(location, dtype="auto" if device != "cpu" else torch.float32).to(device)
    has_tokenizer = any((location / name).is_file() for name in TOKENIZER_FILES)
    return model.eval(), AutoTokenizer.from_pretrained(location) if has_tokenizer else None


def _quiet_int8_cast(record: logging.LogRecord) -> bool:
    """Drop bitsandbytes' per-matmul notice that int8 inputs are cast to fp16."""
    return "inputs will be cast from" not in record.getMessage()


def is_bitsandbytes_folder(location: Path) -> bool:
    """Whether a saved model folder holds a bitsandbytes-quantised checkpoint."""
    config = json.loads((location / "config.json").read_text(encoding="utf-8"))
    return (config.get("quantization_config") or {}).get("quant_method") == "bitsandbytes"
