"""The data flow: ingest -> validate -> clean -> split -> augment (train only) -> report."""
from dataclasses import replace

from prefect import flow

from loraflow.flows import DEFAULT_CONFIG
from loraflow.schemas.config import PipelineConfig
from loraflow.schemas.results import PreparedData
from loraflow.tasks.steps import data, planning


@flow(name="data")
def prepare_data(config: PipelineConfig, input_path: str | None = None, out_dir: str = "runs/latest",
                 model_cache_dir: str | None = None) -> PreparedData:
    """Turn a raw file into validated, cleaned, leak-free train/val/test splits with a report."""
    inputs = data.resolve_inputs(config=config.data, input_path=input_path, model_cache_dir=model_cache_dir)
    digest = data.fingerprint_input(inputs.input_path)
    ingested = data.ingest(input_path=inputs.input_path, input_digest=digest, config=config.data, out_dir=out_dir)
    base_model = data.prepare_base_model(config=config.model, records_path=ingested.records, cache_dir=inputs.model_cache_dir,
                                         intended_use=config.task_card.intended_use)
    # The sequence length comes from the data (model.max_length: auto), so validation quarantines only true outliers.
    lengths = data.token_lengths(ingested=ingested, tokenizer_path=base_model, model=config.model, data=config.data,
                                 train=config.train, lora=config.lora)
    languages = list(config.task_card.languages)
    validated = data.validate(ingested=ingested, config=config.data, languages=languages, tokenizer_path=base_model,
                              lengths=lengths, out_dir=out_dir)
    cleaned = data.clean(validated=validated, config=config.clean, languages=languages, out_dir=out_dir)
    splits = data.split(cleaned=cleaned, config=config.split, out_dir=out_dir)
    # Augmentation runs after the split, on train only: augmented records can never leak into val/test.
    augmented = data.augment(splits=splits, config=config.augment, languages=languages, out_dir=out_dir)
    stage_config = {**{name: getattr(config, name).model_dump(mode="json") for name in ("data", "clean", "split", "augment")},
                    "validate": {"max_tokens": lengths.validation_limit}}  # the limit in force (data.max_tokens, else max_length)
    report = data.data_report(out_dir=out_dir, stage_results=[ingested, validated, cleaned, splits, augmented],
                              tokenizer_path=base_model, task_name=config.task_card.name, input_path=inputs.input_path,
                              input_sha256=digest, config=stage_config, lengths=lengths)
    return PreparedData(splits=replace(splits, train=augmented.records), report=report, base_model=base_model,
                        lengths=lengths)


@flow(name="data")
def prepare_data_from_file(config_path: str = DEFAULT_CONFIG, input_path: str = "", out_dir: str = "runs/data",
                           base_model: str = "", overrides: list[str] = []) -> dict:  # noqa: B006 (never mutated)
    """The data deployment's Run form: a config file plus the settings people change most; no edits prepares the example.

    Args:
        config_path: Pipeline YAML, relative to the repository root; the bundled quickstart example by default.
        input_path: Input data file (.jsonl/.json/.csv/.parquet); empty: the config's data.path.
        out_dir: Run folder, relative to the repository root; the splits, quarantine and report go to its data/.
        base_model: The model whose tokenizer counts tokens (model.name_or_path: a hub id, a local folder, smollm2-135m-instruct, tiny-random); empty: the config's.
        overrides: Any other setting as dotted.key=value, e.g. split.seed=7 or clean.near_dup_threshold=0.9 (`loraflow config schema` lists every key).
    """
    config = planning.load_pipeline_config(config_path, [*([f"model.name_or_path={base_model}"] if base_model else []), *overrides])
    return prepare_data.fn(config=config, input_path=input_path or None, out_dir=out_dir).to_dict()
