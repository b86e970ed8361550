"""Intervals and paired tests: reproducible, and right on cases worked out by hand."""

import numpy as np
import pytest

from kzqa.bench.stats import holm, interval, paired_interval, paired_p, significance


def test_an_interval_is_reproducible_and_holds_the_mean():
    values = [1.0] * 70 + [0.0] * 30
    first, second = interval(values), interval(values)
    assert first == second  # seeded: the same input, the same interval
    lo, hi = first
    assert lo < 0.7 < hi and 0.05 < hi - lo < 0.25  # binomial sd 0.046: about ±0.09


def test_intervals_of_degenerate_input():
    assert interval([]) is None
    assert interval([0.4]) == [0.4, 0.4]
    assert interval([1.0, 1.0, 1.0]) == [1.0, 1.0]


def test_an_interval_widens_as_questions_get_fewer():
    rng = np.random.default_rng(3)
    many = (rng.random(400) < 0.7).astype(float)
    few = many[:25]
    assert np.diff(interval(few))[0] > 2 * np.diff(interval(many))[0]


def test_a_paired_interval_resamples_both_arrays_together():
    x = np.linspace(0, 1, 50)
    lo, hi = paired_interval(lambda a, b, axis: np.mean(a - b, axis=axis), x, x)
    assert lo == hi == 0.0  # a − b is 0 on every resample only if the pairs stay together


def test_paired_p_of_identical_and_of_clearly_different_systems():
    a = [1.0, 0.0, 1.0, 1.0, 0.0] * 20
    assert paired_p(a, a) == 1.0
    better = [1.0] * 100
    assert paired_p(better, a) < 0.001
    with pytest.raises(ValueError):
        paired_p([1.0, 0.0], [1.0])


def test_paired_p_is_exact_on_a_small_case():
    # differences +1, +1, +1: of the 2^3 sign flips, 2 give |mean| ≥ 1 → p = 2/8
    assert paired_p([1.0, 1.0, 1.0], [0.0, 0.0, 0.0]) == pytest.approx(0.25)


def test_holm_on_a_hand_worked_family():
    # sorted 0.01, 0.03, 0.04, 0.5 → ×4, ×3, ×2, ×1 = 0.04, 0.09, 0.08→0.09 (monotone), 0.5
    assert holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert holm([0.6, 0.9]) == pytest.approx([1.0, 1.0])


def test_significance_compares_every_pair_on_shared_questions():
    systems = {
        "a": {"R": {"q1": 1.0, "q2": 1.0, "q3": 1.0, "q4": 0.0}},
        "b": {"R": {"q1": 0.0, "q2": 1.0, "q3": 0.0, "q4": 0.0}},
        "c": {"R": {"q1": 1.0, "q2": 1.0, "q3": 1.0}},  # q4 missing: pairs with c use q1-q3
    }
    rows = significance(systems, ["R", "absent"])
    assert [(r["a"], r["b"]) for r in rows] == [("a", "b"), ("a", "c"), ("b", "c")]
    ab, ac, bc = rows
    assert ab["delta"] == 0.5 and ab["n"] == 4
    assert ac["n"] == 3 and ac["delta"] == 0.0 and ac["p_raw"] == 1.0
    assert bc["delta"] == pytest.approx(-2 / 3, abs=1e-4)
    assert all(r["p"] >= r["p_raw"] for r in rows)  # Holm never lowers a p-value
    assert not any(r["significant"] for r in rows)  # four questions cannot show significance
