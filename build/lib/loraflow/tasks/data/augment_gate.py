"""The quality gate for augmented records: same language, length in range, similar but not a copy, answer values kept."""
import json
import re

from loraflow.schemas.config.augment import AugmentConfig
from loraflow.tasks.data.quality import detect_language  # the same detector as the cleaning stage's language filter

# Checked in this order; a rejected record is counted under its first failing reason.
REJECT_REASONS = (
    "empty", "unchanged", "duplicate", "language_changed", "too_short", "too_long", "copy", "drift", "lost_answer_value",
)
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")


def _ngrams(text: str, n: int) -> set[str]:
    """Character n-grams of text, lower-cased with whitespace collapsed."""
    norm = " ".join(text.lower().split())
    if len(norm) <= n:
        return {norm}
    return {norm[i : i + n] for i in range(len(norm) - n + 1)}


def similarity(a: str, b: str) -> float:
    """Jaccard similarity of character 1+2-grams for Chinese (a character is nearly a word), 2+3-grams otherwise.

    Mixing two sizes keeps good paraphrases (about 0.4-0.7) apart from drifts (under 0.15) and copies
    (over 0.95), which is what the default similarity band of the config assumes.
    """
    sizes = (1, 2) if len(_CJK.findall(a)) * 2 > len(a.replace(" ", "")) else (2, 3)
    ga = _ngrams(a, sizes[0]) | _ngrams(a, sizes[1])
    gb = _ngrams(b, sizes[0]) | _ngrams(b, sizes[1])
    return len(ga & gb) / len(ga | gb) if ga | gb else 1.0


def answer_values(user_text: str, answer: str) -> list[str]:
    """The values of a JSON answer that are copied verbatim from the prompt (must survive any rewrite)."""
    try:
        parsed = json.loads(_FENCE.sub("", answer.strip()))
    except ValueError:
        return []
    leaves: list[str] = []

    def walk(node) -> None:
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
        elif isinstance(node, (str, int, float)) and not isinstance(node, bool):
            leaves.append(str(node))

    walk(parsed)
    found = {leaf for leaf in leaves if len(leaf) >= 2 and leaf in user_text}
    return sorted(found, key=lambda v: (-len(v), v))


def gate_failures(parent_text: str, child_text: str, keep: list[str], config: AugmentConfig) -> list[dict]:
    """Every gate check the rewrite fails, as {check, value, threshold}; empty when it passes."""
    if not child_text.strip():
        return [{"check": "empty", "value": 0, "threshold": None}]
    if child_text.strip() == parent_text.strip():
        return [{"check": "unchanged", "value": 1.0, "threshold": None}]
    failures = []
    parent_language = detect_language(parent_text)
    child_language = detect_language(child_text)
    if child_language != parent_language:
        failures.append({"check": "language_changed", "value": child_language, "threshold": parent_language})
    ratio = len(child_text) / max(1, len(parent_text))
    if ratio < config.min_length_ratio:
        failures.append({"check": "too_short", "value": round(ratio, 4), "threshold": config.min_length_ratio})
    if ratio > config.max_length_ratio:
        failures.append({"check": "too_long", "value": round(ratio, 4), "threshold": config.max_length_ratio})
    sim = similarity(parent_text, child_text)
    if sim > config.max_similarity:
        failures.append({"check": "copy", "value": round(sim, 4), "threshold": config.max_similarity})
    if sim < config.min_similarity:
        failures.append({"check": "drift", "value": round(sim, 4), "threshold": config.min_similarity})
    lost = [value for value in keep if value not in child_text]
    if lost:
        failures.append({"check": "lost_answer_value", "value": lost[:5], "threshold": None})
    return failures
