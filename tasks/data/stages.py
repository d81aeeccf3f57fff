"""Which path the data stages take: in memory (`data.ingest` ... `data.split`) or streamed (`data.streaming`) on the
local or the Dask engine. Ingest decides from data.streaming, data.engine and the input file; the decision rides
along in each stage's result (`streaming`), so the later stages follow it. Both paths write the same files.
"""
from pathlib import Path

from loraflow.schemas.config import CleanConfig, DataConfig, SplitConfig
from loraflow.schemas.results import DataStageResult, Splits, StreamingPlan, TokenLengths
from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.data.engine import engine_for


def streaming_plan(config: DataConfig, input_path: str) -> StreamingPlan | None:
    """How the stages stream, or None for the in-memory path.

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
    return StreamingPlan(engine=config.engine, workers=config.workers, address=config.dask_address,
                         part_bytes=int(config.partition_mb * 1e6))


def stage_result(written: dict, plan: StreamingPlan | None) -> DataStageResult:
    """A stage's result from what its in-memory or streamed path wrote (those still return their own dict)."""
    return DataStageResult.from_dict({**written, "streaming": plan})


def _engine(plan: StreamingPlan):
    return engine_for(plan.engine, plan.workers, plan.address)


def ingest(input_path: str, config: DataConfig, out_dir: str) -> DataStageResult:
    """Ingest on the planned path; the result carries the plan."""
    plan = streaming_plan(config, input_path)
    if plan is None:
        from loraflow.tasks.data.ingest import ingest_records

        return stage_result(ingest_records(input_path, config, out_dir), plan)
    from loraflow.tasks.data.streaming.ingest import ingest_stream

    return stage_result(ingest_stream(input_path, config, out_dir, _engine(plan), plan.part_bytes), plan)


def validate(ingested: DataStageResult, config: DataConfig, languages: list[str], tokenizer_path: str | None,
             max_tokens: int, out_dir: str, lengths: TokenLengths | None = None) -> DataStageResult:
    """Validate on the path ingest took (`lengths`: the token-length plan, named in the stop message when the length
    limit is what makes records invalid). Too many invalid records raise a LoraflowError whose `result` is this
    stage's result, so the report can still be written."""
    plan = ingested.streaming
    counts = ingested.counts
    args = (ingested.records, config, languages, tokenizer_path, max_tokens, out_dir)
    prior = dict(prior_quarantined=counts.get("quarantined", 0), prior_input=counts.get("input"), lengths=lengths)
    try:
        if plan is None:
            from loraflow.tasks.data.validate import validate_records

            return stage_result(validate_records(*args, **prior), plan)
        from loraflow.tasks.data.streaming.validate import validate_stream

        return stage_result(validate_stream(*args, _engine(plan), plan.part_bytes, **prior), plan)
    except LoraflowError as error:
        if isinstance(getattr(error, "result", None), dict):
            error.result = stage_result(error.result, plan)
        raise


def clean(validated: DataStageResult, config: CleanConfig, languages: list[str], out_dir: str) -> DataStageResult:
    """Clean on the path ingest took."""
    plan = validated.streaming
    if plan is None:
        from loraflow.tasks.data.clean import clean_records

        return stage_result(clean_records(validated.records, config, languages, out_dir), plan)
    from loraflow.tasks.data.streaming.clean import clean_stream

    return stage_result(clean_stream(validated.records, config, languages, out_dir, _engine(plan), plan.part_bytes), plan)


def split(cleaned: DataStageResult, config: SplitConfig, out_dir: str) -> Splits:
    """Split on the path ingest took."""
    plan = cleaned.streaming
    if plan is None:
        from loraflow.tasks.data.split import split_records

        return Splits.from_dict({**split_records(cleaned.records, config, out_dir), "streaming": plan})
    from loraflow.tasks.data.streaming.split import split_stream

    return Splits.from_dict({**split_stream(cleaned.records, config, out_dir, _engine(plan), plan.part_bytes),
                             "streaming": plan})
