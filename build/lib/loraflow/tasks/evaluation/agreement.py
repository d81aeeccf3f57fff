"""Agreement and uncertainty for rubric scores: Krippendorff's alpha and bootstrap confidence intervals."""
import math
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np

Units = Mapping[str, Mapping[str, float]]  # unit (case id) -> rater -> value


def krippendorff_alpha(units: Units, level: Literal["ordinal", "interval", "nominal"] = "ordinal") -> float | None:
    """Krippendorff's alpha over units rated by several raters (missing ratings allowed); None when undefined.

    Follows Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability": a coincidence matrix
    built from units with at least two ratings, and observed over expected disagreement.
    """
    pairable = [list(ratings.values()) for ratings in units.values() if len(ratings) >= 2]
    values = sorted({v for unit in pairable for v in unit})
    if len(values) < 2:
        return None  # no pairable ratings, or everyone gave the same value: alpha is undefined
    index = {v: i for i, v in enumerate(values)}
    coincidence = np.zeros((len(values), len(values)))
    for unit in pairable:
        weight = 1.0 / (len(unit) - 1)
        for a, va in enumerate(unit):
            for b, vb in enumerate(unit):
                if a != b:
                    coincidence[index[va], index[vb]] += weight
    totals = coincidence.sum(axis=1)
    n = totals.sum()
    delta = _squared_distances(np.array(values, dtype=float), totals, level)
    observed = (coincidence * delta).sum()
    expected = (np.outer(totals, totals) * delta).sum() / (n - 1)
    if expected == 0:
        return None
    return float(1.0 - observed / expected)


def _squared_distances(values: np.ndarray, totals: np.ndarray, level: str) -> np.ndarray:
    """The metric difference function delta^2(c, k) for every pair of observed values."""
    if level == "nominal":
        return 1.0 - np.eye(len(values))
    if level == "interval":
        return np.subtract.outer(values, values) ** 2
    if level == "ordinal":
        # Ordinal distance counts how many pairable ratings lie between c and k (ranks, not value gaps).
        cumulative = np.cumsum(totals)
        delta = np.zeros((len(values), len(values)))
        for c in range(len(values)):
            for k in range(len(values)):
                lo, hi = min(c, k), max(c, k)
                between = cumulative[hi] - (cumulative[lo - 1] if lo > 0 else 0.0)
                delta[c, k] = (between - (totals[c] + totals[k]) / 2.0) ** 2
        return delta
    raise ValueError(f"unknown measurement level {level!r}")


def mean_confidence_interval(
    values: Sequence[float], confidence: float = 0.95, resamples: int = 2000, seed: int = 0
) -> dict:
    """Mean with a seeded percentile-bootstrap confidence interval (n, mean, ci_low, ci_high, std)."""
    data = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if data.size == 0:
        return {"n": 0, "mean": None, "ci_low": None, "ci_high": None, "std": None}
    mean = float(data.mean())
    if data.size == 1:
        return {"n": 1, "mean": mean, "ci_low": mean, "ci_high": mean, "std": 0.0}
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    return {
        "n": int(data.size),
        "mean": mean,
        "ci_low": float(np.quantile(means, tail)),
        "ci_high": float(np.quantile(means, 1.0 - tail)),
        "std": float(data.std(ddof=1)),
    }
