"""Files in pieces for the streaming data stages: line-aligned byte ranges, batches of lines, part files joined.

A stage file (JSON Lines written by this project) is cut into partitions at line ends; each partition knows the
number of its first line, so a worker reading it alone numbers lines (and record indices) as a whole-file reader
would. Partition work writes part files next to the stage output; `join_parts` concatenates them in order.
"""
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

BATCH_LINES = 16_384  # lines per batch: a batch's records and frames stay in the tens of MB (and under progress bars' minimum)
_CHUNK = 1 << 24


@dataclass(frozen=True)
class Part:
    """Bytes [start, end) of a file, whose first line is line `first_line` (1-based) of the file."""

    path: str
    number: int
    start: int
    end: int
    first_line: int

    @property
    def first_index(self) -> int:
        """The 0-based index of the part's first line (= first record of a stage file without blank lines)."""
        return self.first_line - 1


def partitions(path: str | Path, part_bytes: int) -> list[Part]:
    """The file cut into line-aligned parts of about part_bytes each (one part for a smaller file)."""
    path = Path(path)
    size = path.stat().st_size
    bounds = [0]
    with path.open("rb") as f:
        target = part_bytes
        while target < size:
            f.seek(target)
            f.readline()  # to the end of the line the target falls in
            pos = f.tell()
            if pos >= size:
                break
            if pos > bounds[-1]:
                bounds.append(pos)
            target = max(pos, target) + part_bytes
    bounds.append(size)
    parts, line = [], 1
    for k, (start, end) in enumerate(zip(bounds[:-1], bounds[1:])):
        parts.append(Part(str(path), k, start, end, line))
        line += count_newlines(path, start, end)
    return parts or [Part(str(path), 0, 0, 0, 1)]


def count_newlines(path: str | Path, start: int = 0, end: int | None = None) -> int:
    """Newline bytes in [start, end) of a file."""
    n = 0
    with Path(path).open("rb") as f:
        f.seek(start)
        left = (end if end is not None else os.path.getsize(path)) - start
        while left > 0:
            chunk = f.read(min(_CHUNK, left))
            if not chunk:
                break
            n += chunk.count(b"\n")
            left -= len(chunk)
    return n


def line_batches(part: Part, batch: int | None = None) -> Iterator[list[tuple[int, bytes]]]:
    """Batches of (line number, line bytes without the "\\n") of a part, blank lines included (as a whole-file
    reader numbers them); a file's last line needs no newline."""
    batch = batch or BATCH_LINES  # read at call time, so a test can make batches small
    out: list[tuple[int, bytes]] = []
    number = part.first_line
    with open(part.path, "rb") as f:
        f.seek(part.start)
        pos = part.start
        while pos < part.end:
            raw = f.readline()
            if not raw:
                break
            pos += len(raw)
            out.append((number, raw[:-1] if raw.endswith(b"\n") else raw))
            number += 1
            if len(out) >= batch:
                yield out
                out = []
    if out:
        yield out


def record_batches(part: Part, batch: int | None = None) -> Iterator[tuple[int, list[dict]]]:
    """(index of the first record, records) batches of a part of a stage file (JSON Lines without blank lines)."""
    for lines in line_batches(part, batch):
        yield lines[0][0] - 1, [orjson.loads(raw) for _, raw in lines]


def rows_at(path: str | Path, wanted) -> Iterator[tuple[int, dict]]:
    """(index, record) for the records of a stage file whose index is in `wanted` (a sorted array), parsing only those."""
    it = iter(int(i) for i in wanted)
    nxt = next(it, None)
    if nxt is None:
        return
    with Path(path).open("rb") as f:
        for i, raw in enumerate(f):
            if i == nxt:
                yield i, orjson.loads(raw)
                nxt = next(it, None)
                if nxt is None:
                    return


def part_path(folder: Path, name: str, number: int) -> Path:
    """The path of part `number` of the stage file `name` (e.g. cleaned.jsonl)."""
    stem, dot, ext = name.partition(".")
    return folder / "parts" / f"{stem}.part{number:05d}{dot}{ext}"


def join_parts(parts: list[Path | str], dest: Path) -> None:
    """Concatenate part files in order into dest (atomically) and delete them."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    with tmp.open("wb") as out:
        for p in parts:
            if Path(p).is_file():
                with open(p, "rb") as f:
                    shutil.copyfileobj(f, out, _CHUNK)
    tmp.replace(dest)
    for p in parts:
        Path(p).unlink(missing_ok=True)
