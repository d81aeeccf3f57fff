"""Quantised variants of the merged model: bitsandbytes INT8/INT4 checkpoints and GGUF files, plus their metric gate."""
import shutil
import logging
from pathlib import Path
from typing import Any

from loraflow.schemas.run_folder import RunFolder
from loraflow.tasks.common.device import device as current_device, inference_dtype
from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.deploy.merge import dir_size

BNB_BITS = ("int8", "int4")
GGUF_BITS = ("gguf-f16", "gguf-q8_0", "gguf-q4_0")
TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json", "vocab.json", "merges.txt",
    "tokenizer.model", "added_tokens.json",
)


def quantize_model(merged_path: str, out_dir: str, bits: str) -> dict:
    """Build one variant of the merged model under out_dir/model/: `int8`/`int4` (bitsandbytes) or `gguf-*`.

    Returns:
        {"bits", "format", "path", "size_bytes", "tokenizer_path"}; load it with `load_variant(path)`.
    """
    if not (Path(merged_path) / "config.json").is_file():
        raise LoraflowError(f"{merged_path} holds no merged model (config.json missing); run the merge step first.")
    if bits in BNB_BITS:
        path = _quantize_bnb(Path(merged_path), RunFolder(out_dir).model / bits, bits)
        return {"bits": bits, "format": f"bitsandbytes-{bits}", "path": str(path), "size_bytes": dir_size(path), "tokenizer_path": str(path)}
    if bits in GGUF_BITS:
        from loraflow.tasks.deploy.gguf_export import export_gguf

        folder = RunFolder(out_dir).model / "gguf"
        quant = bits.removeprefix("gguf-")
        result = export_gguf(merged_path, str(folder / f"model-{quant}.gguf"), quant)
        # vLLM and llama.cpp take the GGUF file plus the original tokenizer; keep it beside the file.
        _copy_tokenizer(Path(merged_path), folder)
        return {"bits": bits, "format": result["format"], "path": result["path"], "size_bytes": result["size_bytes"], "tokenizer_path": str(folder)}
    raise LoraflowError(f"quantisation {bits!r} is unknown; use one of {', '.join(BNB_BITS + GGUF_BITS)} (deploy.quantize / deploy.gguf).")


def _quantize_bnb(merged: Path, target: Path, bits: str) -> Path:
    """Load the merged model through BitsAndBytesConfig (NF4 with double quantisation for int4) and save it."""
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    if bits == "int8":
        config = BitsAndBytesConfig(load_in_8bit=True)
    else:
        compute = inference_dtype()
        config = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=compute
        )
    if target.exists():
        shutil.rmtree(target)  # a retry must not leave shards of an earlier attempt
    model = AutoModelForCausalLM.from_pretrained(merged, quantization_config=config, device_map=current_device())
    model.save_pretrained(target)
    _copy_tokenizer(merged, target)
    return target


def _copy_tokenizer(source: Path, folder: Path) -> None:
    """Copy the tokenizer files of a model folder into another folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, folder / name)


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
    import json

    config = json.loads((location / "config.json").read_text(encoding="utf-8"))
    return (config.get("quantization_config") or {}).get("quant_method") == "bitsandbytes"


def variant_size_gate(base_metric: float, variant_metric: float, tolerance: float, higher_is_better: bool = True) -> dict:
    """Whether a smaller variant keeps the success metric within tolerance of the merged model (pure)."""
    drop = (base_metric - variant_metric) if higher_is_better else (variant_metric - base_metric)
    return {"passed": drop <= tolerance + 1e-12, "drop": drop, "tolerance": tolerance, "base": base_metric, "variant": variant_metric}
