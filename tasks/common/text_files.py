"""Reading text input as an editor shows it: the encoding from its byte-order mark (or UTF-16's NUL bytes), lines
ending at "\\n" only, so line numbers and counts match `wc -l` and the editor.

Python's text mode also ends lines at a lone "\\r", which turned one binary line into several and shifted every later
line number; a UTF-16 file read as UTF-8 became NUL-riddled garbage quarantined as `parse_json` without a word about why.
"""
import codecs
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
        return [Line(n, t.removesuffix("\r"), t.removesuffix("\r")) for n, t in _numbered(text.split("\n"))], encoding
    return [utf8_line(n, chunk) for n, chunk in _numbered(data.removeprefix(codecs.BOM_UTF8).split(b"\n"))], encoding


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
