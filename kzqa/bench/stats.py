"""Uncertainty and significance of benchmark figures, over questions.

- :func:`interval` (:func:`paired_interval` for a statistic of two arrays): a 95% percentile-
  bootstrap interval of a statistic over questions (SciPy's ``bootstrap``, 1,000 resamples,
  seeded: the same input gives the same interval on every run);
- :func:`paired_p`: the two-sided p-value of a paired randomisation test (SciPy's
  ``permutation_test`` swapping each question's two values; exact when 2^n ≤ 10,000 resamples);
- :func:`holm`: Holm's step-down correction of a family of p-values;
- :func:`significance`: every pair of systems on every measure they share, Holm-corrected per
  measure over the pairs.

A system's per-question values travel as ``{measure: {question id: value}}``; two systems are
compared on the questions both have a value for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import combinations

import numpy as np

SEED = 20261201
RESAMPLES = 1000  # bootstrap resamples per interval
PERMUTATIONS = 10_000  # randomisation-test resamples per pair
ALPHA = 0.05


def interval(values: Sequence[float] | np.ndarray, statistic: Callable = np.mean, digits: int = 4) -> list[float] | None:
    """``[lo, hi]``: the 95% percentile-bootstrap interval of ``statistic`` over ``values`` (one
    per question), rounded to ``digits``; ``statistic(x, axis=…)`` must accept an axis (np.mean,
    np.median …). Values that are all the same give ``[v, v]``; no values give None."""
    from scipy.stats import bootstrap

    x = np.asarray(values, dtype=float)
    if len(x) == 0:
        return None
    if len(x) < 2 or np.all(x == x[0]):
        v = round(float(statistic(x, axis=0)), digits)
        return [v, v]
    result = bootstrap((x,), statistic, n_resamples=RESAMPLES, confidence_level=0.95, method="percentile",
                       vectorized=True, random_state=SEED)
    return [round(float(v), digits) for v in result.confidence_interval]


def paired_interval(statistic: Callable, a: Sequence, b: Sequence, digits: int = 4) -> list[float] | None:
    """The same interval for a statistic of two arrays resampled together, question by question
    (``statistic(a, b, axis=…)``; e.g. the calibration error of confidences and correctness)."""
    from scipy.stats import bootstrap

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(x) == 0:
        return None
    whole = round(float(statistic(x, y, axis=0)), digits)
    if len(x) < 2:
        return [whole, whole]
    result = bootstrap((x, y), statistic, n_resamples=RESAMPLES, confidence_level=0.95, method="percentile",
                       paired=True, vectorized=True, random_state=SEED)
    lo, hi = result.confidence_interval
    if np.isnan(lo) or np.isnan(hi):  # every resample gave the same value
        return [whole, whole]
    return [round(float(lo), digits), round(float(hi), digits)]


def paired_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p-value that the mean of ``a - b`` (paired by position) is zero, by a paired
    randomisation test. Identical systems give 1.0."""
    from scipy.stats import permutation_test

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(x) != len(y):
        raise ValueError(f"paired values differ in length: {len(x)} and {len(y)}")
    if len(x) == 0 or np.all(x == y):
        return 1.0
    result = permutation_test((x, y), lambda u, v, axis: np.mean(u - v, axis=axis), permutation_type="samples",
                              n_resamples=PERMUTATIONS, alternative="two-sided", vectorized=True,
                              random_state=SEED)
    return float(min(1.0, result.pvalue))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values, in the order given: the i-th smallest of m is multiplied by
    (m - i), kept at least as large as the one before it, and capped at 1."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    running = 0.0
    for position, i in enumerate(order):
        running = max(running, min(1.0, (m - position) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def significance(systems: dict[str, dict[str, dict[str, float]]], measures: Sequence[str]) -> list[dict]:
    """For every pair (a, b) of ``systems`` (in the order given) and every measure of
    ``measures`` both have: ``{"a", "b", "metric", "n", "delta", "p", "p_raw", "significant"}``.
    ``delta`` is mean(a) - mean(b) over the ``n`` questions both have a value for; ``p`` is Holm-
    corrected over the pairs of that measure (``p_raw`` before); significant: ``p < 0.05``."""
    rows = []
    for metric in measures:
        family = []
        for a, b in combinations(systems, 2):
            va, vb = systems[a].get(metric), systems[b].get(metric)
            if not va or not vb:
                continue
            shared = [q for q in va if q in vb]
            if len(shared) < 2:
                continue
            x, y = [va[q] for q in shared], [vb[q] for q in shared]
            family.append({"a": a, "b": b, "metric": metric, "n": len(shared),
                           "delta": round(float(np.mean(x) - np.mean(y)), 4), "p_raw": paired_p(x, y)})
        for row, p in zip(family, holm([r["p_raw"] for r in family])):
            row["p"] = round(p, 4)
            row["p_raw"] = round(row["p_raw"], 4)
            row["significant"] = p < ALPHA
        rows += family
    return rows
