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
    streaming: Literal["auto", "on", "off"] = Field(
        "auto", description="Streaming (out-of-core) data stages: records pass through in batches and dedup keys, MinHash "
        "signatures and LSH band keys live in numpy arrays and files, so memory stays bounded at tens of millions of "
        "records; results equal the in-memory path. auto: stream JSON Lines (UTF-8) inputs of at least data.stream_above_mb; "
        "on: stream every JSON Lines input; off: load each stage into memory. Other file types always load into memory.")
    stream_above_mb: float = Field(256.0, ge=0.0, description="Input size in MB from which data.streaming=auto streams (256 MB is about 1M short chat records).")
    engine: Literal["local", "dask"] = Field(
        "local", description="Where the streaming stages run their partition work: local (this process) or dask (a Dask "
        "cluster: data.dask_address or LORAFLOW_DASK_ADDRESS, else a local cluster of data.workers processes). dask always "
        "streams; its workers must see the run folder at the same path. Results equal the local engine's.")
    workers: int = Field(2, ge=1, description="Worker processes of the local Dask cluster started when data.engine=dask and no address is set.")
    dask_address: str | None = Field(None, description="Dask scheduler address (e.g. tcp://dask-scheduler:8786) for data.engine=dask; LORAFLOW_DASK_ADDRESS overrides it.")
    partition_mb: float = Field(64.0, gt=0.0, description="Size of the file partitions the streaming stages hand to workers, in MB.")
