"""Which path the data stages take: in memory (`data.ingest` ... `data.split`) or streamed (`data.streaming`) on the
local or the Dask engine. Ingest decides from data.streaming, data.engine and the input file; the decision rides
along in each stage's result (`streaming`), so the later stages follow it. Both paths write the same files.
"""
from pathlib import Path

from loraflow.schemas.config import CleanConfig, DataConfig, SplitConfig
from loraflow.tasks.data.engine import engine_for


def streaming_plan(config: DataConfig, input_path: str) -> dict | None:
    """How the stages stream ({engine, workers, address, part_bytes}), or None for the in-memory path.

    dask always streams; local streams per data.streaming (auto: from data.stream_above_mb). Inputs the streaming
    reader cannot take (CSV, JSON, Parquet, UTF-16/32) load into memory on any engine.
    """
    from loraflow.tasks.data.streaming.ingest import streamable

    path = Path(input_path)
    if not path.is_file() or not streamable(path):
        return None
    if config.engine == "local":
        if config.streaming == "off" or (config.streaming == "auto" and path.stat().st_size < config.stream_above_mb * 1e6):
            return None
    return {"engine": config.engine, "workers": config.workers, "address": config.dask_address,
            "part_bytes": int(config.partition_mb * 1e6)}


def _engine(plan: dict):
    return engine_for(plan["engine"], plan["workers"], plan["address"])


def ingest(input_path: str, config: DataConfig, out_dir: str) -> dict:
    """Ingest on the planned path; the result carries the plan."""
    plan = streaming_plan(config, input_path)
    if plan is None:
        from loraflow.tasks.data.ingest import ingest_records

        return {**ingest_records(input_path, config, out_dir), "streaming": None}
    from loraflow.tasks.data.streaming.ingest import ingest_stream

    return {**ingest_stream(input_path, config, out_dir, _engine(plan), plan["part_bytes"]), "streaming": plan}


def validate(ingested: dict, config: DataConfig, languages: list[str], tokenizer_path: str | None, max_tokens: int,
             out_dir: str, lengths: dict | None = None) -> dict:
    """Validate on the path ingest took (`lengths`: the token-length plan, named in the stop message when the length
    limit is what makes records invalid)."""
    plan = ingested.get("streaming")
    counts = ingested["counts"]
    args = (ingested["records"], config, languages, tokenizer_path, max_tokens, out_dir)
    prior = dict(prior_quarantined=counts.get("quarantined", 0), prior_input=counts.get("input"), lengths=lengths)
    if plan is None:
        from loraflow.tasks.data.validate import validate_records

        return {**validate_records(*args, **prior), "streaming": None}
    from loraflow.tasks.data.streaming.validate import validate_stream

    return {**validate_stream(*args, _engine(plan), plan["part_bytes"], **prior), "streaming": plan}


def clean(validated: dict, config: CleanConfig, languages: list[str], out_dir: str) -> dict:
    """Clean on the path ingest took."""
    plan = validated.get("streaming")
    if plan is None:
        from loraflow.tasks.data.clean import clean_records

        return {**clean_records(validated["records"], config, languages, out_dir), "streaming": None}
    from loraflow.tasks.data.streaming.clean import clean_stream

    return {**clean_stream(validated["records"], config, languages, out_dir, _engine(plan), plan["part_bytes"]),
            "streaming": plan}


def split(cleaned: dict, config: SplitConfig, out_dir: str) -> dict:
    """Split on the path ingest took."""
    plan = cleaned.get("streaming")
    if plan is None:
        from loraflow.tasks.data.split import split_records

        return {**split_records(cleaned["records"], config, out_dir), "streaming": None}
    from loraflow.tasks.data.streaming.split import split_stream

    return {**split_stream(cleaned["records"], config, out_dir, _engine(plan), plan["part_bytes"]), "streaming": plan}
