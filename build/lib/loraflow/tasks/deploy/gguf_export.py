"""Export a merged Llama-architecture model (safetensors + byte-level BPE tokenizer) to one GGUF file."""
import json
from pathlib import Path
from typing import Any

from loraflow.tasks.common.errors import LoraflowError

# Llama-layout models share llama.cpp's `llama` architecture (the q/k rows are permuted for its RoPE layout).
SUPPORTED = {"llama": "llama", "mistral": "llama"}
FORMATS = ("f16", "q8_0", "q4_0")


def export_gguf(model_dir: str, out_file: str, quant: str) -> dict:
    """Write model_dir as a GGUF file quantised to f16, q8_0 or q4_0 (norms stay f32); returns a summary."""
    import gguf
    import numpy as np
    import torch
    from safetensors import safe_open
    from transformers import AutoConfig, AutoTokenizer

    if quant not in FORMATS:
        raise LoraflowError(f"GGUF type {quant!r} is not supported; use one of {', '.join(FORMATS)} (deploy.gguf).")
    config = AutoConfig.from_pretrained(model_dir)
    arch = SUPPORTED.get(config.model_type)
    if arch is None:
        raise LoraflowError(
            f"GGUF export supports Llama-architecture models, not {config.model_type!r} ({model_dir}/config.json); "
            "remove deploy.gguf or use llama.cpp's convert_hf_to_gguf.py."
        )
    if not (Path(model_dir) / "tokenizer.json").is_file():
        raise LoraflowError(f"GGUF export needs a fast tokenizer ({model_dir}/tokenizer.json is missing); save the tokenizer with the model.")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    out = Path(out_file)
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(out), arch)
    _write_hparams(writer, config, quant, Path(model_dir).name)
    pre = _write_tokenizer(writer, tokenizer, Path(model_dir) / "tokenizer.json")
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    for shard in sorted(Path(model_dir).glob("*.safetensors")):
        with safe_open(str(shard), framework="pt") as tensors:
            for hf_name in tensors.keys():
                if hf_name.endswith("rotary_emb.inv_freq"):
                    continue
                name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
                if name is None:
                    raise LoraflowError(f"tensor {hf_name} of {shard} has no GGUF name; the model is not plain Llama.")
                data = tensors.get_tensor(hf_name).to(torch.float32).numpy()
                if hf_name.endswith("q_proj.weight"):
                    data = _permute(data, config.num_attention_heads, head_dim)
                elif hf_name.endswith("k_proj.weight"):
                    data = _permute(data, config.num_key_value_heads, head_dim)
                data, qtype = _encode(np.ascontiguousarray(data), name, quant)
                writer.add_tensor(name, data, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return {"path": str(out), "format": f"gguf-{quant}", "size_bytes": out.stat().st_size, "tokenizer_pre": pre}


def _write_hparams(writer: Any, config: Any, quant: str, name: str) -> None:
    """The llama.* keys llama.cpp and transformers read back."""
    import gguf

    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    rope_theta = getattr(config, "rope_theta", None) or (getattr(config, "rope_parameters", None) or {}).get("rope_theta", 10000.0)
    writer.add_name(name)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_freq_base(float(rope_theta))
    writer.add_rope_dimension_count(head_dim)
    writer.add_vocab_size(config.vocab_size)
    file_type = {"f16": gguf.LlamaFileType.MOSTLY_F16, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0, "q4_0": gguf.LlamaFileType.MOSTLY_Q4_0}
    writer.add_file_type(file_type[quant])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


def _write_tokenizer(writer: Any, tokenizer: Any, tokenizer_json: Path) -> str:
    """A GPT-2 style (byte-level BPE) vocabulary with merges, special ids and the chat template; returns the pre type."""
    import gguf

    spec = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    if spec["model"]["type"] != "BPE" or spec["model"].get("byte_fallback"):
        raise LoraflowError(f"GGUF export supports byte-level BPE tokenizers only ({tokenizer_json}); SentencePiece models need llama.cpp's converter.")
    vocab = tokenizer.get_vocab()
    by_id = sorted(vocab.items(), key=lambda item: item[1])
    if [index for _, index in by_id] != list(range(len(by_id))):
        raise LoraflowError(f"the vocabulary in {tokenizer_json} has gaps in its token ids; GGUF needs ids 0..n-1.")
    special = set(tokenizer.all_special_ids)
    added = {token.content for token in getattr(tokenizer, "added_tokens_decoder", {}).values()}
    types = [
        gguf.TokenType.CONTROL if index in special
        else gguf.TokenType.USER_DEFINED if token in added
        else gguf.TokenType.NORMAL
        for token, index in by_id
    ]
    merges = [" ".join(pair) if isinstance(pair, list) else pair for pair in spec["model"].get("merges", [])]
    pre = _pre_tokenizer_name(spec.get("pre_tokenizer") or {})
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list([token for token, _ in by_id])
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    for kind in ("bos", "eos", "pad", "unk"):
        token_id = getattr(tokenizer, f"{kind}_token_id")
        if token_id is not None:
            getattr(writer, {"unk": "add_unk_token_id", "pad": "add_pad_token_id"}.get(kind, f"add_{kind}_token_id"))(token_id)
    # ChatML prompts carry no BOS; adding one at run time would change every prompt.
    writer.add_add_bos_token(bool(getattr(tokenizer, "add_bos_token", False)))
    if tokenizer.chat_template:
        writer.add_chat_template(tokenizer.chat_template)
    return pre


def _pre_tokenizer_name(pre_tokenizer: dict) -> str:
    """llama.cpp's name for the split regex: plain GPT-2 byte-level, or SmolLM's digits-then-byte-level."""
    parts = pre_tokenizer.get("pretokenizers", [pre_tokenizer])
    kinds = [part.get("type") for part in parts]
    if kinds == ["ByteLevel"]:
        return "gpt2"
    if kinds == ["Digits", "ByteLevel"] and parts[0].get("individual_digits"):
        return "smollm"
    return "default"


def _permute(weights: Any, heads: int, head_dim: int) -> Any:
    """Reorder q/k rows from HF's rotate-half RoPE layout to llama.cpp's interleaved one."""
    rows = weights.shape[0]
    return weights.reshape(heads, 2, head_dim // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(rows, *weights.shape[1:])


def _encode(data: Any, name: str, quant: str) -> tuple[Any, Any]:
    """Quantise one tensor: 1-D tensors stay f32; embeddings/output keep q8_0 under q4_0 (as llama.cpp's own files do)."""
    import gguf
    import numpy as np

    if data.ndim == 1:
        return data.astype(np.float32), gguf.GGMLQuantizationType.F32
    if quant == "f16":
        return data.astype(np.float16), gguf.GGMLQuantizationType.F16
    qtype = gguf.GGMLQuantizationType.Q8_0
    if quant == "q4_0" and name not in ("token_embd.weight", "output.weight"):
        qtype = gguf.GGMLQuantizationType.Q4_0
    block = gguf.GGML_QUANT_SIZES[qtype][0]
    if data.shape[-1] % block:
        return data.astype(np.float16), gguf.GGMLQuantizationType.F16  # rows that do not fill whole blocks
    return gguf.quants.quantize(data, qtype), qtype
