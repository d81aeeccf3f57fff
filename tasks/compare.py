"""Comparing two models on the same frozen test set: paired bootstrap confidence intervals."""
from collections.abc import Sequence

import numpy as np

from tasks.errors import LoraflowError
from tasks.jsonl import read_jsonl


def paired_bootstrap(
    candidate: Sequence[float], other: Sequence[float], samples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> dict:
    """Percentile CI of mean(candidate) - mean(other), resampling test cases (pairs) with replacement.

    Returns {"diff", "ci_low", "ci_high", "confidence", "p_value", "n", "samples"}; p_value is the
    two-sided share of resampled differences on the other side of zero.
    """
    c = np.asarray(candidate, dtype=float)
    o = np.asarray(other, dtype=float)
    if c.shape != o.shape or c.ndim != 1 or len(c) == 0:
        raise ValueError(f"paired bootstrap needs two equally long, non-empty score lists (got {c.shape} and {o.shape})")
    deltas = c - o
    rng = np.random.default_rng(seed)
    means = np.empty(samples)
    chunk = max(1, 2_000_000 // len(deltas))  # bounded memory for large test sets
    for start in range(0, samples, chunk):
        stop = min(samples, start + chunk)
        idx = rng.integers(0, len(deltas), size=(stop - start, len(deltas)))
        means[start:stop] = deltas[idx].mean(axis=1)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    p_value = min(1.0, 2 * min(float((means <= 0).mean()), float((means >= 0).mean())))
    return {
        "diff": float(deltas.mean()),
        "ci_low": float(low),
        "ci_high": float(high),
        "confidence": confidence,
        "p_value": p_value,
        "n": int(len(deltas)),
        "samples": samples,
    }


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
    """Paired bootstrap of the metric between two prediction files, plus each model's mean on the pairs."""
    cand, other = paired_scores(read_jsonl(candidate_path), read_jsonl(other_path), metric)
    result = paired_bootstrap(cand, other, samples=samples, seed=seed)
    result.update(metric=metric, candidate_mean=float(np.mean(cand)), other_mean=float(np.mean(other)))
    return result


def slice_deltas(candidate: dict, reference: dict, metric: str) -> list[dict]:
    """Success metric per slice (language and each slice_by field) for candidate and reference model."""
    groups = dict(candidate.get("by_slice", {}))
    groups.setdefault("language", candidate.get("by_language", {}))
    ref_groups = dict(reference.get("by_slice", {}))
    ref_groups.setdefault("language", reference.get("by_language", {}))
    rows = []
    for field, values in sorted(groups.items()):
        for value, cand_metrics in sorted(values.items()):
            ref_metrics = ref_groups.get(field, {}).get(value)
            if ref_metrics is None or metric not in cand_metrics or metric not in ref_metrics:
                continue
            rows.append(
                {"field": field, "value": value, "n": cand_metrics.get("n"), "candidate": cand_metrics[metric],
                 "reference": ref_metrics[metric], "delta": cand_metrics[metric] - ref_metrics[metric]}
            )
    return rows
