"""Read raw instruction data in any supported file type and format into canonical records."""
import hashlib
import io
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

from loraflow.schemas.run_folder import RunFolder
from loraflow.schemas.config.data import DataConfig
from loraflow.schemas.preferences import OpenAIPreferenceRaw, PreferenceRaw
from loraflow.schemas.records import SHAREGPT_ROLES, AlpacaRaw, OpenAIRaw, PromptCompletionRaw, ShareGPTRaw, row_failures
from loraflow.tasks.data.dedup import content_key
from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.common.progress import progress
from loraflow.tasks.common.jsonl import write_jsonl
from loraflow.tasks.data.input_file import check_input
from loraflow.tasks.data.preferences import apply_kind
from loraflow.tasks.common.text_files import read_lines, read_text

# Fields each format owns; every other field of a record goes to metadata.
FORMAT_FIELDS = {
    "canonical": ("id", "messages", "metadata"),
    "openai": ("id", "messages", "metadata"),
    "alpaca": ("id", "instruction", "input", "output", "system", "metadata"),
    "sharegpt": ("id", "conversations", "system", "metadata"),
    "prompt_completion": ("id", "prompt", "completion", "system", "metadata"),
    "preference": ("id", "prompt", "chosen", "rejected", "system", "metadata"),
    "openai_preference": ("id", "input", "preferred_output", "non_preferred_output", "metadata"),
    "canonical_preference": ("id", "messages", "rejected", "metadata"),
}
RAW_MODELS = {"openai": OpenAIRaw, "canonical": OpenAIRaw, "alpaca": AlpacaRaw, "sharegpt": ShareGPTRaw,
              "prompt_completion": PromptCompletionRaw, "preference": PreferenceRaw,
              "openai_preference": OpenAIPreferenceRaw, "canonical_preference": OpenAIRaw}
REQUIRED = {"openai": ("messages",), "canonical": ("messages",), "alpaca": ("instruction", "output"),
            "sharegpt": ("conversations",), "prompt_completion": ("prompt", "completion"),
            "preference": ("chosen", "rejected"), "openai_preference": ("input", "preferred_output", "non_preferred_output"),
            "canonical_preference": ("messages", "rejected")}
_JSON_CELLS = ("messages", "conversations", "prompt", "completion", "metadata", "chosen", "rejected", "input",
               "preferred_output", "non_preferred_output")


def stage_dir(out_dir: str) -> Path:
    """The folder holding intermediate stage outputs of one run."""
    path = RunFolder(out_dir).stages
    path.mkdir(parents=True, exist_ok=True)
    return path


def _reason(check: str, field: str | None, value: Any) -> dict:
    return {"check": check, "field": field, "value": value}


def _read_rows(path: Path) -> tuple[list[tuple[int, Any]], list[dict], int | None]:
    """(line, parsed row) pairs, quarantine rows for lines that do not decode or parse, and the file's line count."""
    suffix = path.suffix.lower()
    rows: list[tuple[int, Any]] = []
    bad: list[dict] = []
    n_lines = None
    if suffix == ".json":
        text, _ = read_text(path)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            if not _looks_like_jsonl(text):  # JSON Lines saved as .json is common; a broken JSON document is not
                raise LoraflowError(f"{path}: not valid JSON ({err}); fix the file or save it as JSON Lines (.jsonl) so bad lines are quarantined.") from None
            suffix = ".jsonl"
        else:
            if isinstance(data, dict):
                lists = [v for v in data.values() if isinstance(v, list)]
                data = lists[0] if len(lists) == 1 and detect_format(data) is None else [data]
            rows = [(i, row) for i, row in enumerate(data if isinstance(data, list) else [data], start=1)]
    if suffix == ".jsonl":
        lines, encoding = read_lines(path)
        n_lines = len(lines)
        rows, bad = parse_lines(lines, encoding)
    elif suffix == ".csv":
        text, _ = read_text(path)
        try:
            frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
        except pd.errors.EmptyDataError:
            frame = pd.DataFrame()
        except pd.errors.ParserError as err:
            raise LoraflowError(f"{path}: not readable as CSV ({err}); fix the file or convert it to JSON Lines.") from None
        # Line 1 is the header, so data row i sits on line i + 2 (for cells without embedded newlines).
        rows = [(i + 2, _csv_row(row)) for i, row in enumerate(frame.to_dict("records"))]
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as err:  # pyarrow raises several unrelated types for a broken file
            raise LoraflowError(f"{path}: not readable as Parquet ({err}); re-export the file.") from None
        rows = [(i, row) for i, row in enumerate(table.to_pylist(), start=1)]
    return rows, bad, n_lines


def parse_lines(lines, encoding: str) -> tuple[list[tuple[int, Any]], list[dict]]:
    """(line, parsed row) pairs of JSON Lines and quarantine rows for the lines that do not decode or parse."""
    rows: list[tuple[int, Any]] = []
    bad: list[dict] = []
    for line in lines:
        if line.problem:
            bad.append({"line": line.number, "raw": line.raw, "reasons": [_reason("encoding", None, line.problem)]})
        elif line.text.strip():
            try:
                rows.append((line.number, json.loads(line.text)))
            except json.JSONDecodeError as err:
                where = f" (the file is {encoding.upper()})" if not encoding.startswith("utf-8") else ""
                bad.append({"line": line.number, "raw": line.raw, "reasons": [_reason("parse_json", None, f"{err}{where}")]})
    return rows, bad


def _looks_like_jsonl(text: str) -> bool:
    first = text.lstrip().split("\n", 1)[0]
    try:
        return isinstance(json.loads(first), dict)
    except json.JSONDecodeError:
        return False


def _csv_row(row: dict) -> dict:
    out = {}
    for key, value in row.items():
        if value == "":
            out[key] = None
        elif key in _JSON_CELLS and value.lstrip()[:1] in ("[", "{"):
            try:
                out[key] = json.loads(value)
            except json.JSONDecodeError:
                out[key] = value
        else:
            out[key] = value
    return out


def detect_format(row: dict) -> str | None:
    """The format a raw record is in, judged by its fields; None when no format fits."""
    if "preferred_output" in row or "non_preferred_output" in row:
        return "openai_preference"
    if "messages" in row and "rejected" in row:
        return "canonical_preference"
    if "chosen" in row and "rejected" in row:
        return "preference"
    if "messages" in row:
        return "canonical" if "id" in row and "metadata" in row else "openai"
    if "conversations" in row:
        return "sharegpt"
    if "instruction" in row and "output" in row:
        return "alpaca"
    if "prompt" in row and "completion" in row:
        return "prompt_completion"
    return None


def _content(value: Any) -> str:
    if isinstance(value, list):
        return "".join(part["text"] for part in value)
    return value


def _turns(value: Any, role: str) -> list[dict]:
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    return [{"role": m["role"], "content": _content(m["content"])} for m in value]


def to_messages(row: dict, fmt: str) -> list[dict]:
    """The chat turns of a raw record of a known, type-checked format."""
    system = [{"role": "system", "content": row["system"]}] if row.get("system") else []
    if fmt in ("openai", "canonical"):
        return [{"role": m["role"], "content": _content(m["content"])} for m in row["messages"]]
    if fmt == "alpaca":
        prompt = row["instruction"] + (f"\n\n{row['input']}" if row.get("input") else "")
        return system + [{"role": "user", "content": prompt}, {"role": "assistant", "content": row["output"]}]
    if fmt == "sharegpt":
        return system + [{"role": SHAREGPT_ROLES[m["from"]], "content": m["value"]} for m in row["conversations"]]
    return system + _turns(row["prompt"], "user") + _turns(row["completion"], "assistant")


PAIR_FORMATS = ("preference", "openai_preference", "canonical_preference")


def to_pair(row: dict, fmt: str) -> tuple[list[dict], str] | dict:
    """(conversation ending with the chosen answer, rejected answer) of a type-checked pair, or a quarantine reason."""
    if fmt == "canonical_preference":
        return to_messages(row, "openai"), row["rejected"]
    if fmt == "openai_preference":
        prompt = to_messages(row["input"], "openai")
        return [*prompt, *_turns(row["preferred_output"], "assistant")], _turns(row["non_preferred_output"], "assistant")[0]["content"]
    system = [{"role": "system", "content": row["system"]}] if row.get("system") else []
    chosen, rejected = _turns(row["chosen"], "assistant"), _turns(row["rejected"], "assistant")
    if row.get("prompt") is not None:
        prompt = _turns(row["prompt"], "user")
    else:  # implicit prompt: both conversations repeat it and differ in the last answer only
        prompt, chosen, rejected = chosen[:-1], chosen[-1:], rejected
        if rejected[:-1] != prompt:
            return _reason("prompt_mismatch", "rejected", "chosen and rejected conversations differ before the last answer")
        rejected = rejected[-1:]
    if len(chosen) != 1 or len(rejected) != 1:
        return _reason("one_answer", "chosen" if len(chosen) != 1 else "rejected", "a pair needs one answer on each side")
    return [*system, *prompt, *chosen], rejected[0]["content"]


def record_id(row: dict, messages: list[dict], line: int) -> str:
    """The record's own id, or a stable hash of its content and source line."""
    if isinstance(row.get("id"), (str, int)) and not isinstance(row.get("id"), bool) and str(row["id"]).strip():
        return str(row["id"])
    return "r" + hashlib.blake2b(f"{content_key(messages)}:{line}".encode(), digest_size=8).hexdigest()[:15]


def _precheck(row: Any, fmt: str | None, forced: bool) -> list[dict]:
    if not isinstance(row, dict):
        return [_reason("not_an_object", None, row)]
    if fmt is None:
        return [_reason("unknown_format", None, sorted(row))]
    reasons = [_reason("missing_field", f, None) for f in REQUIRED[fmt] if f not in row or row[f] is None] if forced else []
    if "id" in row and row["id"] is not None and (not isinstance(row["id"], (str, int)) or isinstance(row["id"], bool)):
        reasons.append(_reason("wrong_type", "id", row["id"]))
    if "metadata" in row and row["metadata"] is not None and not isinstance(row["metadata"], dict):
        reasons.append(_reason("wrong_type", "metadata", row["metadata"]))
    return reasons


def no_records_error(path) -> LoraflowError:
    return LoraflowError(f"{path}: the file holds no records; point --input at a file with records.")


def convert_rows(rows: list[tuple[int, Any]], config: DataConfig) -> tuple[list[tuple[int, dict]], list[dict]]:
    """Canonical (line, record) pairs sorted by line, and quarantine rows, for parsed input rows (kind not yet applied)."""
    quarantine: list[dict] = []
    forced = config.format != "auto"
    groups: dict[str, list[tuple[int, dict]]] = {}
    for line, row in progress(rows, "ingest"):
        fmt = config.format if forced else (detect_format(row) if isinstance(row, dict) else None)
        reasons = _precheck(row, fmt, forced)
        if reasons:
            quarantine.append({"line": line, "raw": row, "reasons": reasons})
        else:
            groups.setdefault(fmt, []).append((line, row))
    records = []
    for fmt, members in groups.items():
        # Each format's pandera model checks field types for the whole group at once (lazily).
        fields = [f for f in FORMAT_FIELDS[fmt] if f != "id" and f != "metadata" and any(f in r for _, r in members)]
        frame = pd.DataFrame({f: pd.Series([r.get(f) for _, r in members], dtype=object) for f in fields})
        failures = row_failures(RAW_MODELS[fmt].to_schema(), frame)
        for i, (line, row) in enumerate(members):
            if i in failures:
                quarantine.append({"line": line, "raw": row, "reasons": failures[i]})
                continue
            pair = to_pair(row, fmt) if fmt in PAIR_FORMATS else None
            if isinstance(pair, dict):  # a pair whose two conversations do not share the prompt
                quarantine.append({"line": line, "raw": row, "reasons": [pair]})
                continue
            messages = pair[0] if pair else to_messages(row, fmt)
            metadata = dict(row.get("metadata") or {})
            metadata.update({k: v for k, v in row.items() if k not in FORMAT_FIELDS[fmt]})
            metadata.update({"source_line": line, "source_format": fmt})
            record = {"id": record_id(row, messages, line), "messages": messages, "metadata": metadata}
            if pair:
                record["rejected"] = pair[1]
            records.append((line, record))
    records.sort(key=lambda item: item[0])
    return records, quarantine


def ingest_records(input_path: str, config: DataConfig, out_dir: str) -> dict:
    """Read the input file, normalise every record to canonical form, quarantine what cannot be read."""
    path = check_input(input_path)
    rows, quarantine, n_lines = _read_rows(path)
    if not rows and not quarantine:
        raise no_records_error(path)
    n_unreadable = len(quarantine)  # lines that did not decode or parse
    records, converted_out = convert_rows(rows, config)
    quarantine += converted_out
    kind, records, not_pairs = apply_kind(records, config.kind)
    quarantine += not_pairs
    quarantine.sort(key=lambda q: q["line"])
    for q in quarantine:
        q["stage"] = "ingest"
    folder = stage_dir(out_dir)
    records_path, quarantine_path = folder / "ingested.jsonl", folder / "quarantine_ingest.jsonl"
    write_jsonl(records_path, (r for _, r in records))
    write_jsonl(quarantine_path, quarantine)
    n_input = len(rows) + n_unreadable
    return {
        "stage": "ingest",
        "records": str(records_path),
        "quarantine": str(quarantine_path),
        "kind": kind,
        "counts": {"input": n_input, "kept": len(records), "quarantined": len(quarantine),
                   "formats": dict(Counter(r["metadata"]["source_format"] for _, r in records)),
                   **({"lines": n_lines} if n_lines is not None else {})},
    }
