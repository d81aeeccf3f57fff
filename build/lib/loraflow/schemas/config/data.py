"""Where the raw data is and how to read and validate it."""
from typing import Literal

from pydantic import Field

from loraflow.schemas.config._base import Section

InputFormat = Literal["auto", "openai", "alpaca", "sharegpt", "prompt_completion", "canonical", "preference",
                      "openai_preference", "canonical_preference"]


class DataConfig(Section):
    path: str | None = Field(None, description="Input file (.jsonl, .json, .csv, .parquet); relative paths resolve against the config file. `--input` overrides it.")
    format: InputFormat = Field("auto", description="Record format; `auto` detects it per record from its fields.")
    kind: Literal["auto", "sft", "preference"] = Field("auto", description="Supervised records or preference pairs (chosen/rejected); auto: pairs when every record is one. `sft` trains on the chosen answers of pairs.")
    max_invalid_share: float = Field(0.05, ge=0.0, le=1.0, description="Stop with exit code 2 when more than this share of records is quarantined (guide: 5%).")
    max_tokens: int | None = Field(None, gt=0, description="Longest allowed conversation in tokens of the model's tokenizer; default: model.max_length.")
    pilot: int | None = Field(None, gt=0, description="Validate and report on a random sample of this many records only (pilot mode).")
    seed: int = Field(42, ge=0, description="Seed for pilot sampling.")
