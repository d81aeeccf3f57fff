"""Model shapes from config.json alone: parameter counts and LoRA sizes without loading weights."""
import json
from dataclasses import dataclass
from pathlib import Path

from loraflow.tasks.common.errors import LoraflowError

GIB = 1024**3
# Bytes per stored value: NF4 weights, plus double quantisation (one 8-bit absmax per 64 weights and one fp32 absmax
# per 256 of those blocks); the optimizer's two moments per trainable parameter.
NF4_BYTES = 0.5
NF4_CONST_BYTES = 1 / 64 + 4 / (64 * 256)
OPTIMIZER_BYTES = {"adamw": 8.0, "paged_adamw_8bit": 2.0}

# The special model names (tasks/common/base_model.py) and the shapes they build.
BUILTIN_CONFIGS: dict[str, dict] = {
    "tiny-random": {
        "model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1024, "tie_word_embeddings": True,
    },
    "smollm2-135m-instruct": {
        "model_type": "llama", "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
        "num_attention_heads": 9, "num_key_value_heads": 3, "vocab_size": 49152, "tie_word_embeddings": True,
    },
}

# Per-family names of the linear layers in one decoder layer; the default is the Llama layout.
_FUSED_QKV = {"phi3", "phi4", "chatglm", "glm"}


@dataclass(frozen=True)
class ModelShape:
    """The numbers of a decoder-only transformer that memory and time depend on."""

    model_type: str
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    tied_embeddings: bool
    num_experts: int = 1

    def layer_linears(self) -> list[tuple[str, int, int]]:
        """(module name, in features, out features) of every linear layer in one decoder layer."""
        h, i, q_out, kv_out = self.hidden_size, self.intermediate_size, self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim
        if self.model_type in ("chatglm", "glm"):
            return [("query_key_value", h, q_out + 2 * kv_out), ("dense", q_out, h),
                    ("dense_h_to_4h", h, 2 * i), ("dense_4h_to_h", i, h)]
        if self.model_type in _FUSED_QKV:
            return [("qkv_proj", h, q_out + 2 * kv_out), ("o_proj", q_out, h), ("gate_up_proj", h, 2 * i), ("down_proj", i, h)]
        attention = [("q_proj", h, q_out), ("k_proj", h, kv_out), ("v_proj", h, kv_out), ("o_proj", q_out, h)]
        mlp = [("gate_proj", h, i), ("up_proj", h, i), ("down_proj", i, h)]
        # Mixture-of-experts layers hold one MLP per expert; every expert gets its own adapter.
        return attention + mlp * self.num_experts

    @property
    def layer_linear_params(self) -> int:
        """Weights of all linear layers (the part that 4-bit quantisation shrinks)."""
        return self.num_layers * sum(fan_in * fan_out for _, fan_in, fan_out in self.layer_linears())

    @property
    def embedding_params(self) -> int:
        """Input embeddings plus the output head (once when tied)."""
        return self.vocab_size * self.hidden_size * (1 if self.tied_embeddings else 2)

    @property
    def norm_params(self) -> int:
        """RMSNorm weights: two per layer plus the final one."""
        return (2 * self.num_layers + 1) * self.hidden_size

    @property
    def total_params(self) -> int:
        """All parameters of the base model."""
        return self.layer_linear_params + self.embedding_params + self.norm_params


def residual_bytes(method: str, qlora_fp32: str = "all") -> int:
    """Bytes per element of the residual stream, so of each checkpointed layer input: bf16 LoRA and all-bf16 QLoRA 2;
    QLoRA with fp32 norms (every projection's output, bitsandbytes returns its input's dtype) and full fine-tuning 4."""
    return 2 if method == "lora" or (method == "qlora" and qlora_fp32 == "none") else 4


def lora_params(shape: ModelShape, r: int, target_modules: list[str] | str = "all-linear") -> int:
    """Trainable LoRA parameters: r x (in + out) for every targeted linear layer of every decoder layer."""
    linears = shape.layer_linears()
    names = {name for name, _, _ in linears}
    if target_modules == "all-linear":
        wanted = names
    else:
        wanted = {target_modules} if isinstance(target_modules, str) else set(target_modules)
        unknown = sorted(wanted - names)
        if unknown:
            raise LoraflowError(
                f"lora.target_modules names {unknown} which {shape.model_type} layers do not have; "
                f"use `all-linear` or some of {sorted(names)}"
            )
    return shape.num_layers * sum(r * (fan_in + fan_out) for name, fan_in, fan_out in linears if name in wanted)


def shape_from_config(config: dict) -> ModelShape:
    """A ModelShape from the fields of a Hugging Face config.json (multimodal configs: their text part)."""
    config = config.get("text_config") or config
    get = config.get
    hidden = get("hidden_size") or get("n_embd") or get("d_model")
    layers = get("num_hidden_layers") or get("n_layer") or get("num_layers")
    heads = get("num_attention_heads") or get("n_head")
    if not (hidden and layers and heads):
        raise LoraflowError(
            "config.json lacks hidden_size/num_hidden_layers/num_attention_heads; "
            "point model.name_or_path at a decoder-only transformer's folder or hub id"
        )
    intermediate = get("intermediate_size") or get("ffn_hidden_size") or get("n_inner") or 4 * hidden
    if get("moe_intermediate_size") and get("num_experts"):
        intermediate = get("moe_intermediate_size")
    kv_heads = get("num_key_value_heads") or get("multi_query_group_num") or heads
    return ModelShape(
        model_type=str(get("model_type", "llama")),
        hidden_size=int(hidden),
        intermediate_size=int(intermediate),
        num_layers=int(layers),
        num_heads=int(heads),
        num_kv_heads=int(kv_heads),
        head_dim=int(get("head_dim") or get("kv_channels") or hidden // heads),
        vocab_size=int(get("vocab_size") or get("padded_vocab_size") or 32000),
        tied_embeddings=bool(get("tie_word_embeddings", False)),
        num_experts=int(get("num_local_experts") or get("num_experts") or 1),
    )


def load_model_config(name_or_path: str, revision: str | None = None) -> dict:
    """Read only config.json of a model: a built-in name, a local folder or file, or a hub id."""
    if name_or_path in BUILTIN_CONFIGS:
        return dict(BUILTIN_CONFIGS[name_or_path])
    path = Path(name_or_path).expanduser()
    if path.is_file() and path.name.endswith(".json"):
        return _read_json(path)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise LoraflowError(
                f"model folder {path} has no config.json (model.name_or_path); "
                "save the model with save_pretrained or point at a folder that has one"
            )
        return _read_json(path / "config.json")
    if path.is_absolute() or name_or_path.startswith(".") or name_or_path.count("/") > 1:
        raise LoraflowError(f"model path {name_or_path} does not exist (model.name_or_path); fix the path")
    return _read_json(_download_config(name_or_path, revision))


def _download_config(repo_id: str, revision: str | None) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HFValidationError, OfflineModeIsEnabled, RepositoryNotFoundError

    try:
        return Path(hf_hub_download(repo_id, filename="config.json", revision=revision))
    except HFValidationError as error:
        raise LoraflowError(f"model.name_or_path {repo_id!r} is neither a local folder nor a valid hub id; fix it") from error
    except RepositoryNotFoundError as error:
        raise LoraflowError(f"hub model {repo_id!r} not found (model.name_or_path); check the id or log in for gated models") from error
    except (OfflineModeIsEnabled, OSError) as error:
        raise LoraflowError(
            f"cannot read config.json of hub model {repo_id!r} (model.name_or_path): offline and not in the local cache; "
            "unset HF_HUB_OFFLINE / connect, or download the model and give its local folder"
        ) from error


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise LoraflowError(f"cannot read {path}: {error}; fix or re-download the model's config.json") from error
