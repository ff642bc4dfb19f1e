"""Lifetime value from snapshot frames: BG/NBD for the orders, gamma-gamma for their value.

Pure pandas / numpy (no Django). The models themselves live in :mod:`.clv`; this module
turns snapshot rows into their inputs, fits them and predicts per row.

Inputs (``rft``), all in days, for a buyer (``frequency`` n > 0 orders):

- x = n - 1, the *repeat* orders (the BG/NBD does not count the first one);
- T = ``first_order_days``, the customer's age since the first order;
- t_x = ``first_order_days - recency_days``, their age at the last order (0 when x = 0).

Non-buyers have no row in the fit and NaN everywhere in the predictions.

Fit (``LifetimeModel.fit``): BG/NBD on every buyer; gamma-gamma on the repeat buyers
(x > 0) with a positive ``avg_order_value`` (the mean of *all* their orders, first
included: the snapshot does not keep the repeat orders' mean apart). Gamma-gamma is left
out when fewer than ``MIN_REPEAT_BUYERS`` (20) repeat buyers inform it, or when its fitted
q <= 1 (an infinite population mean); the expected order value is then the buyers' mean
``avg_order_value``.

The ``penalizer`` (see :mod:`.clv`) adds ``penalizer * sum(params ** 2)`` to the mean
negative log-likelihood, so its pull depends on the units of the parameters: on raw days
a typical alpha (~40) is pulled to a fraction of its value. Both fits therefore run on
normalised units (times divided by the buyers' median T, values by the mean order value
fitted on); the parameters are converted back, so ``params``, ``bgnbd`` and
``gamma_gamma`` are in days and in the shop's currency. With ``penalizer=0`` this is
exactly maximum likelihood on days.

Predictions (``LifetimeModel.predict(snapshots, horizon_days)``), per buyer row:

- prob_alive = P(alive | x, t_x, T) (BG/NBD);
- expected_orders = E[Y(h) | x, t_x, T], the expected orders in the next h days;
- clv = expected_orders x E(M | x, m), the gamma-gamma expected order value
  (p (v + x m) / (p x + q - 1)), or the buyers' mean order value without gamma-gamma;
- next_order_days = (alpha + T) / (r + x), the inverse of the expected purchase rate of a
  customer who is alive (the posterior of lambda is gamma(r + x, alpha + T)), given only
  when prob_alive >= 0.5, else NaN.

``holdout_error`` measures the fit out of time: fit on a snapshot at day c, predict the
next h days, compare with what the snapshot at c + h says happened.
"""

import copy
import math

import numpy as np
import pandas as pd

from .clv import BGNBD, GammaGamma
from .exceptions import InsufficientDataError

MIN_BUYERS = 20
MIN_REPEAT_BUYERS = 20  # for gamma-gamma; below it the buyers' mean order value is used
ALIVE_FOR_NEXT_ORDER = 0.5
PREDICTIONS = ("prob_alive", "expected_orders", "clv", "next_order_days")


def _column(snapshots, name):
    if name not in snapshots.columns:
        raise ValueError(f"snapshot frame lacks the {name!r} column")
    return pd.to_numeric(snapshots[name], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def rft(snapshots):
    """The BG/NBD inputs per row: DataFrame (same index as ``snapshots``) with
    ``frequency`` (x, repeat orders), ``recency`` (t_x, days) and ``T`` (days); NaN for
    non-buyers. Rounding is clipped away (0 <= t_x <= T, t_x = 0 when x = 0)."""
    orders = _column(snapshots, "frequency")
    first = _column(snapshots, "first_order_days")
    last = _column(snapshots, "recency_days")
    buyer = orders > 0
    with np.errstate(invalid="ignore"):
        x = np.where(buyer, orders - 1, np.nan)
        T = np.where(buyer, first, np.nan)
        t_x = np.clip(T - last, 0.0, T)
    t_x = np.where(x == 0, 0.0, t_x)
    t_x = np.where(buyer, t_x, np.nan)
    return pd.DataFrame({"frequency": x, "recency": t_x, "T": T}, index=snapshots.index)


def _usable(data):
    x, t_x, T = (data[c].to_numpy() for c in ("frequency", "recency", "T"))
    ok = np.isfinite(x) & np.isfinite(t_x) & np.isfinite(T) & (T >= 0)
    return ok, x[ok], t_x[ok], T[ok]


def _rescaled(model, params, log_likelihood):
    """A copy of a fitted ``clv`` model carrying parameters in other units."""
    converted = copy.copy(model)
    converted.params_ = {name: float(value) for name, value in params.items()}
    converted.log_likelihood_ = float(log_likelihood)
    return converted


class LifetimeModel:
    """BG/NBD + gamma-gamma fitted on one snapshot frame (picklable).

    After ``fit``: ``bgnbd`` (a fitted :class:`.clv.BGNBD`, days), ``gamma_gamma`` (a
    fitted :class:`.clv.GammaGamma` or None), ``mean_order_value`` (the buyers' mean
    ``avg_order_value``), ``time_unit`` and ``value_unit`` (the normalisation used for the
    fit), ``buyers`` and ``repeat_buyers`` (rows fitted on)."""

    def __init__(self, penalizer=0.001):
        if not (isinstance(penalizer, (int, float)) and math.isfinite(penalizer) and penalizer >= 0):
            raise ValueError(f"penalizer must be a non-negative number, got {penalizer!r}")
        self.penalizer = float(penalizer)
        self.bgnbd = None
        self.gamma_gamma = None
        self.mean_order_value = None
        self.time_unit = None
        self.value_unit = None
        self.buyers = 0
        self.repeat_buyers = 0

    def __repr__(self):
        if self.bgnbd is None:
            return f"LifetimeModel(penalizer={self.penalizer!r}) (not fitted)"
        return f"LifetimeModel({self.bgnbd!r}, {self.gamma_gamma!r})"

    def fit(self, snapshots):
        data = rft(snapshots)
        ok, x, t_x, T = _usable(data)
        value = _column(snapshots, "avg_order_value")[ok]
        if x.size < MIN_BUYERS:
            raise InsufficientDataError(f"{x.size} buyers: the CLV model needs at least {MIN_BUYERS}")
        if not (x > 0).any():
            raise InsufficientDataError("no repeat buyer: the CLV model needs customers with two orders or more")
        self.buyers, self.repeat_buyers = int(x.size), int((x > 0).sum())

        s = float(np.median(T))
        if not s > 0:
            raise InsufficientDataError("every buyer ordered for the first time at the snapshot's cutoff")
        scaled = BGNBD(self.penalizer).fit(x, t_x / s, T / s)
        params = dict(scaled.params_, alpha=scaled.params_["alpha"] * s)
        # Times in days instead of units of s: each repeat order's density gains 1/s.
        self.bgnbd = _rescaled(scaled, params, scaled.log_likelihood_ - x.sum() * math.log(s))
        self.time_unit = s

        finite = np.isfinite(value)
        self.mean_order_value = float(value[finite].mean()) if finite.any() else 0.0
        self.gamma_gamma = self.value_unit = None
        informative = (x > 0) & finite & (value > 0)
        if informative.sum() >= MIN_REPEAT_BUYERS:
            c = float(value[informative].mean())
            fitted = GammaGamma(self.penalizer).fit(x[informative], value[informative] / c)
            if fitted.params_["q"] > 1:
                params = dict(fitted.params_, v=fitted.params_["v"] * c)
                # Values in currency instead of units of c: each customer's density gains 1/c.
                self.gamma_gamma = _rescaled(fitted, params, fitted.log_likelihood_ - informative.sum() * math.log(c))
                self.value_unit = c
        return self

    @property
    def params(self):
        """{"bgnbd": {r, alpha, a, b}, "gamma_gamma": {p, q, v} | None}, days and currency."""
        self._check_fitted()
        return {
            "bgnbd": dict(self.bgnbd.params_),
            "gamma_gamma": dict(self.gamma_gamma.params_) if self.gamma_gamma is not None else None,
        }

    def _check_fitted(self):
        if self.bgnbd is None:
            raise RuntimeError("this LifetimeModel is not fitted yet: call fit(snapshots) first")

    def predict(self, snapshots, horizon_days):
        """DataFrame (same index as ``snapshots``) with ``PREDICTIONS``; NaN for non-buyers."""
        self._check_fitted()
        if not (isinstance(horizon_days, (int, float, np.integer, np.floating)) and horizon_days >= 0):
            raise ValueError(f"horizon_days must be a non-negative number, got {horizon_days!r}")
        data = rft(snapshots)
        ok, x, t_x, T = _usable(data)
        columns = {name: np.full(len(snapshots), np.nan) for name in PREDICTIONS}
        if ok.any():
            alive = self.bgnbd.prob_alive(x, t_x, T)
            orders = self.bgnbd.expected_purchases(float(horizon_days), x, t_x, T)
            value = self._expected_value(x, _column(snapshots, "avg_order_value")[ok])
            r, alpha = self.bgnbd.params_["r"], self.bgnbd.params_["alpha"]
            columns["prob_alive"][ok] = alive
            columns["expected_orders"][ok] = orders
            columns["clv"][ok] = orders * value
            columns["next_order_days"][ok] = np.where(alive >= ALIVE_FOR_NEXT_ORDER, (alpha + T) / (r + x), np.nan)
        return pd.DataFrame(columns, index=snapshots.index)

    def _expected_value(self, x, value):
        if self.gamma_gamma is None:
            return np.full(x.size, self.mean_order_value)
        known = np.isfinite(value)
        # A customer whose orders were all free gets the model's limit m -> 0; one
        # without a known value gets the population mean (x = 0).
        x = np.where(known, x, 0.0)
        m = np.where(known, np.maximum(value, np.finfo(float).tiny), 1.0)
        return self.gamma_gamma.expected_average_value(x, m)


def _later_values(calibration, holdout, name):
    """``holdout[name]`` per calibration row, matched by customer_id (NaN when absent)."""
    ids = holdout["customer_id"]
    if not ids.is_unique:
        raise ValueError("the holdout snapshot holds a customer twice")
    positions = pd.Index(ids.to_numpy()).get_indexer(calibration["customer_id"].to_numpy())
    values = np.append(_column(holdout, name), np.nan)  # position -1 (absent) -> NaN
    return values[positions]


def holdout_error(calibration, holdout, *, horizon_days):
    """Fit on ``calibration`` (snapshot at day c), predict ``horizon_days`` ahead and
    compare with ``holdout`` (snapshot at c + horizon) for the calibration buyers.

    Actual orders = holdout frequency - calibration frequency, actual value = monetary
    difference (a customer absent from the holdout counts 0 and 0). Returns
    clv_orders_mae, clv_value_mae (mean absolute errors per buyer), clv_orders_predicted,
    clv_orders_actual (totals) and clv_holdout_rows (buyers compared)."""
    model = LifetimeModel().fit(calibration)
    predicted = model.predict(calibration, horizon_days)
    rows = predicted["expected_orders"].notna().to_numpy()
    orders, value = (_column(calibration, name) for name in ("frequency", "monetary"))
    later_orders = _later_values(calibration, holdout, "frequency")
    later_value = _later_values(calibration, holdout, "monetary")
    actual_orders = np.where(np.isnan(later_orders), 0.0, later_orders - orders)[rows]
    actual_value = np.where(np.isnan(later_value), 0.0, later_value - value)[rows]
    predicted_orders = predicted["expected_orders"].to_numpy()[rows]
    predicted_value = predicted["clv"].to_numpy()[rows]
    return {
        "clv_orders_mae": float(np.mean(np.abs(predicted_orders - actual_orders))),
        "clv_value_mae": float(np.mean(np.abs(predicted_value - actual_value))),
        "clv_orders_predicted": float(predicted_orders.sum()),
        "clv_orders_actual": float(actual_orders.sum()),
        "clv_holdout_rows": int(rows.sum()),
    }
