"""Uplift of a campaign over its randomised holdout, with a confidence interval.

Pure numpy / scipy (no Django). Two estimators, both for two independent random groups
("treated": messaged; "control": held out):

- ``difference_in_means``: the difference of the two means of a per-customer value
  (revenue per customer), with **Welch's t interval** (unequal variances; the
  Welch-Satterthwaite degrees of freedom), as ``scipy.stats.ttest_ind(equal_var=False)``
  computes it.
- ``difference_in_proportions``: the difference of two rates (conversion rate), with
  **Newcombe's hybrid score interval** (Newcombe 1998, method 10): the Wilson score
  interval of each rate, combined. Unlike the Wald interval it stays inside [-1, 1] and
  keeps close to its nominal coverage with small groups and rates near 0 or 1 (the usual
  case: a few conversions among a few hundred customers).

Both return a dict with ``estimate`` (treated minus control), ``low`` and ``high`` (the
interval, or None when it cannot be computed: fewer than two customers in a group for the
means, an empty group for the proportions, or no variance in either group), the two
group means, the two group sizes, ``confidence`` and ``method``. ``estimate`` itself is
None only when a group is empty.

Read the interval as: if the campaign had no effect, intervals built this way would miss
zero only ``1 - confidence`` of the time. Treated and control customers must have been
drawn at random (the holdout draw), otherwise the difference is not the campaign's effect.
"""

import math

import numpy as np
from scipy import stats

WELCH = "welch_t"
NEWCOMBE = "newcombe_wilson"


def _check_confidence(confidence):
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1 (exclusive), got {confidence!r}")


def _values(values, name):
    array = np.asarray(values, dtype=float).ravel()
    if np.isnan(array).any():
        raise ValueError(f"{name} holds missing values (NaN); give 0 for customers without revenue")
    return array


def _finite_or_none(value):
    value = float(value)
    return value if math.isfinite(value) else None


def _comparison(method, treated_mean, control_mean, n_treated, n_control, confidence):
    """The result dict every comparison returns, its interval still unknown (None)."""
    return {
        "estimate": None if treated_mean is None or control_mean is None else treated_mean - control_mean,
        "low": None,
        "high": None,
        "treated_mean": treated_mean,
        "control_mean": control_mean,
        "n_treated": n_treated,
        "n_control": n_control,
        "confidence": confidence,
        "method": method,
    }


def difference_in_means(treated, control, *, confidence=0.95):
    """Difference of the means of ``treated`` and ``control`` (array-likes of numbers, one
    per customer) with Welch's t interval at ``confidence``.

    The interval is None when a group has fewer than two values (no variance estimate) or
    when both groups have zero variance (every customer the same value: no spread to
    estimate the uncertainty from)."""
    _check_confidence(confidence)
    treated = _values(treated, "treated")
    control = _values(control, "control")
    n_t, n_c = len(treated), len(control)
    treated_mean = float(treated.mean()) if n_t else None
    control_mean = float(control.mean()) if n_c else None
    result = _comparison(WELCH, treated_mean, control_mean, n_t, n_c, confidence)
    if n_t < 2 or n_c < 2:
        return result
    if treated.var(ddof=1) == 0 and control.var(ddof=1) == 0:
        return result
    interval = stats.ttest_ind(treated, control, equal_var=False).confidence_interval(confidence_level=confidence)
    result["low"], result["high"] = _finite_or_none(interval.low), _finite_or_none(interval.high)
    if result["low"] is None or result["high"] is None:
        result["low"] = result["high"] = None
    return result


def wilson_interval(successes, n, *, confidence=0.95):
    """Wilson score interval (low, high) of a proportion, from scipy; None when n is 0."""
    if n == 0:
        return None
    interval = stats.binomtest(int(successes), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(interval.low), float(interval.high)


def _count(value, name):
    if isinstance(value, bool) or int(value) != value or value < 0:
        raise ValueError(f"{name} must be a whole number, 0 or more, got {value!r}")
    return int(value)


def difference_in_proportions(treated_successes, n_treated, control_successes, n_control, *, confidence=0.95):
    """Difference of two rates, ``treated_successes / n_treated`` minus
    ``control_successes / n_control``, with Newcombe's hybrid score interval (method 10)
    built from the two Wilson score intervals:

        low  = d - sqrt((p1 - l1)^2 + (u2 - p2)^2)
        high = d + sqrt((u1 - p1)^2 + (p2 - l2)^2)

    where d = p1 - p2 and (l, u) are the Wilson bounds. The interval is None when a group
    is empty; with one customer per group it is wide, but defined."""
    _check_confidence(confidence)
    s_t, n_t = _count(treated_successes, "treated_successes"), _count(n_treated, "n_treated")
    s_c, n_c = _count(control_successes, "control_successes"), _count(n_control, "n_control")
    if s_t > n_t or s_c > n_c:
        raise ValueError(
            f"more successes than customers: treated {s_t}/{n_t}, control {s_c}/{n_c}"
        )
    p_t = s_t / n_t if n_t else None
    p_c = s_c / n_c if n_c else None
    result = _comparison(NEWCOMBE, p_t, p_c, n_t, n_c, confidence)
    if result["estimate"] is None:
        return result
    l_t, u_t = wilson_interval(s_t, n_t, confidence=confidence)
    l_c, u_c = wilson_interval(s_c, n_c, confidence=confidence)
    d = result["estimate"]
    result["low"] = d - math.sqrt((p_t - l_t) ** 2 + (u_c - p_c) ** 2)
    result["high"] = d + math.sqrt((u_t - p_t) ** 2 + (p_c - l_c) ** 2)
    return result


def mean_and_variance(n, total, total_of_squares):
    """Mean and sample variance (ddof=1) from a count, a sum and a sum of squares, as a
    database aggregates them; (None, None) for n == 0, variance None for n < 2."""
    if n == 0:
        return None, None
    mean = total / n
    if n < 2:
        return mean, None
    return mean, max((total_of_squares - n * mean * mean) / (n - 1), 0.0)


def difference_in_means_from_stats(
    *, treated_mean, treated_var, n_treated, control_mean, control_var, n_control, confidence=0.95
):
    """``difference_in_means`` from the groups' means, sample variances (ddof=1) and sizes,
    for when the database aggregates the values (no per-customer array). Same Welch
    interval, same result dict; the same None rules (n < 2, or no variance at all)."""
    _check_confidence(confidence)
    result = _comparison(WELCH, treated_mean, control_mean, n_treated, n_control, confidence)
    if n_treated < 2 or n_control < 2 or (treated_var == 0 and control_var == 0):
        return result
    a, b = treated_var / n_treated, control_var / n_control
    df = (a + b) ** 2 / (a * a / (n_treated - 1) + b * b / (n_control - 1))
    half = stats.t.ppf((1 + confidence) / 2, df) * math.sqrt(a + b)
    result["low"], result["high"] = result["estimate"] - half, result["estimate"] + half
    return result
