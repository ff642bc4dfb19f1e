"""Customer lifetime value: how many more purchases, and of what value.

Pure numpy / scipy / pandas (no Django). Two classical probability models, fitted by
maximum likelihood on one row per customer:

- ``BGNBD``: the beta-geometric / negative binomial distribution model of Fader, Hardie &
  Lee (2005), "Counting Your Customers the Easy Way: An Alternative to the Pareto/NBD
  Model", Marketing Science 24(2), 275-284. While alive, a customer buys at a Poisson rate
  ``lambda`` (gamma-distributed over customers: shape ``r``, rate ``alpha``); after each
  purchase they drop out for good with probability ``p`` (beta-distributed: ``a``, ``b``).
  Inputs per customer: ``frequency`` x (number of *repeat* purchases), ``recency`` t_x
  (age of the customer at their last purchase, 0 when x = 0) and ``T`` (age of the
  customer at the end of the observation period), all times in one unit (days, weeks...).
- ``GammaGamma``: the gamma-gamma model of monetary value, Fader & Hardie (2013), "The
  Gamma-Gamma Model of Monetary Value" (note). A customer's transaction values are gamma
  (shape ``p``, rate ``nu``), and ``nu`` is gamma over customers (shape ``q``, rate ``v``).
  Inputs: ``frequency`` x and ``monetary_value`` m-bar, the *average value of the repeat
  transactions*; only customers with x > 0 inform the fit.

Both take array-likes (lists, numpy arrays, pandas Series) and return numpy arrays, or a
float when every input is a scalar. Bad input raises ``ValueError`` saying what is wrong;
using a model before ``fit`` raises ``NotFittedError`` (a ``RuntimeError``).

CLV itself is then ``expected_purchases(t, ...) * expected_average_value(...)`` (times a
margin, discounted if wanted): the gamma-gamma model assumes spend is independent of the
purchase process, which holds if the correlation of frequency and monetary value is small.
"""

import math
import warnings

import numpy as np
import pandas as pd
from scipy import optimize, special

__all__ = ["BGNBD", "GammaGamma", "NotFittedError"]


class NotFittedError(RuntimeError):
    """A model was used before ``fit``."""


# ---------------------------------------------------------------------------------------
# Input validation


def _as_array(values, name):
    if isinstance(values, (pd.Series, pd.Index)):
        values = values.to_numpy()
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must hold numbers") from None
    if array.ndim > 1:
        raise ValueError(f"{name} must be one-dimensional (one value per customer), got shape {array.shape}")
    array = array.ravel()
    if array.size == 0:
        raise ValueError(f"{name} is empty: give at least one customer")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds missing or infinite values (NaN / inf)")
    return array


def _is_scalar(*values):
    return all(np.ndim(v) == 0 and not isinstance(v, (pd.Series, pd.Index)) for v in values)


def _same_length(named):
    lengths = {name: array.size for name, array in named.items()}
    if len(set(lengths.values())) > 1:
        described = ", ".join(f"{name}={n}" for name, n in lengths.items())
        raise ValueError(f"inputs have mismatched lengths ({described}): give one value per customer")


def _check_frequency(frequency):
    if (frequency < 0).any():
        raise ValueError("frequency must be non-negative (it counts repeat purchases)")
    if (frequency != np.round(frequency)).any():
        raise ValueError("frequency must hold whole numbers (it counts repeat purchases)")


def _check_rft(frequency, recency, T):
    x = _as_array(frequency, "frequency")
    t_x = _as_array(recency, "recency")
    T = _as_array(T, "T")
    _same_length({"frequency": x, "recency": t_x, "T": T})
    _check_frequency(x)
    if (t_x < 0).any():
        raise ValueError("recency must be non-negative")
    if (T < 0).any():
        raise ValueError("T must be non-negative")
    if (t_x > T).any():
        raise ValueError("recency must not exceed T (the last purchase cannot come after the end of the period)")
    if ((x == 0) & (t_x != 0)).any():
        raise ValueError("recency must be 0 for customers with frequency 0 (no repeat purchase)")
    return x, t_x, T


def _result(value, scalar):
    value = np.asarray(value, dtype=float)
    return float(value.ravel()[0]) if scalar else value


def _fit_log_params(negative_log_likelihood, n_params, penalizer):
    """Minimise the mean negative log-likelihood (+ ``penalizer`` * sum of squared
    parameters) over log-parameters; return (params, converged)."""

    def objective(log_params):
        params = np.exp(log_params)
        value = negative_log_likelihood(params) + penalizer * float(np.sum(params**2))
        return value if np.isfinite(value) else 1e100

    start = np.zeros(n_params)  # every parameter at 1
    best = optimize.minimize(objective, start, method="BFGS")
    if not best.success:
        # BFGS can stall on a flat or awkward surface far from the optimum: Nelder-Mead is
        # slower but more robust; BFGS then polishes its result.
        coarse = optimize.minimize(
            objective, start, method="Nelder-Mead", options={"xatol": 1e-5, "fatol": 1e-12, "maxiter": 5000}
        )
        fine = optimize.minimize(objective, coarse.x, method="BFGS")
        candidates = [r for r in (best, coarse, fine) if np.isfinite(r.fun)]
        best = min(candidates, key=lambda r: r.fun) if candidates else fine
        best.success = bool(fine.success or coarse.success)
    return np.exp(best.x), bool(best.success)


def _check_penalizer(penalizer):
    if not (isinstance(penalizer, (int, float)) and math.isfinite(penalizer) and penalizer >= 0):
        raise ValueError(f"penalizer must be a non-negative number, got {penalizer!r}")
    return float(penalizer)


# ---------------------------------------------------------------------------------------
# BG/NBD


class _Model:
    """What both models share: the penalty, the fitted state, maximum likelihood on
    log-parameters (``_fit``) and the fitted parameters in order (``_params``). A subclass
    names its ``PARAM_NAMES``, its ``FIT_CALL`` (for the not-fitted error) and
    ``_log_likelihood(params, *data)`` per customer."""

    PARAM_NAMES = ()
    FIT_CALL = "fit(...)"

    def __init__(self, penalizer=0.0):
        self.penalizer = _check_penalizer(penalizer)
        self.params_ = None
        self.log_likelihood_ = None
        self.converged_ = None
        self.n_customers_ = None

    def __repr__(self):
        name = type(self).__name__
        if self.params_ is None:
            return f"{name}(penalizer={self.penalizer!r}) (not fitted)"
        shown = ", ".join(f"{k}={v:.4g}" for k, v in self.params_.items())
        return f"{name}({shown}, log_likelihood={self.log_likelihood_:.2f}, n={self.n_customers_})"

    def _fit(self, *data):
        """Maximise the mean log-likelihood of ``data`` (one array per input, one row per
        customer); store the parameters, the summed log-likelihood and the sample size."""

        def negative_log_likelihood(params):
            return -float(np.mean(self._log_likelihood(params, *data)))

        params, self.converged_ = _fit_log_params(negative_log_likelihood, len(self.PARAM_NAMES), self.penalizer)
        if not self.converged_:
            warnings.warn(
                f"{type(self).__name__} fit did not converge; the estimates may be poor", RuntimeWarning, stacklevel=3
            )
        self.params_ = dict(zip(self.PARAM_NAMES, (float(p) for p in params)))
        self.log_likelihood_ = float(np.sum(self._log_likelihood(params, *data)))
        self.n_customers_ = int(data[0].size)
        return self

    def _params(self):
        if self.params_ is None:
            raise NotFittedError(f"this {type(self).__name__} model is not fitted yet: call {self.FIT_CALL} first")
        return tuple(self.params_[name] for name in self.PARAM_NAMES)


SMALL_C = 1e-8  # below it, E[Y(t)] uses the limit of c 2F1(.; c; z) as c -> 0


class BGNBD(_Model):
    """The BG/NBD model of repeat purchases (Fader, Hardie & Lee 2005).

    ``fit(frequency, recency, T)`` estimates ``params_ = {"r", "alpha", "a", "b"}`` by
    maximum likelihood and stores the maximised log-likelihood in ``log_likelihood_``
    (the sum over customers, without the penalty).

    ``penalizer`` adds ``penalizer * (r^2 + alpha^2 + a^2 + b^2)`` to the *mean* negative
    log-likelihood (as the ``lifetimes`` package does): a small value (0.001-0.1) keeps the
    estimates finite on small or degenerate samples. 0 is plain maximum likelihood.
    """

    PARAM_NAMES = ("r", "alpha", "a", "b")
    FIT_CALL = "fit(frequency, recency, T)"

    @staticmethod
    def _log_likelihood(params, x, t_x, T):
        """Per-customer log-likelihood, eq. 6 of the paper, with the two terms combined by
        log-sum-exp."""
        r, alpha, a, b = params
        common = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha) - special.betaln(a, b)
        term_1 = special.betaln(a, b + x) - (r + x) * np.log(alpha + T)
        repeat = x > 0
        # B(a + 1, b + x - 1) only exists (and only counts) when x > 0.
        x_safe = np.where(repeat, x, 1.0)
        term_2 = np.where(
            repeat,
            special.betaln(a + 1, b + x_safe - 1) - (r + x) * np.log(alpha + t_x),
            -np.inf,
        )
        return common + np.logaddexp(term_1, term_2)

    def fit(self, frequency, recency, T):
        x, t_x, T = _check_rft(frequency, recency, T)
        if (T == 0).all():
            raise ValueError("T is 0 for every customer: there is no observation period to learn from")
        return self._fit(x, t_x, T)

    @staticmethod
    def _log_odds_dead(r, alpha, a, b, x, t_x, T):
        """log of a/(b+x-1) * ((alpha+T)/(alpha+t_x))^(r+x), the odds that a customer with
        x > 0 is inactive; -inf for x = 0 (such a customer cannot have dropped out)."""
        repeat = x > 0
        x_safe = np.where(repeat, x, 1.0)
        log_odds = np.log(a) - np.log(b + x_safe - 1) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
        return np.where(repeat, log_odds, -np.inf)

    def prob_alive(self, frequency, recency, T):
        """P(alive | x, t_x, T) = 1 / (1 + delta(x>0) a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x))
        (Fader, Hardie & Lee 2008, "Computing P(alive) Using the BG/NBD Model"): 1 for a
        customer with no repeat purchase, since in the BG/NBD a customer can only drop
        out right after a purchase."""
        scalar = _is_scalar(frequency, recency, T)
        x, t_x, T = _check_rft(frequency, recency, T)
        log_odds = self._log_odds_dead(*self._params(), x, t_x, T)
        return _result(special.expit(-log_odds), scalar)

    def expected_purchases(self, t, frequency, recency, T):
        """E[Y(t) | x, t_x, T]: the expected number of purchases in the next ``t`` time
        units of a customer with history (x, t_x, T) (eq. 10 of the paper).

        ``t`` is a scalar, an array of the customers' length, or an array of horizons for
        a single customer. With x = t_x = T = 0 this
        is the population's unconditional E[X(t)] (eq. 9)."""
        scalar = _is_scalar(t, frequency, recency, T)
        x, t_x, T = _check_rft(frequency, recency, T)
        t = _as_array(t, "t")
        if (t < 0).any():
            raise ValueError("t (the horizon) must be non-negative")
        if t.size != 1 and x.size != 1 and t.size != x.size:
            raise ValueError(
                f"t must be a single horizon or one per customer: got {t.size} values for {x.size} customers"
            )
        a = self._params()[2]
        if abs(a - 1) < 1e-7:
            # a = 1 is a removable singularity of eq. 10: average the two sides.
            both_sides = self._expected(t, x, t_x, T, a - 1e-5) + self._expected(t, x, t_x, T, a + 1e-5)
            return _result(both_sides / 2, scalar)
        return _result(self._expected(t, x, t_x, T, a), scalar)

    def _expected(self, t, x, t_x, T, a):
        r, alpha, _, b = self._params()
        z = t / (alpha + T + t)
        c = a + b + x - 1
        survive = np.exp((r + x) * np.log1p(-z))
        # c (1 - survive 2F1(r+x, b+x; c; z)): 2F1 grows like 1/c as c -> 0 (x = 1 with a
        # and b near 0: a fit that finds no drop-outs), and inf x 0 is NaN. There, use
        # c 2F1(p, q; c; z) -> p q z 2F1(p+1, q+1; 2; z) (DLMF 15.2.3_5), exact as c -> 0.
        tiny = np.abs(c) < SMALL_C
        with np.errstate(invalid="ignore", over="ignore"):
            scaled = np.where(
                tiny,
                (r + x) * (b + x) * z * special.hyp2f1(r + x + 1, b + x + 1, 2.0, z),
                c * special.hyp2f1(r + x, b + x, np.where(tiny, 1.0, c), z),
            )
        numerator = (c - survive * scaled) / (a - 1)
        log_odds = self._log_odds_dead(r, alpha, a, b, x, t_x, T)
        return numerator * special.expit(-log_odds)  # numerator / (1 + odds)


# ---------------------------------------------------------------------------------------
# Gamma-Gamma


class GammaGamma(_Model):
    """The gamma-gamma model of the average transaction value (Fader & Hardie 2013).

    ``fit(frequency, monetary_value)`` estimates ``params_ = {"p", "q", "v"}`` by maximum
    likelihood from the customers with frequency > 0 (``monetary_value`` being the
    average value of their repeat transactions) and stores ``log_likelihood_``.
    ``penalizer`` works as in ``BGNBD``.
    """

    PARAM_NAMES = ("p", "q", "v")
    FIT_CALL = "fit(frequency, monetary_value)"

    @staticmethod
    def _check(frequency, monetary_value):
        x = _as_array(frequency, "frequency")
        m = _as_array(monetary_value, "monetary_value")
        _same_length({"frequency": x, "monetary_value": m})
        _check_frequency(x)
        if (m[x > 0] <= 0).any():
            raise ValueError("monetary_value must be positive for customers with frequency > 0")
        return x, m

    @staticmethod
    def _log_likelihood(params, x, m):
        """Per-customer log density of the average m of x transactions (the note's eq. 3)."""
        p, q, v = params
        px = p * x
        return (
            special.gammaln(px + q)
            - special.gammaln(px)
            - special.gammaln(q)
            + q * np.log(v)
            + (px - 1) * np.log(m)
            + px * np.log(x)
            - (px + q) * np.log(v + x * m)
        )

    def fit(self, frequency, monetary_value):
        x, m = self._check(frequency, monetary_value)
        repeat = x > 0
        if not repeat.any():
            raise ValueError("no customer has frequency > 0: the gamma-gamma model needs repeat customers to fit")
        return self._fit(x[repeat], m[repeat])

    def expected_average_value(self, frequency, monetary_value):
        """E(M | p, q, v, m-bar, x) = (q-1)/(px+q-1) * pv/(q-1) + px/(px+q-1) * m-bar:
        a weighted mean of the population mean pv/(q-1) and the customer's own average,
        the weight of the latter growing with x. For x = 0 it is the population mean."""
        p, q, v = self._params()
        scalar = _is_scalar(frequency, monetary_value)
        x, m = self._check(frequency, monetary_value)
        if q <= 1:
            raise ValueError(f"the fitted q = {q:.4g} is <= 1: the population mean value is infinite")
        m = np.where(x > 0, m, 0.0)  # ignored for x = 0
        return _result(p * (v + x * m) / (p * x + q - 1), scalar)
