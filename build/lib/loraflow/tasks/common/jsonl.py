"""Reading and writing JSON Lines files: the format every stage hands to the next (orjson: several times faster)."""
import json

import orjson
from collections.abc import Iterable, Iterator
from pathlib import Path


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> int:
    """Write rows as UTF-8 JSON Lines (atomically: a temp file renamed into place); returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    count = 0
    with tmp.open("wb") as f:
        for row in rows:
            f.write(_dumps(row))
            count += 1
    tmp.replace(path)
    return count


def _dumps(row: dict) -> bytes:
    try:
        return orjson.dumps(row, default=str, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS)
    except TypeError:  # integers beyond 64 bits, which user data can hold: the stdlib handles any size
        return (json.dumps(row, ensure_ascii=False, default=str) + "\n").encode()


def iter_jsonl(path: str | Path) -> Iterator[dict]:
    """Yield the rows of a JSON Lines file that this project wrote (blank lines skipped)."""
    with Path(path).open("rb") as f:
        for line in f:
            if line.strip():
                yield orjson.loads(line)


def read_jsonl(path: str | Path) -> list[dict]:
    """All rows of a JSON Lines file that this project wrote."""
    return list(iter_jsonl(path))
