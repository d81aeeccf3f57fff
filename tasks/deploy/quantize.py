"""Quantised variants of the merged model: bitsandbytes INT8/INT4 checkpoints and GGUF files, plus their metric gate."""
import shutil
from pathlib import Path

from loraflow.schemas.run_folder import RunFolder
from loraflow.tasks.common.device import device as current_device, inference_dtype
from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.common.model_variants import TOKENIZER_FILES
from loraflow.tasks.deploy.merge import dir_size

BNB_BITS = ("int8", "int4")
GGUF_BITS = ("gguf-f16", "gguf-q8_0", "gguf-q4_0")


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


def variant_size_gate(base_metric: float, variant_metric: float, tolerance: float, higher_is_better: bool = True) -> dict:
    """Whether a smaller variant keeps the success metric within tolerance of the merged model (pure)."""
    drop = (base_metric - variant_metric) if higher_is_better else (variant_metric - base_metric)
    return {"passed": drop <= tolerance + 1e-12, "drop": drop, "tolerance": tolerance, "base": base_metric, "variant": variant_metric}
