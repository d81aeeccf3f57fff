"""Validate streamed: the contract checked batch by batch (`validate_batch`), ids made unique over the whole file by
sorting 16-byte id digests, so kept and quarantined records equal `validate_records` on the whole file."""
import hashlib
import random
from collections import Counter
from pathlib import Path

import numpy as np
import orjson

from loraflow.schemas.results import TokenLengths
from loraflow.schemas.config.data import DataConfig
from loraflow.schemas.run_folder import RunFolder
from loraflow.tasks.data.ingest import stage_dir
from loraflow.tasks.common.jsonl import _dumps, iter_jsonl
from loraflow.tasks.data.streaming.io import Part, count_newlines, join_parts, part_path, partitions, record_batches
from loraflow.tasks.data.validate import invalid_error, invalid_share, load_tokenizer, quarantine_row, validate_batch


def id_digest(value) -> bytes:
    """16 bytes standing for an id: equal ids give equal digests (non-text ids by their JSON form)."""
    text = value if isinstance(value, str) else "\x00" + orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def first_occurrence(keys: np.ndarray) -> np.ndarray:
    """For each row, the index of the first row with the same key (keys: fixed-width bytes or numbers)."""
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return first[inverse.reshape(-1)]


def validate_part(part: Part, config: DataConfig, tokenizer_path: str | None, max_tokens: int, folder: str,
                  pilot: np.ndarray | None) -> dict:
    """Validate one partition batch by batch; part files of kept and quarantined records (each line tagged with its
    record index) and the id digest of every evaluated record."""
    tokenizer = load_tokenizer(tokenizer_path)
    kept_path = part_path(Path(folder), "validated.jsonl", part.number)
    quarantine_path = part_path(Path(folder), "quarantine_validate.jsonl", part.number)
    kept_path.parent.mkdir(parents=True, exist_ok=True)
    digests, index, reasons = [], [], Counter()
    kept_index, quarantine_index = [], []
    with kept_path.open("wb") as kf, quarantine_path.open("wb") as qf:
        for first, records in record_batches(part):
            positions = np.arange(first, first + len(records))
            if pilot is not None:
                chosen = np.isin(positions, pilot)
                records = [r for r, c in zip(records, chosen) if c]
                positions = positions[chosen]
            if not records:
                continue
            digests += [id_digest(r.get("id")) for r in records]
            index.append(positions)
            ids = [id(r) for r in records]
            kept, quarantine = validate_batch(records, tokenizer, max_tokens)
            where = {i: p for i, p in zip(ids, positions.tolist())}
            for r in kept:
                kf.write(_dumps(r))
                kept_index.append(where[id(r)])
            for q in quarantine:
                qf.write(_dumps(q))
                quarantine_index.append(where[id(q["raw"])])
                reasons.update(x["check"] for x in q["reasons"])
    return {"kept": str(kept_path), "quarantine": str(quarantine_path), "digests": np.array(digests, dtype="S16"),
            "index": np.concatenate(index) if index else np.empty(0, np.int64), "kept_index": np.array(kept_index, np.int64),
            "quarantine_index": np.array(quarantine_index, np.int64), "reasons": reasons}


def _fix_duplicates(result: dict, late: set[int]) -> Counter:
    """Move records whose id appeared in an earlier batch from kept to quarantine (or add the reason); returns the
    reasons added."""
    added = Counter()
    kept = list(zip(result["kept_index"].tolist(), iter_jsonl(result["kept"])))
    quarantine = list(zip(result["quarantine_index"].tolist(), iter_jsonl(result["quarantine"])))
    out_k, out_q = [], []
    for i, q in quarantine:
        if i in late and not any(x["check"] == "unique_id" for x in q["reasons"]):
            q["reasons"].insert(0, {"check": "unique_id", "field": "id", "value": q["id"]})
            added["unique_id"] += 1
        out_q.append((i, q))
    for i, r in kept:
        if i in late:
            out_q.append((i, quarantine_row(r, [{"check": "unique_id", "field": "id", "value": r.get("id")}])))
            added["unique_id"] += 1
        else:
            out_k.append(r)
    out_q.sort(key=lambda iq: iq[0])
    Path(result["kept"]).write_bytes(b"".join(_dumps(r) for r in out_k))
    Path(result["quarantine"]).write_bytes(b"".join(_dumps(q) for _, q in out_q))
    result["moved"] = len(out_q) - len(quarantine)
    return added


def validate_stream(records_path: str, config: DataConfig, languages: list[str], tokenizer_path: str | None,
                    max_tokens: int, out_dir: str, engine, part_bytes: int, prior_quarantined: int = 0,
                    prior_input: int | None = None, lengths: TokenLengths | None = None) -> dict:
    """validate_records, partition by partition on `engine`; the same files, counts and stop."""
    n_input = count_newlines(records_path)
    pilot, pilot_skipped = None, 0
    if config.pilot and config.pilot < n_input:
        pilot = np.array(sorted(random.Random(config.seed).sample(range(n_input), config.pilot)), np.int64)
        pilot_skipped = n_input - len(pilot)
    folder = stage_dir(out_dir)
    parts = partitions(records_path, part_bytes)
    results = engine.map(validate_part, parts, config=config, tokenizer_path=tokenizer_path, max_tokens=max_tokens,
                         folder=str(folder), pilot=pilot)
    reasons = sum((r["reasons"] for r in results), Counter())
    digests = np.concatenate([r["digests"] for r in results]) if results else np.empty(0, "S16")
    index = np.concatenate([r["index"] for r in results]) if results else np.empty(0, np.int64)
    late = index[first_occurrence(digests) != np.arange(len(digests))] if len(digests) else index
    late_set = set(late.tolist())
    for r in results:  # ids repeated across batches: rare, so only the parts holding one are rewritten
        seen = np.concatenate([r["kept_index"], r["quarantine_index"]])
        if late_set and np.isin(seen, late).any():
            reasons.update(_fix_duplicates(r, late_set))
    evaluated = len(digests)
    n_quarantined = sum(len(r["quarantine_index"]) + r.get("moved", 0) for r in results)
    records_out, quarantine_out = folder / "validated.jsonl", folder / "quarantine_validate.jsonl"
    join_parts([r["kept"] for r in results], records_out)
    join_parts([r["quarantine"] for r in results], quarantine_out)
    share = invalid_share(prior_quarantined, prior_input or (n_input + prior_quarantined), n_quarantined, evaluated)
    result = {
        "stage": "validate", "records": str(records_out), "quarantine": str(quarantine_out), "pilot": bool(config.pilot),
        "counts": {"input": n_input, "kept": evaluated - n_quarantined, "quarantined": n_quarantined,
                   "pilot_skipped": pilot_skipped, "invalid_share": round(share, 6), "reasons": dict(reasons)},
    }
    if share > config.max_invalid_share:
        ingest_quarantine = folder / "quarantine_ingest.jsonl"
        both = Counter()
        for path in (ingest_quarantine, quarantine_out):
            if path.is_file():
                both.update(x["check"] for q in iter_jsonl(path) for x in q["reasons"])
        err = invalid_error(share, config, both, out_dir, lengths)
        err.result = result
        # The run stops here, so the run folder's quarantine.jsonl (normally merged by the report) is written now.
        merged = RunFolder(out_dir).data / "quarantine.jsonl"
        tmp = [folder / "parts" / "q_ingest.copy", folder / "parts" / "q_validate.copy"]
        for src, dst in zip((ingest_quarantine, quarantine_out), tmp):
            dst.write_bytes(src.read_bytes() if src.is_file() else b"")
        join_parts(tmp, merged)
        raise err
    return result
