"""Prefect wrappers of the data stages: caching, retries and logging around the plain functions in tasks/.

Deterministic data stages are cached on their inputs and the task's source (results persisted), so a rerun
with the same config shows them `Cached` and skips their work. Training and anything with side effects
outside the run folder is never cached. Tasks that reach the network retry; user errors are not retried.
"""
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import INPUTS, NO_CACHE, TASK_SOURCE, CachePolicy

from loraflow.schemas.run_folder import RunFolder
from loraflow.schemas.config import AugmentConfig, CleanConfig, DataConfig, LoraConfig, ModelConfig, SplitConfig, TrainConfig
from loraflow.schemas.results import DataReport, DataStageResult, InputFiles, Splits, TokenLengths
from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.steps import not_user_error


@dataclass
class RunFolderToken(CachePolicy):
    """Cache-key part: a token kept in the task's run folder, so deleting or emptying the folder re-runs its stages.

    Inputs alone would still hit the cache for the same `out_dir` after its files were deleted, and hand the next
    stage paths that no longer exist.
    """

    def compute_key(self, task_ctx, inputs: dict[str, Any], flow_parameters: dict[str, Any], **kwargs: Any) -> str | None:
        out_dir = inputs.get("out_dir")
        if not out_dir:
            return None
        marker = RunFolder(out_dir).data / ".cache-token"
        if not marker.is_file():
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(uuid.uuid4().hex)
        return marker.read_text().strip()


DATA_TASK = dict(cache_policy=INPUTS + TASK_SOURCE + RunFolderToken(), persist_result=True,
                 cache_expiration=timedelta(days=30))


@task(name="resolve-inputs", cache_policy=NO_CACHE)
def resolve_inputs(config: DataConfig, input_path: str | None, model_cache_dir: str | None) -> InputFiles:
    """The input file (argument, else data.path; checked first: a flow may start without the CLI) and the model cache
    folder (else LORAFLOW_HOME/models)."""
    from loraflow.tasks.common.settings import loraflow_home
    from loraflow.tasks.data.input_file import checked_input

    path = checked_input(config, input_path)
    return InputFiles(input_path=str(path), model_cache_dir=str(model_cache_dir or loraflow_home() / "models"))


@task(name="fingerprint-input", cache_policy=NO_CACHE)
def fingerprint_input(input_path: str) -> str:
    """Content hash of the input file, so the data cache follows the data, not just its path."""
    from loraflow.tasks.tracking.runs import file_digest

    return file_digest(input_path)


@task(name="ingest", **DATA_TASK)
def ingest(input_path: str, input_digest: str, config: DataConfig, out_dir: str) -> DataStageResult:
    """Read and normalise the input file to canonical records; unparseable rows are quarantined.

    Large JSON Lines inputs (data.streaming, data.engine) stream through the stages in bounded memory.
    """
    from loraflow.tasks.data import stages

    get_run_logger().info("stage: ingest %s", input_path)
    result = stages.ingest(input_path, config, out_dir)
    if result.streaming:
        get_run_logger().info("data stages stream on the %s engine", result.streaming.engine)
    return result


@task(name="prepare-base-model", retries=2, retry_delay_seconds=10, retry_condition_fn=not_user_error,
      cache_policy=NO_CACHE)
def prepare_base_model(config: ModelConfig, records_path: str, cache_dir: str, intended_use: str) -> str:
    """Resolve the base model to a local folder (downloads or converts once; cached on disk); warn on licence conflicts."""
    from loraflow.tasks.common.jsonl import iter_jsonl
    from loraflow.tasks.planning.model_advice import licence_conflicts
    from loraflow.tasks.common.base_model import TINY, resolve_base_model

    get_run_logger().info("stage: base model %s", config.name_or_path)
    texts = None
    if config.name_or_path == TINY:  # the tiny test model's tokenizer is trained on the data itself
        texts = [m["content"] for r in iter_jsonl(records_path) for m in r["messages"]]
    path = resolve_base_model(config.name_or_path, config.gguf_file, config.revision, config.cache_dir or cache_dir, texts)
    for conflict in licence_conflicts(path, intended_use):
        get_run_logger().warning("licence: %s", conflict)
    return path


@task(name="token-lengths", **DATA_TASK)
def token_lengths(ingested: DataStageResult, tokenizer_path: str, model: ModelConfig, data: DataConfig, train: TrainConfig,
                  lora: LoraConfig) -> TokenLengths:
    """Measure the records' token lengths with the model's tokenizer; resolve model.max_length (auto: from the data)."""
    from loraflow.tasks.data.token_lengths import measure_token_lengths
    from loraflow.tasks.planning.lengths import length_hint

    plan = measure_token_lengths(ingested.records, tokenizer_path, model, data.max_tokens, train, lora, data.seed)
    points = ", ".join(f"{k} {v}" for k, v in plan.percentiles.items())
    get_run_logger().info("stage: token lengths (%d records measured: %s) -> max_length %d (%s)", plan.n_measured, points,
                          plan.max_length, plan.source)
    if plan.above_limit:
        get_run_logger().warning("lengths: %s", length_hint(plan))
    return plan


@task(name="validate", **DATA_TASK)
def validate(ingested: DataStageResult, config: DataConfig, languages: list[str], tokenizer_path: str, lengths: TokenLengths,
             out_dir: str) -> DataStageResult:
    """Validate canonical records against the pandera contract; invalid rows go to quarantine with reasons."""
    from loraflow.tasks.data import stages

    get_run_logger().info("stage: validate")
    from loraflow.tasks.data.report import write_data_report

    try:
        return stages.validate(ingested, config, languages, tokenizer_path, lengths.validation_limit, out_dir, lengths)
    except LoraflowError as error:
        if getattr(error, "result", None):  # too many invalid rows: still leave the report of what was found
            write_data_report(out_dir, [ingested, error.result], tokenizer_path)
        raise


@task(name="clean", **DATA_TASK)
def clean(validated: DataStageResult, config: CleanConfig, languages: list[str], out_dir: str) -> DataStageResult:
    """Normalise, deduplicate (exact + near) and filter low-quality records, each removal with a reason."""
    from loraflow.tasks.data import stages

    get_run_logger().info("stage: clean")
    return stages.clean(validated, config, languages, out_dir)


@task(name="split", **DATA_TASK)
def split(cleaned: DataStageResult, config: SplitConfig, out_dir: str) -> Splits:
    """Split into train/val/test without leakage (and keep a frozen test set)."""
    from loraflow.tasks.data import stages

    get_run_logger().info("stage: split")
    result = stages.split(cleaned, config, out_dir)
    if result.counts["ratio_note"]:
        get_run_logger().warning("split: %s", result.counts["ratio_note"])
    return result


@task(name="augment", retries=2, retry_delay_seconds=5, retry_condition_fn=not_user_error, **DATA_TASK)
def augment(splits: Splits, config: AugmentConfig, languages: list[str], out_dir: str) -> DataStageResult:
    """Augment the train split only (the endpoint may be remote, hence retries)."""
    from loraflow.tasks.data.augment import augment_records

    get_run_logger().info("stage: augment")
    return augment_records(splits.train, config, languages, out_dir)


@task(name="data-report", **DATA_TASK)
def data_report(out_dir: str, stage_results: list[DataStageResult | Splits], tokenizer_path: str, task_name: str,
                input_path: str, input_sha256: str, config: dict, lengths: TokenLengths | None = None) -> DataReport:
    """Counts per stage and reason (conservation checked), histograms, diversity: report.json and report.html.

    The page's header names the task, the flow run, the input file and hash, and the data-stage config it came from.
    """
    from prefect import runtime

    from loraflow.tasks.data.report import write_data_report

    get_run_logger().info("stage: data report")
    header = {"task": task_name, "run folder": out_dir, "flow run": f"{runtime.flow_run.name} ({runtime.flow_run.id})",
              "input": input_path, "input sha256": input_sha256, "config": config}
    return write_data_report(out_dir, stage_results, tokenizer_path, header, lengths)
