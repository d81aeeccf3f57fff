"""Automatic metrics that work in English and Chinese: BLEU, ROUGE, chrF, exact match, JSON fields.

Every score is on a 0..1 scale (sacrebleu's 0..100 BLEU and chrF are divided by 100) so that task-card
thresholds read the same for every metric.
"""
import json
import logging
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from functools import lru_cache

from loraflow.tasks.evaluation.field_metrics import field_reports, normalize_text, summary_numbers

import sacrebleu
from rouge_score import rouge_scorer

TEXT_METRICS = ("bleu", "rouge1", "rouge2", "rougeL", "chrf", "exact_match")
JSON_METRICS = ("json_valid", "json_field_score", "json_field_accuracy", "json_field_f1")
METRIC_NAMES = TEXT_METRICS + JSON_METRICS

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z]")
_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n?(.*?)\n?```$", re.DOTALL)
_PUNCT_OR_SPACE = re.compile(r"^[\W_]+$", re.UNICODE)


def detect_language(text: str) -> str:
    """'zh' when CJK characters make up at least a fifth of the letters, else 'en'."""
    cjk = len(_CJK.findall(text))
    latin = len(_LATIN.findall(text))
    # Latin letters come ~5 to a word, CJK characters ~1.5 to a word: weigh so mixed text leans zh.
    return "zh" if cjk and cjk * 5 >= latin else "en"


class _JiebaTokenizer:
    """rouge-score tokenizer: jieba words, lower-cased, punctuation and spaces dropped."""

    def tokenize(self, text: str) -> list[str]:
        import jieba

        jieba.setLogLevel(logging.WARNING)
        return [t.lower() for t in jieba.lcut(text) if t.strip() and not _PUNCT_OR_SPACE.match(t)]


@lru_cache(maxsize=2)
def _rouge(language: str) -> rouge_scorer.RougeScorer:
    # rouge-score's default tokenizer drops every non-ASCII character: Chinese would always score 0.
    tokenizer = _JiebaTokenizer() if language == "zh" else None
    return rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=language != "zh", tokenizer=tokenizer)


def _bleu_tokenize(language: str) -> str:
    # sacrebleu's zh tokenizer splits CJK characters and tokenizes the rest like 13a: safe for mixed text.
    return "zh" if language == "zh" else "13a"


def parse_json_object(text: str) -> dict | None:
    """The JSON object in a model answer (bare or in a ``` fence), or None when it is not one."""
    text = text.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    if not text.startswith("{"):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _normalize_value(value):
    """A JSON value in a comparable form: numbers as floats, strings normalised, lists element-wise."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = normalize_text(value)
        try:  # "3" and 3 are the same field value to a user reading the JSON
            number = float(text)
            return number if math.isfinite(number) else text
        except ValueError:
            return text
    if isinstance(value, list):
        return tuple(_normalize_value(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted(((k, _normalize_value(v)) for k, v in _flatten(value).items()), key=lambda kv: kv[0]))
    return value


def _flatten(obj: dict, prefix: str = "") -> dict:
    """Nested objects as dotted field paths, so each leaf field is compared on its own."""
    flat = {}
    for key, value in obj.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def json_field_scores(prediction: dict | None, reference: dict) -> dict[str, float]:
    """Field accuracy (share of reference fields right) and F1 (extra predicted fields cost precision)."""
    ref = {k: _normalize_value(v) for k, v in _flatten(reference).items()}
    if prediction is None:
        return {"json_field_accuracy": 0.0, "json_field_f1": 0.0}
    pred = {k: _normalize_value(v) for k, v in _flatten(prediction).items()}
    if not ref:
        same = float(not pred)
        return {"json_field_accuracy": same, "json_field_f1": same}
    correct = sum(1 for k, v in ref.items() if k in pred and pred[k] == v)
    accuracy = correct / len(ref)
    precision = correct / len(pred) if pred else 0.0
    f1 = 2 * precision * accuracy / (precision + accuracy) if correct else 0.0
    return {"json_field_accuracy": accuracy, "json_field_f1": f1}


def score_pair(prediction: str, reference: str, language: str) -> dict[str, float]:
    """Per-example scores (0..1); JSON metrics only when the reference is a JSON object."""
    language = "zh" if language == "zh" else "en"
    rouge = _rouge(language).score(reference, prediction)
    scores = {
        "bleu": sacrebleu.sentence_bleu(prediction, [reference], tokenize=_bleu_tokenize(language)).score / 100,
        "rouge1": rouge["rouge1"].fmeasure,
        "rouge2": rouge["rouge2"].fmeasure,
        "rougeL": rouge["rougeL"].fmeasure,
        "chrf": sacrebleu.sentence_chrf(prediction, [reference]).score / 100,
        "exact_match": float(normalize_text(prediction) == normalize_text(reference)),
    }
    ref_obj = parse_json_object(reference)
    if ref_obj is not None:
        pred_obj = parse_json_object(prediction)
        scores["json_valid"] = float(pred_obj is not None)
        scores.update(json_field_scores(pred_obj, ref_obj))
        if pred_obj is not None and _normalize_value(pred_obj) == _normalize_value(ref_obj):
            scores["exact_match"] = 1.0  # same object, different whitespace or key order
    return scores


def row_language(row: dict) -> str:
    """The language of a prediction row: metadata.language, else detected from the reference."""
    language = (row.get("metadata") or {}).get("language")
    return language if language in ("en", "zh") else detect_language(row.get("reference", ""))


def _summarize(rows: Sequence[dict]) -> dict[str, float]:
    """Corpus BLEU/chrF and mean per-example scores over a group of scored rows."""
    sums: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for row in rows:
        for name, value in row["scores"].items():
            sums[name] += value
            counts[name] += 1
    result = {name: sums[name] / counts[name] for name in sums}
    predictions = [row["prediction"] for row in rows]
    references = [row["reference"] for row in rows]
    tokenize = "zh" if any(row_language(row) == "zh" for row in rows) else "13a"
    result["bleu"] = sacrebleu.corpus_bleu(predictions, [references], tokenize=tokenize).score / 100
    result["chrf"] = sacrebleu.corpus_chrf(predictions, [references]).score / 100
    result.update(summary_numbers(field_reports(rows)))  # corpus-level field scores (macro-F1 is no mean of examples)
    result["n"] = len(rows)
    return result


def aggregate(rows: Iterable[dict], slice_by: Sequence[str] = ("language",)) -> dict:
    """Metrics overall, per language and per value of each metadata field in slice_by.

    Args:
        rows: scored rows with `prediction`, `reference`, `metadata` and `scores` (as from score_pair).
        slice_by: metadata fields to group by; missing values are grouped as "(none)".
    Returns:
        {"overall": {...}, "by_language": {lang: {...}}, "by_slice": {field: {value: {...}}}, "fields": {name: report}};
        bleu, chrf, json_field_score and field macro-F1 are corpus scores, the rest are means of per-example scores;
        each has `n`. `fields` holds the full per-field reports (per class, confusion matrix) when rows carry them.
    """
    rows = list(rows)
    if not rows:
        return {"overall": {"n": 0}, "by_language": {}, "by_slice": {}, "fields": {}}
    by_language: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_language[row_language(row)].append(row)
    by_slice = {}
    for field in slice_by:
        groups: dict[str, list[dict]] = defaultdict(list)
        for row in rows:
            value = row_language(row) if field == "language" else (row.get("metadata") or {}).get(field)
            groups["(none)" if value is None else str(value)].append(row)
        by_slice[field] = {value: _summarize(group) for value, group in sorted(groups.items())}
    return {
        "overall": _summarize(rows),
        "by_language": {lang: _summarize(group) for lang, group in sorted(by_language.items())},
        "by_slice": by_slice,
        "fields": field_reports(rows),
    }
