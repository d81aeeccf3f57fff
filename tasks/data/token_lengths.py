"""Token lengths of the ingested records as the model sees them, and the sequence length they call for.

Runs between ingest and validate: `model.max_length: auto` resolves here (loraflow.tasks.planning.lengths), so
validation quarantines only what is longer than a length chosen from the data, and the report shows the distribution
and what each length would cost. Up to `SAMPLE` records are measured (a seeded reservoir sample of the lines: memory
stays bounded on the streamed path); below that, every record.
"""
import random
from collections.abc import Sequence
from pathlib import Path

import orjson

from loraflow.schemas.config.lora import LoraConfig
from loraflow.schemas.config.model import ModelConfig
from loraflow.schemas.config.train import TrainConfig
from loraflow.schemas.results import LengthChoice, TokenLengths
from loraflow.tasks.data.preferences import pair_token_texts
from loraflow.tasks.data.validate import count_tokens, load_tokenizer
from loraflow.tasks.planning.estimate import estimate_resources
from loraflow.tasks.planning.estimate_shapes import load_model_config
from loraflow.tasks.planning.lengths import (
    KEEP_SHARE, choose_max_length, length_choices, length_percentiles, model_context_limit, share_above,
)

SAMPLE = 20_000


def sample_records(records_path: str, sample: int = SAMPLE, seed: int = 42) -> tuple[list[dict], int]:
    """A seeded reservoir sample of the records (raw lines parsed only when kept) and how many records there are."""
    rng = random.Random(seed)
    kept: list[bytes] = []
    n = 0
    with Path(records_path).open("rb") as f:
        for line in f:
            if not line.strip():
                continue
            if len(kept) < sample:
                kept.append(line)
            else:
                j = rng.randrange(n + 1)
                if j < sample:
                    kept[j] = line
            n += 1
    return [orjson.loads(line) for line in kept], n


def record_lengths(records: Sequence[dict], tokenizer, ceiling: int) -> list[int]:
    """Tokens per record through the chat template (a pair: its longer side), counted only up to just past `ceiling`
    (the model's context: a 40 MB line is not tokenized whole); records that cannot be measured are left out
    (validation quarantines them for their real fault)."""
    counts = count_tokens(tokenizer, [r.get("messages") for r in records], max_tokens=ceiling)
    if any("rejected" in r for r in records):
        counts = [max(filter(None, (a, b)), default=None) for a, b in
                  zip(counts, count_tokens(tokenizer, pair_token_texts(list(records)), max_tokens=ceiling))]
    return [c for c in counts if c is not None]


def _peak_gib(model_config: dict, length: int, train: TrainConfig, lora: LoraConfig) -> float | None:
    try:
        found = estimate_resources(model_config, train.trained_method, lora.r, length, train.micro_batch_size,
                                   train.gradient_checkpointing, 0, 1.0, None, target_modules=lora.target_modules,
                                   lora_dropout=lora.dropout, objective=train.objective)
    except Exception:  # an architecture the estimate does not know: the lengths still stand
        return None
    return round(found.peak_gpu_memory_gib, 2)


def plan_lengths(lengths: Sequence[int], n_records: int, model: ModelConfig, max_tokens: int | None, model_config: dict,
                 train: TrainConfig, lora: LoraConfig) -> TokenLengths:
    """The training length in force, the validation limit, the distribution and the cost of each length worth comparing."""
    limit = model_context_limit(model_config)
    auto = model.max_length == "auto"
    max_length = choose_max_length(lengths, limit) if auto else int(model.max_length)
    validation_limit = max_tokens or max_length
    above, share = share_above(lengths, validation_limit)
    choices = [LengthChoice(length=length, keeps_share=round(1 - share_above(lengths, length)[1], 4),
                            tokens_vs_chosen=round(length / max_length, 3), peak_gpu_gib=_peak_gib(model_config, length, train, lora))
               for length in length_choices(lengths, limit, max_length)]
    return TokenLengths(max_length=max_length, source="auto" if auto else "model.max_length", validation_limit=validation_limit,
                        model_limit=limit, n_measured=len(lengths), n_records=n_records, percentiles=length_percentiles(lengths),
                        above_limit=above, above_share=round(share, 6), keep_share=KEEP_SHARE, choices=choices)


def measure_token_lengths(records_path: str, tokenizer_path: str, model: ModelConfig, max_tokens: int | None,
                          train: TrainConfig, lora: LoraConfig, seed: int = 42) -> TokenLengths:
    """Measure the records' token lengths with the base model's tokenizer and plan the sequence length (plan_lengths)."""
    records, n = sample_records(records_path, SAMPLE, seed)
    model_config = load_model_config(tokenizer_path)
    lengths = record_lengths(records, load_tokenizer(tokenizer_path), model_context_limit(model_config))
    return plan_lengths(lengths, n, model, max_tokens, model_config, train, lora)
