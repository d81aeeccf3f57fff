"""Text normalisation: NFKC, mojibake, HTML remnants, control characters, whitespace."""
import html
import re
import unicodedata

import ftfy
from ftfy.badness import is_bad

# Known HTML tags only: a bare '<' in code or maths ("a < b") must survive.
_TAGS = "a|abbr|b|blockquote|body|br|code|div|em|font|h[1-6]|head|hr|html|i|img|li|ol|p|pre|span|strong|sub|sup|table|tbody|td|th|thead|tr|u|ul"
_BREAK_TAG = re.compile(r"<\s*(?:br|/p|/div|/li|/h[1-6]|/tr|hr)\b[^>]*>", re.IGNORECASE)
_TAG = re.compile(rf"<\s*/?\s*(?:{_TAGS})\b[^<>]*>", re.IGNORECASE)
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_ENTITY = re.compile(r"&(?:#\d+|#x[0-9a-fA-F]+|[a-zA-Z]{2,8});")
# Control and invisible format characters except newline and tab.
_CONTROL = {c: None for c in range(0x20) if c not in (0x09, 0x0A)}
_CONTROL.update({0x7F: None, 0x200B: None, 0x200C: None, 0x200D: None, 0x2060: None, 0xFEFF: None, 0x00AD: None})
_CONTROL.update({c: None for c in range(0x80, 0xA0)})
_CONTROL_FOUND = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200d\u2060\ufeff\u00ad]")
_SPACES = re.compile(r"[ \t\u00a0\u3000]+")
_SPACES_FOUND = re.compile(r"[ \t\u00a0\u3000]{2}|[\t\u00a0\u3000]")
_TRAILING = re.compile(r" *\n *")
_BLANK_LINES = re.compile(r"\n{3,}")
_FTFY = ftfy.TextFixerConfig(unescape_html=False, fix_character_width=False, uncurl_quotes=False,
                             fix_line_breaks=False, normalization=None, explain=False)


def strip_html(text: str) -> str:
    """Remove HTML tags and comments and decode entities, keeping line breaks the tags meant."""
    if "<" in text:
        text = _COMMENT.sub("", text)
        text = _BREAK_TAG.sub("\n", text)
        text = _TAG.sub("", text)
    if "&" in text and _ENTITY.search(text):
        text = html.unescape(text)
    return text


def normalize_text(text: str) -> str:
    """One string cleaned: mojibake fixed, HTML removed, NFKC (full/half width), controls and whitespace tidied."""
    if not text.isascii() and is_bad(text):
        text = ftfy.fix_text(text, _FTFY)
    text = strip_html(text)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    # Each pass is skipped when a cheap scan finds nothing for it: most text is already clean.
    if _CONTROL_FOUND.search(text):
        text = text.translate(_CONTROL)
    if _SPACES_FOUND.search(text):
        text = _SPACES.sub(" ", text)
    if "\n" in text:
        text = _BLANK_LINES.sub("\n\n", _TRAILING.sub("\n", text))
    text = text.strip()
    if not text.isascii() and not unicodedata.is_normalized("NFKC", text):
        text = unicodedata.normalize("NFKC", text)
    return text


def normalize_record(record: dict) -> dict:
    """A copy of the record with every turn's content normalised."""
    messages = [{**m, "content": normalize_text(m["content"])} for m in record["messages"]]
    if "rejected" in record:  # a preference pair: its losing answer is cleaned the same way
        return {**record, "messages": messages, "rejected": normalize_text(record["rejected"])}
    return {**record, "messages": messages}
