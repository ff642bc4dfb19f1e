"""ml.uplift against hand-computed numbers and the published values of Newcombe (1998)."""

import math

import numpy as np
import pytest
from scipy import stats

from oscar_journeys.ml.uplift import (
    NEWCOMBE,
    WELCH,
    difference_in_means,
    difference_in_means_from_stats,
    difference_in_proportions,
    mean_and_variance,
    wilson_interval,
)


def welch_by_hand(a, b, confidence):
    """Welch's interval written out: se from the two sample variances, Welch-Satterthwaite df."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    t = stats.t.ppf((1 + confidence) / 2, df)
    d = a.mean() - b.mean()
    return d - t * se, d + t * se


def test_difference_in_means_matches_welch_by_hand():
    result = difference_in_means([1, 2, 3, 4], [1, 1, 2])
    assert result["estimate"] == pytest.approx(2.5 - 4 / 3)
    assert result["treated_mean"] == 2.5 and result["control_mean"] == pytest.approx(4 / 3)
    assert (result["n_treated"], result["n_control"]) == (4, 3)
    # Worked out: se^2 = 1.6667/4 + 0.3333/3 = 0.52778, df = 4.349, t = 2.690.
    assert result["low"] == pytest.approx(-0.78805, abs=1e-4)
    assert result["high"] == pytest.approx(3.12138, abs=1e-4)
    assert (result["low"], result["high"]) == pytest.approx(welch_by_hand([1, 2, 3, 4], [1, 1, 2], 0.95))
    assert result["method"] == WELCH and result["confidence"] == 0.95


def test_difference_in_means_revenue_like_data_and_confidence_level():
    rng = np.random.default_rng(3)
    treated = np.where(rng.random(400) < 0.08, rng.gamma(2.0, 30.0, 400), 0.0)
    control = np.where(rng.random(90) < 0.05, rng.gamma(2.0, 30.0, 90), 0.0)
    wide = difference_in_means(treated, control, confidence=0.99)
    narrow = difference_in_means(treated, control, confidence=0.90)
    assert (wide["low"], wide["high"]) == pytest.approx(welch_by_hand(treated, control, 0.99))
    assert wide["low"] < narrow["low"] < narrow["estimate"] < narrow["high"] < wide["high"]


def test_difference_in_means_without_enough_data_has_no_interval():
    one = difference_in_means([5.0], [0.0, 1.0])
    assert one["estimate"] == 4.5 and one["low"] is None and one["high"] is None
    empty = difference_in_means([], [1.0, 2.0])
    assert empty["estimate"] is None and empty["treated_mean"] is None and empty["n_treated"] == 0
    assert empty["low"] is None
    # Every customer spent nothing in both groups: no spread, no interval (not a zero-width one).
    flat = difference_in_means([0, 0, 0], [0, 0])
    assert flat["estimate"] == 0 and flat["low"] is None and flat["high"] is None
    # Spread in one group only is enough.
    half = difference_in_means([0, 0, 0], [0, 10])
    assert half["low"] < -5 < half["high"]


def test_difference_in_means_refuses_bad_input():
    with pytest.raises(ValueError, match="confidence"):
        difference_in_means([1, 2], [1, 2], confidence=95)
    with pytest.raises(ValueError, match="NaN"):
        difference_in_means([1, float("nan")], [1, 2])


@pytest.mark.parametrize(
    "counts, low, high",
    [
        # Newcombe (1998), Statistics in Medicine 17:873-890, table II, method 10.
        ((56, 70, 48, 80), 0.0524, 0.3339),
        ((9, 10, 3, 10), 0.1705, 0.8090),
        ((6, 7, 2, 7), 0.0582, 0.8062),
        ((5, 56, 0, 29), -0.0381, 0.1926),
        ((0, 10, 0, 20), -0.1611, 0.2775),
        ((0, 10, 0, 10), -0.2775, 0.2775),
        ((10, 10, 0, 20), 0.6791, 1.0000),
        ((10, 10, 0, 10), 0.6075, 1.0000),
    ],
)
def test_difference_in_proportions_matches_newcombe(counts, low, high):
    result = difference_in_proportions(*counts)
    s1, n1, s2, n2 = counts
    assert result["estimate"] == pytest.approx(s1 / n1 - s2 / n2)
    assert result["low"] == pytest.approx(low, abs=1e-4)
    assert result["high"] == pytest.approx(high, abs=1e-4)
    assert result["method"] == NEWCOMBE and (result["n_treated"], result["n_control"]) == (n1, n2)


def test_wilson_interval_by_hand():
    # (p + z²/2n ± z sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n), z = 1.95996
    p, n, z = 0.8, 70, stats.norm.ppf(0.975)
    centre, half = p + z**2 / (2 * n), z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    expected = ((centre - half) / (1 + z**2 / n), (centre + half) / (1 + z**2 / n))
    assert wilson_interval(56, 70) == pytest.approx(expected)
    assert wilson_interval(56, 70) == pytest.approx((0.6918, 0.8770), abs=1e-4)
    assert wilson_interval(0, 0) is None


def test_difference_in_proportions_edge_cases():
    empty = difference_in_proportions(3, 10, 0, 0)
    assert empty["estimate"] is None and empty["low"] is None and empty["treated_mean"] == 0.3
    tiny = difference_in_proportions(1, 1, 0, 1)
    assert tiny["estimate"] == 1 and -1 <= tiny["low"] < 0.5 and tiny["high"] == pytest.approx(1)
    with pytest.raises(ValueError, match="more successes"):
        difference_in_proportions(5, 4, 0, 4)
    with pytest.raises(ValueError, match="whole number"):
        difference_in_proportions(1.5, 4, 0, 4)


def test_from_stats_agrees_with_the_arrays():
    rng = np.random.default_rng(7)
    treated, control = rng.exponential(20, 300) * (rng.random(300) < 0.1), rng.exponential(20, 80)
    t_mean, t_var = mean_and_variance(len(treated), treated.sum(), (treated**2).sum())
    c_mean, c_var = mean_and_variance(len(control), control.sum(), (control**2).sum())
    assert t_var == pytest.approx(treated.var(ddof=1))
    from_stats = difference_in_means_from_stats(
        treated_mean=t_mean, treated_var=t_var, n_treated=300, control_mean=c_mean, control_var=c_var, n_control=80
    )
    from_arrays = difference_in_means(treated, control)
    for key in ("estimate", "low", "high", "treated_mean", "control_mean"):
        assert from_stats[key] == pytest.approx(from_arrays[key])


def test_mean_and_variance_edges():
    assert mean_and_variance(0, 0, 0) == (None, None)
    assert mean_and_variance(1, 5.0, 25.0) == (5.0, None)
    # Rounding never gives a negative variance.
    assert mean_and_variance(3, 0.3, 0.03)[1] >= 0
    none = difference_in_means_from_stats(
        treated_mean=1.0, treated_var=None, n_treated=1, control_mean=0.0, control_var=0.0, n_control=5
    )
    assert none["estimate"] == 1.0 and none["low"] is None
