"""Validate canonical records against the CanonicalRecord contract; quarantine failures with reasons."""
import random
from collections import Counter
from pathlib import Path

import pandas as pd
import pandera.pandas as pa

from loraflow.schemas.run_folder import RunFolder
from loraflow.schemas.results import TokenLengths
from loraflow.schemas.config.data import DataConfig
from loraflow.schemas.preferences import PreferenceRecord
from loraflow.schemas.records import CanonicalRecord, row_failures
from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.data.ingest import stage_dir
from loraflow.tasks.data.preferences import pair_token_texts
from loraflow.tasks.planning.lengths import length_hint
from loraflow.tasks.common.progress import progress
from loraflow.tasks.common.jsonl import read_jsonl, write_jsonl
from loraflow.tasks.common.token_budget import capped_token_counts


def records_frame(records: list[dict]) -> pd.DataFrame:
    """Records as an object-typed frame (pandas 3 would otherwise turn ids into a string dtype); pairs add `rejected`."""
    columns = ["id", "messages", "metadata"] + (["rejected"] if any("rejected" in r for r in records) else [])
    return pd.DataFrame({c: pd.Series([r.get(c) for r in records], dtype=object) for c in columns})


def load_tokenizer(tokenizer_path: str | None):
    """The model's tokenizer, or None when no path is given."""
    if not tokenizer_path:
        return None
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(tokenizer_path)
    except (OSError, ValueError) as err:
        raise LoraflowError(f"{tokenizer_path}: cannot load a tokenizer ({err}); set model.path to a local model folder or hub id.") from None


def count_tokens(tokenizer, conversations: list, batch_size: int = 512, max_tokens: int | None = None) -> list[int | None]:
    """Tokens per conversation as the model sees it (through its chat template when it has one); one far longer than
    max_tokens is counted only until it is certainly over (a count above max_tokens, not its whole length)."""
    counts: list[int | None] = []
    for start in progress(range(0, len(conversations), batch_size), "count tokens", records=len(conversations), unit="batch"):
        batch = conversations[start:start + batch_size]
        texts = []
        for messages in batch:
            if not isinstance(messages, list) or not all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages):
                texts.append(None)
            elif getattr(tokenizer, "chat_template", None):
                try:
                    texts.append(tokenizer.apply_chat_template(messages, tokenize=False))
                except Exception:  # a template may reject odd role orders; those rows fail other checks anyway
                    texts.append("\n".join(m["content"] for m in messages))
            else:
                texts.append("\n".join(m["content"] for m in messages))
        good = [t for t in texts if t is not None]
        it = iter(capped_token_counts(tokenizer, good, max_tokens))
        counts.extend(next(it) if t is not None else None for t in texts)
    return counts


def canonical_schema(max_tokens: int | None, pairs: bool = False) -> pa.DataFrameSchema:
    """The CanonicalRecord (or PreferenceRecord) schema with this run's token limit; later duplicates of an id fail."""
    schema = (PreferenceRecord if pairs else CanonicalRecord).to_schema().update_column("id", report_duplicates="exclude_first")
    if max_tokens:
        schema = schema.update_column("n_tokens", checks=[pa.Check.le(max_tokens)])
    return schema


def invalid_share(prior_quarantined: int, prior_input: int, quarantined: int, evaluated: int) -> float:
    """Estimated share of invalid records over ingest and validation (exact outside pilot mode)."""
    ingest_share = prior_quarantined / prior_input if prior_input else 0.0
    validate_share = quarantined / evaluated if evaluated else 0.0
    return ingest_share + validate_share * (1.0 - ingest_share)


def validate_batch(records: list[dict], tokenizer, max_tokens: int) -> tuple[list[dict], list[dict]]:
    """(valid records, quarantine rows) of one batch checked against the contract (ids unique within the batch)."""
    frame = records_frame(records)
    pairs = "rejected" in frame.columns
    if tokenizer is not None:
        counts = count_tokens(tokenizer, list(frame["messages"]), max_tokens=max_tokens)
        if pairs:  # a pair is as long as its longer side
            counts = [max(filter(None, (a, b)), default=None)
                      for a, b in zip(counts, count_tokens(tokenizer, pair_token_texts(records), max_tokens=max_tokens))]
        frame["n_tokens"] = pd.array(counts, dtype="Int64")
    failures = row_failures(canonical_schema(max_tokens if tokenizer is not None else None, pairs), frame)
    kept, quarantine = [], []
    for i, record in enumerate(records):
        if i in failures:
            quarantine.append(quarantine_row(record, failures[i]))
        else:
            if tokenizer is not None:
                record["metadata"]["n_tokens"] = int(frame.at[i, "n_tokens"])
            kept.append(record)
    return kept, quarantine


def quarantine_row(record: dict, reasons: list[dict]) -> dict:
    """A validation quarantine row: the record's source line and id, the record and why it failed."""
    meta = record.get("metadata") if isinstance(record.get("metadata"), dict) else {}
    return {"line": meta.get("source_line"), "id": record.get("id"), "raw": record, "reasons": reasons, "stage": "validate"}


def invalid_error(share: float, config: DataConfig, reasons: Counter, out_dir: str, lengths: TokenLengths | None = None) -> LoraflowError:
    """The stop (exit 2) when more than data.max_invalid_share of the records is invalid.

    When records fail only for their length, the message blames the length limit, not the data (token_lengths.length_hint).
    """
    # Every reason of both stages, most frequent first: the first few alone hid most of the rows' problems.
    listed = ", ".join(f"{k} x{v}" for k, v in reasons.most_common())
    hint = length_hint(lengths) if reasons.get("max_tokens") else ""
    fix = "fix the data or raise data.max_invalid_share" if set(reasons) - {"max_tokens"} else "raise the length limit"
    return LoraflowError(
        f"{share:.1%} of records are invalid (over data.max_invalid_share={config.max_invalid_share:g}; "
        f"reasons: {listed}); see {Path(out_dir) / 'data'} quarantine files, {fix}." + (f" {hint}" if hint else ""),
        exit_code=2)


def validate_records(records_path: str, config: DataConfig, languages: list[str], tokenizer_path: str | None,
                     max_tokens: int, out_dir: str, prior_quarantined: int = 0, prior_input: int | None = None,
                     lengths: TokenLengths | None = None) -> dict:
    """Lazily validate every record; write valid ones and quarantine the rest; stop (exit 2) over the threshold."""
    records = read_jsonl(records_path)
    n_input = len(records)
    pilot_skipped = 0
    if config.pilot and config.pilot < n_input:
        keep = sorted(random.Random(config.seed).sample(range(n_input), config.pilot))
        pilot_skipped = n_input - len(keep)
        records = [records[i] for i in keep]
    kept, quarantine = validate_batch(records, load_tokenizer(tokenizer_path), max_tokens)
    folder = stage_dir(out_dir)
    records_out, quarantine_out = folder / "validated.jsonl", folder / "quarantine_validate.jsonl"
    write_jsonl(records_out, kept)
    write_jsonl(quarantine_out, quarantine)
    share = invalid_share(prior_quarantined, prior_input or (n_input + prior_quarantined), len(quarantine), len(records))
    result = {
        "stage": "validate",
        "records": str(records_out),
        "quarantine": str(quarantine_out),
        "pilot": bool(config.pilot),
        "counts": {"input": n_input, "kept": len(kept), "quarantined": len(quarantine), "pilot_skipped": pilot_skipped,
                   "invalid_share": round(share, 6),
                   "reasons": dict(Counter(r["check"] for q in quarantine for r in q["reasons"]))},
    }
    if share > config.max_invalid_share:
        ingest_quarantine = folder / "quarantine_ingest.jsonl"
        earlier = read_jsonl(ingest_quarantine) if ingest_quarantine.is_file() else []
        err = invalid_error(share, config, Counter(r["check"] for q in earlier + quarantine for r in q["reasons"]), out_dir,
                            lengths)
        err.result = result
        # The run stops here, so the run folder's quarantine.jsonl (normally merged by the report) is written now.
        write_jsonl(RunFolder(out_dir).data / "quarantine.jsonl", earlier + quarantine)
        raise err
    return result
