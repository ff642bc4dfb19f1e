"""BG/NBD and gamma-gamma against the published CDNOW results, plus checks that could fail:
an independent simulation of the BG/NBD process, an independent numerical integral of the
gamma-gamma posterior, monotonicity, and clear errors on bad input. No database."""

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special

from oscar_journeys.ml.clv import BGNBD, GammaGamma, NotFittedError

DATA = Path(__file__).resolve().parent.parent / "data"


@pytest.fixture(scope="module")
def cdnow():
    """Fader & Hardie's CDNOW sample: 2,357 customers, 39-week calibration period (weeks)."""
    frame = pd.read_csv(DATA / "cdnow_customers_summary.csv")
    assert len(frame) == 2357
    return frame


@pytest.fixture(scope="module")
def cdnow_value():
    """The same customers with zbar, the average value of their repeat transactions."""
    frame = pd.read_csv(DATA / "cdnow_customers_summary_with_transactions.csv")
    assert len(frame) == 2357
    return frame


@pytest.fixture(scope="module")
def bgnbd(cdnow):
    return BGNBD().fit(cdnow["frequency"], cdnow["recency"], cdnow["T"])


@pytest.fixture(scope="module")
def gamma_gamma(cdnow_value):
    return GammaGamma().fit(cdnow_value["x"], cdnow_value["zbar"])


# ---------------------------------------------------------------------------------------
# BG/NBD: the published results


def test_bgnbd_reproduces_the_papers_cdnow_estimates(bgnbd):
    # Fader, Hardie & Lee (2005), section 5: r = 0.243, alpha = 4.414, a = 0.793,
    # b = 2.426, LL = -9582.4.
    published = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
    assert set(bgnbd.params_) == set(published)
    for name, value in published.items():
        assert bgnbd.params_[name] == pytest.approx(value, rel=0.005, abs=0.001), name
    assert bgnbd.log_likelihood_ == pytest.approx(-9582.4, abs=0.1)
    assert bgnbd.converged_


def test_bgnbd_log_likelihood_is_the_maximum(bgnbd, cdnow):
    """Moving any parameter away from the estimate lowers the likelihood."""
    x, t_x, T = (cdnow[c].to_numpy(float) for c in ("frequency", "recency", "T"))
    best = np.array([bgnbd.params_[n] for n in BGNBD.PARAM_NAMES])
    assert BGNBD._log_likelihood(best, x, t_x, T).sum() == pytest.approx(bgnbd.log_likelihood_)
    for i in range(4):
        for factor in (0.98, 1.02):
            moved = best.copy()
            moved[i] *= factor
            assert BGNBD._log_likelihood(moved, x, t_x, T).sum() < bgnbd.log_likelihood_


def test_bgnbd_papers_worked_example(bgnbd):
    # The paper's example (also Hardie's spreadsheet): x = 2, t_x = 30.43, T = 38.86
    # expects 1.226 purchases in the next 39 weeks.
    assert bgnbd.expected_purchases(39, 2, 30.43, 38.86) == pytest.approx(1.226, abs=0.001)


def test_bgnbd_unconditional_expectation_matches_hardies_spreadsheet(bgnbd):
    """A customer with no history (x = t_x = T = 0) expects the population's E[X(t)], eq. 9;
    the values are those of Hardie's BG/NBD spreadsheet for the CDNOW estimates."""
    times = np.array([0.1429, 1.0, 3.0, 31.8571, 32.0, 78.0])
    expected = np.array([0.0078, 0.0532, 0.1506, 1.0405, 1.0437, 1.8576])
    zeros = np.zeros_like(times)
    actual = bgnbd.expected_purchases(times, zeros, zeros, zeros)
    np.testing.assert_allclose(actual, expected, atol=0.001)
    # The same by the closed form of eq. 9, written here independently.
    r, alpha, a, b = (bgnbd.params_[n] for n in BGNBD.PARAM_NAMES)
    z = times / (alpha + times)
    eq9 = (a + b - 1) / (a - 1) * (1 - (alpha / (alpha + times)) ** r * special.hyp2f1(r, b, a + b - 1, z))
    np.testing.assert_allclose(actual, eq9, rtol=1e-10)


def test_bgnbd_prob_alive_closed_form(bgnbd):
    r, alpha, a, b = (bgnbd.params_[n] for n in BGNBD.PARAM_NAMES)
    x, t_x, T = 2, 30.43, 38.86
    by_hand = 1 / (1 + a / (b + x - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x))
    assert bgnbd.prob_alive(x, t_x, T) == pytest.approx(by_hand, rel=1e-12)
    assert bgnbd.prob_alive(x, t_x, T) == pytest.approx(0.7266, abs=0.0005)


# ---------------------------------------------------------------------------------------
# BG/NBD: properties


def test_prob_alive_is_one_without_repeat_purchases(bgnbd):
    np.testing.assert_array_equal(bgnbd.prob_alive([0, 0, 0], [0, 0, 0], [0, 5, 1000]), 1.0)


def test_prob_alive_falls_as_the_customer_stays_silent(bgnbd):
    T = np.linspace(10, 200, 40)
    for x in (1, 3, 10):
        alive = bgnbd.prob_alive(np.full_like(T, x), np.full_like(T, 10.0), T)
        assert np.all(np.diff(alive) < 0), x
        assert alive[0] == pytest.approx(1 / (1 + bgnbd.params_["a"] / (bgnbd.params_["b"] + x - 1)))


def test_prob_alive_rises_with_recency(bgnbd):
    recency = np.linspace(0.5, 39, 30)
    alive = bgnbd.prob_alive(np.full_like(recency, 4), recency, np.full_like(recency, 39.0))
    assert np.all(np.diff(alive) > 0)


def test_prob_alive_is_a_probability_on_the_whole_sample(bgnbd, cdnow):
    alive = bgnbd.prob_alive(cdnow["frequency"], cdnow["recency"], cdnow["T"])
    assert isinstance(alive, np.ndarray) and alive.shape == (2357,)
    assert np.all((alive > 0) & (alive <= 1))


def test_expected_purchases_grow_with_the_horizon(bgnbd):
    t = np.linspace(0, 200, 50)
    for x, t_x, T in [(0, 0, 0), (0, 0, 30), (2, 30.43, 38.86), (10, 38, 39), (10, 5, 39)]:
        expected = bgnbd.expected_purchases(t, x, t_x, T)
        assert expected[0] == pytest.approx(0, abs=1e-12)
        assert np.all(np.diff(expected) > 0), (x, t_x, T)


def test_expected_purchases_follow_the_history(bgnbd):
    # More repeat purchases (same recency) expect more; a recent last purchase expects more.
    assert bgnbd.expected_purchases(39, 5, 30, 39) > bgnbd.expected_purchases(39, 2, 30, 39)
    assert bgnbd.expected_purchases(39, 5, 38, 39) > bgnbd.expected_purchases(39, 5, 10, 39)


def test_expected_purchases_on_the_whole_sample_are_finite(bgnbd, cdnow):
    expected = bgnbd.expected_purchases(39, cdnow["frequency"], cdnow["recency"], cdnow["T"])
    assert expected.shape == (2357,) and np.all(np.isfinite(expected)) and np.all(expected > 0)
    # Per customer t works as well as one shared t.
    per_customer = bgnbd.expected_purchases(np.full(2357, 39.0), cdnow["frequency"], cdnow["recency"], cdnow["T"])
    np.testing.assert_allclose(per_customer, expected)


def test_expected_purchases_stay_finite_when_the_fit_finds_no_drop_outs():
    # a and b near 0 (a fit on customers who never stop): for one repeat purchase the
    # hypergeometric parameter a + b + x - 1 is ~0 and 2F1 overflows; the limit takes over
    # and joins the regular formula continuously.
    def model(a, b):
        fitted = BGNBD()
        fitted.params_ = {"r": 0.5, "alpha": 40.0, "a": a, "b": b}
        return fitted

    x, t_x, T = np.array([0.0, 1.0, 1.0, 4.0]), np.array([0.0, 30.0, 200.0, 250.0]), np.array([100.0, 60.0, 300.0, 300.0])
    limit = model(1e-20, 1e-14).expected_purchases(365, x, t_x, T)
    regular = model(1e-10, 1e-4).expected_purchases(365, x, t_x, T)  # a + b well above SMALL_C
    assert np.isfinite(limit).all()
    np.testing.assert_allclose(limit, regular, rtol=1e-3)
    # Nobody drops out: a customer buys at their posterior rate (r + x) / (alpha + T).
    np.testing.assert_allclose(limit, (0.5 + x) / (40.0 + T) * 365, rtol=1e-4)


def test_scalars_give_floats_and_arrays_give_arrays(bgnbd):
    assert isinstance(bgnbd.expected_purchases(39, 2, 30.43, 38.86), float)
    assert isinstance(bgnbd.prob_alive(2, 30.43, 38.86), float)
    assert isinstance(bgnbd.prob_alive([2], [30.43], [38.86]), np.ndarray)
    assert isinstance(bgnbd.prob_alive(pd.Series([2]), pd.Series([30.43]), pd.Series([38.86])), np.ndarray)


def _simulate_bgnbd(params, n, t_future, seed):
    """Simulate the BG/NBD story itself (not its formulas): gamma rates, beta drop-out
    probabilities, exponential inter-purchase times, a drop-out coin after each purchase.
    Returns the calibration summary (x, t_x, T), the purchases in (T, T + t_future] and
    whether each customer is still alive at T."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(params["r"], 1 / params["alpha"], n)
    p = rng.beta(params["a"], params["b"], n)
    T = rng.uniform(27, 39, n)  # CDNOW customers joined over 12 weeks
    clock = np.zeros(n)
    x = np.zeros(n)
    t_x = np.zeros(n)
    future = np.zeros(n)
    alive_at_T = np.ones(n, dtype=bool)
    active = np.arange(n)
    while active.size:
        clock[active] += rng.exponential(1 / lam[active])
        now = clock[active]
        in_calibration = now <= T[active]
        in_future = ~in_calibration & (now <= T[active] + t_future)
        calibration = active[in_calibration]
        x[calibration] += 1
        t_x[calibration] = clock[calibration]
        future[active[in_future]] += 1
        bought = in_calibration | in_future
        dies = bought & (rng.random(active.size) < p[active])
        alive_at_T[active[dies & in_calibration]] = False
        active = active[bought & ~dies]
    return x, t_x, T, future, alive_at_T


def test_conditional_expectation_and_prob_alive_agree_with_a_simulation(bgnbd):
    """E[Y(t) | x, t_x, T] and P(alive | x, t_x, T) are conditional on the history, so
    within any group of histories their average must match what simulated customers with
    those histories actually do next (law of total expectation)."""
    x, t_x, T, future, alive_at_T = _simulate_bgnbd(bgnbd.params_, 200_000, 39.0, seed=20050101)
    expected = bgnbd.expected_purchases(39.0, x, t_x, T)
    alive = bgnbd.prob_alive(x, t_x, T)
    groups = {"all": x >= 0, "x=0": x == 0, "x=1": x == 1, "x=2-4": (x >= 2) & (x <= 4), "x>=5": x >= 5,
              "x>=1, silent for 20+ weeks": (x >= 1) & (T - t_x >= 20)}
    for name, mask in groups.items():
        n = mask.sum()
        assert n > 2000, name
        se_future = future[mask].std() / np.sqrt(n)
        assert abs(expected[mask].mean() - future[mask].mean()) < 4 * se_future, name
        se_alive = alive_at_T[mask].std() / np.sqrt(n)
        assert abs(alive[mask].mean() - alive_at_T[mask].mean()) < 4 * max(se_alive, 1e-3), name


def test_fit_recovers_the_parameters_of_simulated_customers(bgnbd):
    truth = bgnbd.params_
    x, t_x, T, _, _ = _simulate_bgnbd(truth, 20_000, 0.0, seed=7)
    refit = BGNBD().fit(x, t_x, T)
    for name in ("r", "alpha", "a", "b"):
        assert refit.params_[name] == pytest.approx(truth[name], rel=0.25), name
    # The population expectation, better determined than the individual parameters.
    assert refit.expected_purchases(39, 0, 0, 0) == pytest.approx(bgnbd.expected_purchases(39, 0, 0, 0), rel=0.05)


def test_penalizer_shrinks_the_parameters(cdnow, bgnbd):
    penalized = BGNBD(penalizer=0.1).fit(cdnow["frequency"], cdnow["recency"], cdnow["T"])
    sum_of_squares = lambda params: sum(v**2 for v in params.values())  # noqa: E731
    assert sum_of_squares(penalized.params_) < sum_of_squares(bgnbd.params_)
    assert penalized.log_likelihood_ < bgnbd.log_likelihood_


def test_fits_are_fast(cdnow, cdnow_value):
    start = time.perf_counter()
    BGNBD().fit(cdnow["frequency"], cdnow["recency"], cdnow["T"])
    bgnbd_seconds = time.perf_counter() - start
    start = time.perf_counter()
    GammaGamma().fit(cdnow_value["x"], cdnow_value["zbar"])
    gamma_gamma_seconds = time.perf_counter() - start
    assert bgnbd_seconds < 3, bgnbd_seconds
    assert gamma_gamma_seconds < 3, gamma_gamma_seconds


# ---------------------------------------------------------------------------------------
# Gamma-gamma


def test_gamma_gamma_reproduces_the_notes_cdnow_estimates(gamma_gamma, cdnow_value):
    # Fader & Hardie (2013), "The Gamma-Gamma Model of Monetary Value": from the 946
    # CDNOW customers with at least one repeat purchase, p = 6.25, q = 3.74, v = 15.44.
    assert (cdnow_value["x"] > 0).sum() == 946
    assert gamma_gamma.n_customers_ == 946
    published = {"p": 6.25, "q": 3.74, "v": 15.44}
    assert set(gamma_gamma.params_) == set(published)
    for name, value in published.items():
        assert gamma_gamma.params_[name] == pytest.approx(value, rel=0.01), name
    assert gamma_gamma.converged_


def test_gamma_gamma_expected_value_matches_the_formula(gamma_gamma, cdnow_value):
    p, q, v = (gamma_gamma.params_[n] for n in ("p", "q", "v"))
    rows = cdnow_value.iloc[[0, 1, 4, 10, 100]]
    x, m = rows["x"].to_numpy(float), rows["zbar"].to_numpy(float)
    population_mean = p * v / (q - 1)
    weight = p * x / (p * x + q - 1)
    by_hand = (1 - weight) * population_mean + weight * m
    np.testing.assert_allclose(gamma_gamma.expected_average_value(x, m), by_hand, rtol=1e-12)
    # Customer 1 (x = 2, zbar = 22.35) with the note's rounded estimates: about 24.66.
    assert gamma_gamma.expected_average_value(2, 22.35) == pytest.approx(24.66, abs=0.05)


def test_gamma_gamma_expected_value_is_the_posterior_mean(gamma_gamma):
    """Independently of the closed form: the posterior of nu given (x, m-bar) by numerical
    integration, and E[p / nu] under it."""
    p, q, v = (gamma_gamma.params_[n] for n in ("p", "q", "v"))
    for x, m in [(1, 10.0), (3, 45.5), (12, 20.0)]:
        # log prior gamma(q, rate v) + log density of m-bar | nu: gamma(px, rate x nu).
        def log_post(nu):
            return (q - 1) * np.log(nu) - v * nu + p * x * np.log(x * nu) - x * nu * m

        peak = (q - 1 + p * x) / (v + x * m)
        shift = log_post(peak)
        weight = lambda nu: np.exp(log_post(nu) - shift)  # noqa: E731
        norm, _ = integrate.quad(weight, 0, np.inf, limit=200)
        mean, _ = integrate.quad(lambda nu: p / nu * weight(nu), 0, np.inf, limit=200)
        assert gamma_gamma.expected_average_value(x, m) == pytest.approx(mean / norm, rel=1e-6)


def test_gamma_gamma_frequency_zero_gives_the_population_mean(gamma_gamma):
    p, q, v = (gamma_gamma.params_[n] for n in ("p", "q", "v"))
    values = gamma_gamma.expected_average_value([0, 0], [0.0, 123.0])
    np.testing.assert_allclose(values, p * v / (q - 1))


def test_gamma_gamma_shrinks_towards_the_population_mean(gamma_gamma):
    p, q, v = (gamma_gamma.params_[n] for n in ("p", "q", "v"))
    population_mean = p * v / (q - 1)
    x = np.arange(1, 30)
    high = gamma_gamma.expected_average_value(x, np.full(x.size, 100.0))
    assert np.all((high > population_mean) & (high < 100))
    assert np.all(np.diff(high) > 0)  # more transactions: more trust in the customer's own average


def test_gamma_gamma_ignores_customers_without_repeat_purchases(cdnow_value, gamma_gamma):
    repeaters = cdnow_value[cdnow_value["x"] > 0]
    only = GammaGamma().fit(repeaters["x"], repeaters["zbar"])
    for name in ("p", "q", "v"):
        assert only.params_[name] == pytest.approx(gamma_gamma.params_[name], rel=1e-6)


# ---------------------------------------------------------------------------------------
# Errors


def test_using_a_model_before_fit_is_a_clear_error():
    with pytest.raises(NotFittedError, match="not fitted yet"):
        BGNBD().prob_alive(1, 1, 2)
    with pytest.raises(NotFittedError, match="not fitted yet"):
        BGNBD().expected_purchases(10, 1, 1, 2)
    with pytest.raises(NotFittedError, match="not fitted yet"):
        GammaGamma().expected_average_value(1, 10.0)
    assert issubclass(NotFittedError, RuntimeError)


@pytest.mark.parametrize(
    "frequency, recency, T, message",
    [
        ([], [], [], "frequency is empty"),
        ([1, 2], [1, 2, 3], [4, 4, 4], "mismatched lengths"),
        ([-1], [0], [5], "frequency must be non-negative"),
        ([1.5], [1], [5], "frequency must hold whole numbers"),
        ([1], [-1], [5], "recency must be non-negative"),
        ([1], [0], [-5], "T must be non-negative"),
        ([1], [6], [5], "recency must not exceed T"),
        ([0], [2], [5], "recency must be 0 for customers with frequency 0"),
        ([1, np.nan], [1, 1], [5, 5], "frequency holds missing"),
        ([1], [1], [np.inf], "T holds missing or infinite"),
        (["a"], [1], [5], "frequency must hold numbers"),
        ([[1, 2]], [[1, 2]], [[3, 3]], "one-dimensional"),
    ],
)
def test_bgnbd_bad_input(bgnbd, frequency, recency, T, message):
    with pytest.raises(ValueError, match=message):
        BGNBD().fit(frequency, recency, T)
    with pytest.raises(ValueError, match=message):
        bgnbd.prob_alive(frequency, recency, T)
    with pytest.raises(ValueError, match=message):
        bgnbd.expected_purchases(10, frequency, recency, T)


def test_bgnbd_bad_horizon(bgnbd):
    with pytest.raises(ValueError, match="t \\(the horizon\\) must be non-negative"):
        bgnbd.expected_purchases(-1, 1, 1, 2)
    with pytest.raises(ValueError, match="single horizon or one per customer"):
        bgnbd.expected_purchases([1, 2, 3], [1, 1], [1, 1], [2, 2])


def test_bad_penalizer():
    with pytest.raises(ValueError, match="penalizer must be a non-negative number"):
        BGNBD(penalizer=-1)
    with pytest.raises(ValueError, match="penalizer must be a non-negative number"):
        GammaGamma(penalizer=float("nan"))


def test_bgnbd_needs_an_observation_period():
    with pytest.raises(ValueError, match="T is 0 for every customer"):
        BGNBD().fit([0, 0], [0, 0], [0, 0])


@pytest.mark.parametrize(
    "frequency, monetary_value, message",
    [
        ([], [], "frequency is empty"),
        ([1, 2], [10.0], "mismatched lengths"),
        ([-1], [10.0], "frequency must be non-negative"),
        ([0.5], [10.0], "frequency must hold whole numbers"),
        ([1, 2], [10.0, 0.0], "monetary_value must be positive for customers with frequency > 0"),
        ([1, 2], [10.0, -3.0], "monetary_value must be positive"),
        ([1], [np.nan], "monetary_value holds missing"),
    ],
)
def test_gamma_gamma_bad_input(gamma_gamma, frequency, monetary_value, message):
    with pytest.raises(ValueError, match=message):
        GammaGamma().fit(frequency, monetary_value)
    with pytest.raises(ValueError, match=message):
        gamma_gamma.expected_average_value(frequency, monetary_value)


def test_gamma_gamma_needs_repeat_customers():
    with pytest.raises(ValueError, match="no customer has frequency > 0"):
        GammaGamma().fit([0, 0, 0], [0.0, 0.0, 0.0])


def test_fit_falls_back_to_nelder_mead_when_bfgs_fails(cdnow, bgnbd, monkeypatch):
    from oscar_journeys.ml import clv

    real_minimize = clv.optimize.minimize
    calls = []

    def first_bfgs_fails(fun, x0, method=None, **kwargs):
        calls.append(method)
        result = real_minimize(fun, x0, method=method, **kwargs)
        if len(calls) == 1:
            result.success = False
            result.x = x0  # and stuck at the start
        return result

    monkeypatch.setattr(clv.optimize, "minimize", first_bfgs_fails)
    model = BGNBD().fit(cdnow["frequency"], cdnow["recency"], cdnow["T"])
    assert calls == ["BFGS", "Nelder-Mead", "BFGS"]
    assert model.converged_
    for name in BGNBD.PARAM_NAMES:
        assert model.params_[name] == pytest.approx(bgnbd.params_[name], rel=1e-3)


def test_expected_purchases_is_continuous_at_a_equal_one(bgnbd):
    """(a + b + x - 1) / (a - 1) in eq. 10 is a removable singularity at a = 1."""
    values = []
    for a in (1 - 1e-3, 1.0, 1 + 1e-3):
        model = BGNBD()
        model.params_ = {**bgnbd.params_, "a": a}
        values.append(model.expected_purchases(39, [0, 2], [0, 30.43], [38.86, 38.86]))
    assert np.all(np.isfinite(values[1]))
    np.testing.assert_allclose(values[1], (values[0] + values[2]) / 2, rtol=1e-4)
