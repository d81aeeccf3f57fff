"""Reading text input as an editor shows it: the encoding from its byte-order mark (or UTF-16's NUL bytes), lines
ending at "\\n" only, so line numbers and counts match `wc -l` and the editor.

Python's text mode also ends lines at a lone "\\r", which turned one binary line into several and shifted every later
line number; a UTF-16 file read as UTF-8 became NUL-riddled garbage quarantined as `parse_json` without a word about why.
Only a file with no "\\n" at all (classic Mac OS line endings) is read with "\\r" ending its lines.
"""
import codecs
import errno
import os
from dataclasses import dataclass
from pathlib import Path

from loraflow.tasks.common.errors import LoraflowError

# UTF-32 first: its little-endian mark begins with UTF-16's.
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


@dataclass(frozen=True)
class Line:
    """One line of a text file: its 1-based number, its text (None when it does not decode) and why not."""

    number: int
    text: str | None
    raw: str
    problem: str | None = None


def readable_file(path: str | Path, what: str, fix: str) -> Path:
    """`path` when it is a regular file this process can read; else a one-line LoraflowError saying which of a missing
    file, a symbolic-link loop or dangling link, a directory or an unreadable file it is.

    Args:
        what: how the message names the file ("input file", "config").
        fix: what the user should pass instead, ending the message.
    """
    path = Path(path)
    try:
        path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            raise LoraflowError(f"{what} {path} is a symbolic link to {os.readlink(path)}, which does not exist; {fix}") from None
        raise LoraflowError(f"{what} {path} does not exist; {fix}") from None
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise LoraflowError(f"{what} {path} is a symbolic link that loops back on itself; {fix}") from None
        raise LoraflowError(f"{what} {path} cannot be read ({error.strerror}); {fix}") from None
    if path.is_dir():
        raise LoraflowError(f"{what} {path} is a directory; {fix}")
    if not path.is_file():
        raise LoraflowError(f"{what} {path} is not a regular file; {fix}")
    try:
        with path.open("rb") as f:
            f.read(1)
    except OSError as error:
        raise LoraflowError(f"{what} {path} cannot be read ({error.strerror}); fix its permissions or {fix}") from None
    return path


def detect_encoding(data: bytes) -> str:
    """The encoding named by a byte-order mark; else UTF-16 when every other byte is NUL (ASCII in UTF-16); else UTF-8."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            return name
    even, odd = data[:4096:2], data[1:4096:2]
    if len(odd) >= 2:
        if odd.count(0) > 0.3 * len(odd) and even.count(0) < 0.05 * len(even):
            return "utf-16-le"
        if even.count(0) > 0.3 * len(even) and odd.count(0) < 0.05 * len(odd):
            return "utf-16-be"
    return "utf-8"


def read_text(path: Path) -> tuple[str, str]:
    """The whole file decoded (for JSON and CSV documents) and the encoding used; an undecodable file is an error."""
    data = path.read_bytes()
    encoding = detect_encoding(data)
    try:
        return data.decode(encoding), encoding
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise LoraflowError(f"{path}:{line}: not valid {_name(encoding)} (byte 0x{data[error.start]:02x}); "
                            "save the file as UTF-8 (or UTF-16 with a byte-order mark).") from None


def read_lines(path: Path) -> tuple[list[Line], str]:
    """Every line (ending at "\\n", a trailing "\\r" dropped) and the encoding; UTF-8 lines that do not decode are kept
    as Lines with a problem, so one bad line is quarantined instead of failing the file."""
    data = path.read_bytes()
    encoding = detect_encoding(data)
    if not encoding.startswith("utf-8"):
        text, encoding = read_text(path)
        if cr_only(text):
            text = text.replace("\r", "\n")
        return [Line(n, t.removesuffix("\r"), t.removesuffix("\r")) for n, t in _numbered(text.split("\n"))], encoding
    data = data.removeprefix(codecs.BOM_UTF8)
    if cr_only(data):
        data = data.replace(b"\r", b"\n")
    return [utf8_line(n, chunk) for n, chunk in _numbered(data.split(b"\n"))], encoding


def cr_only(data: bytes | str) -> bool:
    """Whether lines end at a lone "\r" only (classic Mac OS, some exports): no "\n" anywhere, then "\r" ends a line."""
    cr, lf = ("\r", "\n") if isinstance(data, str) else (b"\r", b"\n")
    return cr in data and lf not in data


def utf8_line(n: int, chunk: bytes) -> Line:
    """Line n of a UTF-8 file from its bytes (without the "\\n"; a trailing "\\r" is dropped); a Line with a problem
    when it does not decode."""
    chunk = chunk.removesuffix(b"\r")
    try:
        text = chunk.decode("utf-8")
        return Line(n, text, text)
    except UnicodeDecodeError as error:
        return Line(n, None, chunk.decode("utf-8", "backslashreplace"),
                    f"not valid UTF-8 (byte 0x{chunk[error.start]:02x} at column {error.start + 1}); save the file as UTF-8")


def _numbered(parts: list) -> list:
    if parts and not parts[-1]:  # the file ends with a newline: no line after it
        parts = parts[:-1]
    return list(enumerate(parts, start=1))


def _name(encoding: str) -> str:
    return encoding.upper().removesuffix("-SIG")
