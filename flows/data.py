"""The data flow: ingest -> validate -> clean -> split -> augment (train only) -> report."""
from dataclasses import replace

from prefect import flow

from loraflow.schemas.config import PipelineConfig
from loraflow.schemas.results import PreparedData
from loraflow.tasks.steps import data


@flow(name="data")
def prepare_data(config: PipelineConfig, input_path: str | None = None, out_dir: str = "runs/latest",
                 model_cache_dir: str | None = None) -> PreparedData:
    """Turn a raw file into validated, cleaned, leak-free train/val/test splits with a report."""
    inputs = data.resolve_inputs(config.data, input_path, model_cache_dir)
    digest = data.fingerprint_input(inputs.input_path)
    ingested = data.ingest(inputs.input_path, digest, config.data, out_dir)
    base_model = data.prepare_base_model(config.model, ingested.records, inputs.model_cache_dir, config.task_card.intended_use)
    # The sequence length comes from the data (model.max_length: auto), so validation quarantines only true outliers.
    lengths = data.token_lengths(ingested, base_model, config.model, config.data, config.train, config.lora)
    languages = list(config.task_card.languages)
    validated = data.validate(ingested, config.data, languages, base_model, lengths, out_dir)
    cleaned = data.clean(validated, config.clean, languages, out_dir)
    splits = data.split(cleaned, config.split, out_dir)
    # Augmentation runs after the split, on train only: augmented records can never leak into val/test.
    augmented = data.augment(splits, config.augment, languages, out_dir)
    stage_config = {name: getattr(config, name).model_dump(mode="json") for name in ("data", "clean", "split", "augment")}
    report = data.data_report(out_dir, [ingested, validated, cleaned, splits, augmented], base_model, config.task_card.name,
                              inputs.input_path, digest, stage_config, lengths)
    return PreparedData(splits=replace(splits, train=augmented.records), report=report, base_model=base_model,
                        lengths=lengths)
