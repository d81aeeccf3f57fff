"""Field-aware scores for structured (JSON) answers: every field on its own, categorical fields per class.

An average over fields hides a model that answers one class for everything; these scores do not: per categorical
field accuracy, per-class precision/recall/F1, macro-F1, a confusion matrix and the predicted-value distribution
beside the reference's; per free-text field exact and normalised match. The task's headline for JSON answers,
`json_field_score`, is the mean over fields of macro-F1 (categorical) and exact match (free text).
"""
import re
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


def normalize_text(text: str) -> str:
    """NFKC, case-folded, whitespace collapsed: the form compared by exact match and JSON fields."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


MISSING = "(missing)"  # the answer is JSON but lacks the field
INVALID = "(no JSON)"  # the answer is not a JSON object at all
# Inference: a field is categorical when its reference values are a small closed set that repeats.
MAX_INFERRED_CLASSES = 20
MIN_CASES_PER_CLASS = 3
_PUNCT = re.compile(r"[\W_]+", re.UNICODE)


# The numbers each kind of field reports as field.<name>.<stat>, and the ones shown in tables and the closing lines.
FIELD_STATS = {"categorical": ("accuracy", "macro_f1", "top_predicted_share"), "text": ("exact_match", "normalized_match")}
SHOWN_STATS = {"categorical": ("accuracy", "macro_f1"), "text": ("exact_match",)}


@dataclass(frozen=True)
class FieldSpec:
    """One answer field: `categorical` (a closed set of values, scored per class) or free `text`."""

    name: str
    kind: str


def field_value(obj: dict | None, name: str) -> str:
    """The field's value as a comparable string (NFKC, case-folded); MISSING / INVALID when there is none."""
    if obj is None:
        return INVALID
    value = obj.get(name)
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "true" if value else "false"
    return normalize_text(str(value))


def resolve_fields(declared: Mapping[str, Sequence[str] | str] | None, references: Sequence[dict | None]) -> list[FieldSpec]:
    """The fields to score: the task card's declaration, else inferred from the test references.

    Args:
        declared: task_card.fields (name -> allowed values, or "text" for a free field); empty or None to infer.
        references: the parsed reference objects of the test set (None where a reference is not JSON).
    """
    if declared:
        return [FieldSpec(name, "text" if isinstance(values, str) else "categorical") for name, values in declared.items()]
    objects = [r for r in references if r is not None]
    names = list(dict.fromkeys(k for obj in objects for k, v in obj.items() if not isinstance(v, dict | list)))
    specs = []
    for name in names:
        counts = Counter(field_value(obj, name) for obj in objects if name in obj)
        categorical = len(counts) <= min(MAX_INFERRED_CLASSES, max(2, sum(counts.values()) // MIN_CASES_PER_CLASS))
        specs.append(FieldSpec(name, "categorical" if categorical else "text"))
    return specs


def example_field_scores(prediction: dict | None, reference: dict, fields: Sequence[FieldSpec]) -> tuple[dict, dict]:
    """Per-example field outcomes and scores.

    Returns (outcomes, scores): outcomes[name] = {kind, reference, prediction}; scores holds
    `field.<name>.accuracy` for categorical fields and `field.<name>.exact_match` / `.normalized_match` for text.
    """
    outcomes, scores = {}, {}
    for spec in fields:
        ref, pred = field_value(reference, spec.name), field_value(prediction, spec.name)
        outcomes[spec.name] = {"kind": spec.kind, "reference": ref, "prediction": pred}
        if spec.kind == "categorical":
            scores[f"field.{spec.name}.accuracy"] = float(ref == pred)
        else:
            scores[f"field.{spec.name}.exact_match"] = float(ref == pred)
            scores[f"field.{spec.name}.normalized_match"] = float(_PUNCT.sub("", ref) == _PUNCT.sub("", pred))
    return outcomes, scores


def _f1(tp: np.ndarray, predicted: np.ndarray, support: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / np.maximum(predicted, 1), 0.0)
        recall = np.where(support > 0, tp / np.maximum(support, 1), 0.0)
        return np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)


def categorical_report(references: Sequence[str], predictions: Sequence[str]) -> dict:
    """Accuracy, per-class precision/recall/F1, macro-F1 (over the reference's classes), confusion matrix, distributions."""
    classes = sorted(set(references))
    extra = sorted(set(predictions) - set(classes))  # wrong values, MISSING, INVALID: columns of their own
    labels = classes + extra
    index = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=int)
    for ref, pred in zip(references, predictions, strict=True):
        matrix[index[ref], index[pred]] += 1
    tp, support, predicted = np.diag(matrix), matrix.sum(axis=1), matrix.sum(axis=0)
    f1 = _f1(tp, predicted, support)
    per_class = {
        label: {"precision": float(tp[i] / predicted[i]) if predicted[i] else 0.0,
                "recall": float(tp[i] / support[i]) if support[i] else 0.0,
                "f1": float(f1[i]), "support": int(support[i]), "predicted": int(predicted[i])}
        for i, label in enumerate(classes)
    }
    n = len(references)
    pred_counts, ref_counts = Counter(predictions), Counter(references)
    top_pred, top_pred_n = pred_counts.most_common(1)[0] if n else ("", 0)
    top_ref, top_ref_n = ref_counts.most_common(1)[0] if n else ("", 0)
    return {
        "kind": "categorical", "n": n,
        "accuracy": float(tp.sum() / n) if n else 0.0,
        "macro_f1": float(f1[: len(classes)].mean()) if classes else 0.0,
        "per_class": per_class,
        "confusion": {"labels": labels, "classes": len(classes), "matrix": matrix.tolist()},
        "predicted_distribution": dict(pred_counts.most_common()),
        "reference_distribution": dict(ref_counts.most_common()),
        "top_predicted": top_pred, "top_predicted_share": top_pred_n / n if n else 0.0,
        "top_reference": top_ref, "top_reference_share": top_ref_n / n if n else 0.0,
    }


def text_report(references: Sequence[str], predictions: Sequence[str]) -> dict:
    """Exact match and match ignoring punctuation and spaces for a free-text field."""
    n = len(references)
    exact = sum(r == p for r, p in zip(references, predictions, strict=True))
    loose = sum(_PUNCT.sub("", r) == _PUNCT.sub("", p) for r, p in zip(references, predictions, strict=True))
    return {"kind": "text", "n": n, "exact_match": exact / n if n else 0.0, "normalized_match": loose / n if n else 0.0}


def headline(report: dict) -> float:
    """The one number a field contributes to json_field_score: macro-F1 (categorical) or exact match (text)."""
    return report["macro_f1"] if report["kind"] == "categorical" else report["exact_match"]


def field_reports(rows: Sequence[dict]) -> dict[str, dict]:
    """Per-field reports over scored rows that carry `fields` outcomes (rows without them are skipped)."""
    by_field: dict[str, tuple[str, list, list]] = {}
    for row in rows:
        for name, outcome in (row.get("fields") or {}).items():
            kind, refs, preds = by_field.setdefault(name, (outcome["kind"], [], []))
            refs.append(outcome["reference"])
            preds.append(outcome["prediction"])
    return {name: (categorical_report if kind == "categorical" else text_report)(refs, preds)
            for name, (kind, refs, preds) in by_field.items()}


def summary_numbers(reports: Mapping[str, dict]) -> dict[str, float]:
    """Flat numbers for the metrics dict: json_field_score and field.<name>.<stat>."""
    if not reports:
        return {}
    flat = {"json_field_score": float(np.mean([headline(r) for r in reports.values()]))}
    for name, report in reports.items():
        flat.update({f"field.{name}.{key}": float(report[key]) for key in FIELD_STATS[report["kind"]]})
    return flat


def encode_outcomes(candidate_rows: Sequence[dict], other_rows: Sequence[dict], name: str) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    """One field's outcomes of two models on the test cases both scored, as integer codes for the bootstrap.

    Returns (kind, reference codes, candidate codes, other codes); reference classes come first in the code space.
    """
    other = {row["id"]: row["fields"][name] for row in other_rows if name in (row.get("fields") or {})}
    pairs = [(row["fields"][name], other[row["id"]]) for row in candidate_rows
             if name in (row.get("fields") or {}) and row["id"] in other]
    kind = pairs[0][0]["kind"] if pairs else "text"
    refs = [c["reference"] for c, _ in pairs]
    labels = sorted(set(refs)) + sorted({o["prediction"] for pair in pairs for o in pair} - set(refs))
    code = {label: i for i, label in enumerate(labels)}
    return (kind, np.array([code[r] for r in refs], dtype=np.int64),
            np.array([code[c["prediction"]] for c, _ in pairs], dtype=np.int64),
            np.array([code[o["prediction"]] for _, o in pairs], dtype=np.int64))


def resampled_headline(kind: str, refs: np.ndarray, preds: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """The field's headline (macro-F1 or exact match) on each resample of test cases: idx is (resamples, n)."""
    if kind != "categorical":
        return (refs[idx] == preds[idx]).mean(axis=1)
    k = int(max(refs.max(initial=0), preds.max(initial=0))) + 1
    b = idx.shape[0]
    flat = (np.arange(b)[:, None] * k * k + refs[idx] * k + preds[idx]).ravel()
    matrix = np.bincount(flat, minlength=b * k * k).reshape(b, k, k)
    tp, support, predicted = np.diagonal(matrix, axis1=1, axis2=2), matrix.sum(axis=2), matrix.sum(axis=1)
    f1 = _f1(tp, predicted, support)
    present = support > 0  # macro over the reference classes present in this resample
    return (f1 * present).sum(axis=1) / np.maximum(present.sum(axis=1), 1)


def per_example_metric(metric: str) -> str:
    """The per-example score that ranks test cases for a metric: corpus-level field scores map to their accuracies."""
    if metric == "json_field_score":
        return "json_field_accuracy"
    if metric.startswith("field.") and metric.endswith(".macro_f1"):
        return metric.removesuffix(".macro_f1") + ".accuracy"
    return metric


def is_corpus_field_metric(metric: str) -> bool:
    """json_field_score and field macro-F1 are computed over the whole test set, not averaged over examples."""
    return per_example_metric(metric) != metric
