"""Ingest streamed: a JSON Lines input read in line-aligned partitions and batches, each converted as
`loraflow.tasks.data.ingest.ingest_records` converts the whole file, so the output files are the same line for line."""
import codecs
from collections import Counter
from pathlib import Path

from loraflow.schemas.config.data import DataConfig
from loraflow.schemas.preferences import is_pair
from loraflow.tasks.data.ingest import convert_rows, no_records_error, parse_lines, stage_dir
from loraflow.tasks.data.input_file import check_input
from loraflow.tasks.common.jsonl import _dumps
from loraflow.tasks.data.preferences import apply_kind, resolve_kind
from loraflow.tasks.data.streaming.io import Part, join_parts, line_batches, part_path, partitions
from loraflow.tasks.common.text_files import cr_only, detect_encoding, utf8_line


def streamable(path: str | Path) -> bool:
    """Whether the streaming stages can read the input: JSON Lines in UTF-8 (UTF-16/32 files load into memory)."""
    path = Path(path)
    if path.suffix.lower() != ".jsonl":
        return False
    with path.open("rb") as f:
        head = f.read(65536)
    return detect_encoding(head).startswith("utf-8") and not cr_only(head)  # "\r"-only lines: read whole


def ingest_part(part: Part, config: DataConfig, folder: str) -> dict:
    """Convert one partition of the input; write its records and quarantine rows as part files; return its counts."""
    folder_ = Path(folder)
    out = {"records": str(part_path(folder_, "ingested.jsonl", part.number)),
           "quarantine": str(part_path(folder_, "quarantine_ingest.jsonl", part.number))}
    counts = Counter()
    formats: Counter = Counter()
    Path(out["records"]).parent.mkdir(parents=True, exist_ok=True)
    with open(out["records"], "wb") as rec_f, open(out["quarantine"], "wb") as q_f:
        for batch in line_batches(part):
            lines = [utf8_line(n, raw.removeprefix(codecs.BOM_UTF8) if n == 1 else raw) for n, raw in batch]
            counts["lines"] += len(lines)
            rows, quarantine = parse_lines(lines, "utf-8")
            counts["rows"] += len(rows)
            counts["unreadable"] += len(quarantine)
            records, converted_out = convert_rows(rows, config)
            quarantine += converted_out
            if config.kind == "auto":  # decided over the whole file once every partition is read
                counts["pairs"] += sum(1 for _, r in records if is_pair(r))
            else:
                _, records, not_pairs = apply_kind(records, config.kind)
                quarantine += not_pairs
            quarantine.sort(key=lambda q: q["line"])
            for q in quarantine:
                q["stage"] = "ingest"
                q_f.write(_dumps(q))
            for _, record in records:
                rec_f.write(_dumps(record))
                formats[record["metadata"]["source_format"]] += 1
            counts["kept"] += len(records)
            counts["quarantined"] += len(quarantine)
    return {**out, "counts": dict(counts), "formats": dict(formats)}


def ingest_stream(input_path: str, config: DataConfig, out_dir: str, engine, part_bytes: int) -> dict:
    """ingest_records for a JSON Lines input, partition by partition on `engine`; the same files and counts."""
    path = check_input(input_path)
    folder = stage_dir(out_dir)
    parts = partitions(path, part_bytes)
    results = engine.map(ingest_part, parts, config=config, folder=str(folder))
    total = Counter()
    formats: Counter = Counter()
    for r in results:
        total.update(r["counts"])
        formats.update(r["formats"])
    try:
        if not total["rows"] and not total["unreadable"]:
            raise no_records_error(path)
        kind = resolve_kind(total["pairs"], total["kept"], config.kind)
    except Exception:
        for r in results:
            Path(r["records"]).unlink(missing_ok=True)
            Path(r["quarantine"]).unlink(missing_ok=True)
        raise
    records_path, quarantine_path = folder / "ingested.jsonl", folder / "quarantine_ingest.jsonl"
    join_parts([r["records"] for r in results], records_path)
    join_parts([r["quarantine"] for r in results], quarantine_path)
    return {
        "stage": "ingest",
        "records": str(records_path),
        "quarantine": str(quarantine_path),
        "kind": kind,
        "counts": {"input": total["rows"] + total["unreadable"], "kept": total["kept"], "quarantined": total["quarantined"],
                   "formats": dict(formats), "lines": total["lines"]},
    }
