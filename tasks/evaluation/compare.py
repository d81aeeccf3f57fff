"""Comparing two models on the same frozen test set: paired bootstrap confidence intervals."""
from collections.abc import Callable, Sequence

import numpy as np

from loraflow.schemas.results.evaluation import FieldCheck, ModelEvaluation, SliceDelta
from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.evaluation.field_metrics import encode_outcomes, is_corpus_field_metric, resampled_headline
from loraflow.tasks.common.jsonl import read_jsonl


def paired_bootstrap_stat(
    difference: Callable[[np.ndarray], np.ndarray], n: int, samples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> dict:
    """Percentile CI of a statistic's difference between two models, resampling the n test cases with replacement.

    Args:
        difference: maps index rows (resamples x n) to the candidate-minus-other statistic of each resample.
    Returns {"diff", "ci_low", "ci_high", "confidence", "p_value", "n", "samples"}; p_value is the
    two-sided share of resampled differences on the other side of zero.
    """
    if n == 0:
        raise ValueError("paired bootstrap needs at least one test case")
    rng = np.random.default_rng(seed)
    values = np.empty(samples)
    chunk = max(1, 2_000_000 // n)  # bounded memory for large test sets
    for start in range(0, samples, chunk):
        stop = min(samples, start + chunk)
        values[start:stop] = difference(rng.integers(0, n, size=(stop - start, n)))
    alpha = (1 - confidence) / 2
    low, high = np.quantile(values, [alpha, 1 - alpha])
    p_value = min(1.0, 2 * min(float((values <= 0).mean()), float((values >= 0).mean())))
    return {
        "diff": float(difference(np.arange(n)[None, :])[0]),
        "ci_low": float(low),
        "ci_high": float(high),
        "confidence": confidence,
        "p_value": p_value,
        "n": int(n),
        "samples": samples,
    }


def paired_bootstrap(
    candidate: Sequence[float], other: Sequence[float], samples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> dict:
    """Percentile CI of mean(candidate) - mean(other) over per-example scores (see paired_bootstrap_stat)."""
    c = np.asarray(candidate, dtype=float)
    o = np.asarray(other, dtype=float)
    if c.shape != o.shape or c.ndim != 1 or len(c) == 0:
        raise ValueError(f"paired bootstrap needs two equally long, non-empty score lists (got {c.shape} and {o.shape})")
    deltas = c - o
    return paired_bootstrap_stat(lambda idx: deltas[idx].mean(axis=1), len(deltas), samples, confidence, seed)


def compare_fields(candidate_rows: list[dict], other_rows: list[dict], names: Sequence[str], samples: int = 1000,
                   seed: int = 0) -> dict:
    """Paired bootstrap of the mean over `names` of each field's headline (macro-F1 or exact match), plus both means."""
    encoded = [encode_outcomes(candidate_rows, other_rows, name) for name in names]
    n = len(encoded[0][1]) if encoded else 0
    if n == 0:
        raise LoraflowError(f"no test case has the answer field(s) {', '.join(names)} in both prediction files; "
                            "check task_card.fields and that both models saw the same test set.")

    def mean_headline(which: int, idx: np.ndarray) -> np.ndarray:
        return np.mean([resampled_headline(kind, refs, preds[which], idx) for kind, refs, *preds in encoded], axis=0)

    result = paired_bootstrap_stat(lambda idx: mean_headline(0, idx) - mean_headline(1, idx), n, samples, seed=seed)
    full = np.arange(n)[None, :]
    result.update(candidate_mean=float(mean_headline(0, full)[0]), other_mean=float(mean_headline(1, full)[0]))
    return result


def paired_scores(candidate_rows: list[dict], other_rows: list[dict], metric: str) -> tuple[list[float], list[float]]:
    """Per-example metric values of both models for the test cases both scored, matched by id."""
    other = {row["id"]: row["scores"][metric] for row in other_rows if metric in row.get("scores", {})}
    pairs = [(row["scores"][metric], other[row["id"]]) for row in candidate_rows if metric in row.get("scores", {}) and row["id"] in other]
    if not pairs:
        raise LoraflowError(
            f"no test case has the success metric {metric!r} in both prediction files; "
            "check task_card.success_criteria[0].metric (JSON metrics need JSON references) and that both models saw the same test set."
        )
    return [p[0] for p in pairs], [p[1] for p in pairs]


def compare_predictions(candidate_path: str, other_path: str, metric: str, samples: int = 1000, seed: int = 0) -> dict:
    """Paired bootstrap of the metric between two prediction files, plus each model's value on the pairs.

    Corpus-level field metrics (json_field_score, field.<name>.macro_f1) are recomputed on every resample.
    """
    candidate_rows, other_rows = read_jsonl(candidate_path), read_jsonl(other_path)
    if is_corpus_field_metric(metric):
        names = [metric.split(".")[1]] if metric.startswith("field.") else \
            list(dict.fromkeys(name for row in candidate_rows for name in (row.get("fields") or {})))
        result = compare_fields(candidate_rows, other_rows, names, samples, seed)
        result.update(metric=metric)
        return result
    cand, other = paired_scores(candidate_rows, other_rows, metric)
    result = paired_bootstrap(cand, other, samples=samples, seed=seed)
    result.update(metric=metric, candidate_mean=float(np.mean(cand)), other_mean=float(np.mean(other)))
    return result


def slice_deltas(candidate: ModelEvaluation, reference: ModelEvaluation, metric: str) -> list[SliceDelta]:
    """Success metric per slice (language and each slice_by field) for candidate and reference model."""
    groups = dict(candidate.by_slice)
    groups.setdefault("language", candidate.by_language)
    ref_groups = dict(reference.by_slice)
    ref_groups.setdefault("language", reference.by_language)
    rows = []
    for field, values in sorted(groups.items()):
        for value, cand_metrics in sorted(values.items()):
            ref_metrics = ref_groups.get(field, {}).get(value)
            if ref_metrics is None or metric not in cand_metrics or metric not in ref_metrics:
                continue
            rows.append(SliceDelta(field=field, value=str(value), n=cand_metrics.get("n"), candidate=cand_metrics[metric],
                                   reference=ref_metrics[metric], delta=cand_metrics[metric] - ref_metrics[metric]))
    return rows


def field_checks(candidate: ModelEvaluation, majority: ModelEvaluation | None, collapse_margin: float, samples: int = 1000,
                 seed: int = 0, classical: ModelEvaluation | None = None) -> dict[str, FieldCheck]:
    """Per categorical answer field: the candidate against the majority-class and the classical (TF-IDF + logistic
    regression) predictors, and whether it collapsed.

    Args:
        candidate, majority, classical: evaluation results (with `predictions` paths and per-field reports).
        collapse_margin: eval.collapse_margin: the candidate's most frequent answer may exceed the reference's most
            frequent value's share by at most this part of the remaining gap to 100%.
    Returns per categorical field its FieldCheck: vs_majority / vs_classical (paired bootstrap of macro-F1) with that
    predictor's macro-F1 and accuracy when its result is given.
    """
    candidate_rows = read_jsonl(candidate.predictions)
    others = {label: (result, read_jsonl(result.predictions)) for label, result in
              (("majority", majority), ("classical", classical)) if result}
    checks = {}
    for name, report in candidate.fields.items():
        if report.kind != "categorical":
            continue
        limit = report.top_reference_share + collapse_margin * (1 - report.top_reference_share)
        entry = {key: getattr(report, key) for key in ("macro_f1", "accuracy", "top_predicted", "top_predicted_share",
                                                       "top_reference", "top_reference_share")}
        entry.update(collapse_limit=limit, collapsed=report.top_predicted_share > limit + 1e-9)
        for label, (result, rows) in others.items():
            if name not in result.fields:
                continue
            entry[f"vs_{label}"] = compare_fields(candidate_rows, rows, [name], samples, seed)
            entry[f"{label}_macro_f1"] = result.fields[name].macro_f1
            entry[f"{label}_accuracy"] = result.fields[name].accuracy
        checks[name] = FieldCheck.model_validate(entry)
    return checks
