"""The nightly models as one bundle: fitted once per night on a sample of customers, then
applied to every snapshot shard.

``fit_nightly(days, as_of=..., churn_horizon_days=..., clv_horizon_days=...)`` takes the
sample's snapshot frames as of three days: ``as_of`` (d2), ``d1 = as_of - churn horizon``
and ``d0 = d1 - churn horizon`` (``nightly_days`` names them). It fits

- the lifecycle thresholds, the RFM bins and the micro-segments on d2 (today's customers);
- the churn classifier with a time-based split (fit on d0 -> d1, measured on d1 -> d2, the
  returned model refitted on d1 -> d2; :mod:`.churn`);
- BG/NBD and gamma-gamma, measured on a holdout (fitted on the snapshot a CLV horizon
  before d2 when the sample has enough buyers then, else d1, and compared with what
  happened up to d2), then refitted on d2 (:mod:`.lifetime`).

A model that cannot be fitted for lack of data (a young shop: no repeat buyers, no churn
window yet) is left out; its columns stay empty and the reason is in ``report.skipped``.

``NightlyModels.score(snapshots, previous=None)`` returns the ``schema.SCORES`` columns, one
row per snapshot row; ``previous`` (stage per customer id, the day before) lets the
lifecycle tell "reactivated" apart.
"""

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import schema
from .churn import train_churn
from .exceptions import InsufficientDataError
from .lifecycle import assign_stages, fit_thresholds
from .lifetime import MIN_BUYERS as MIN_CLV_BUYERS
from .lifetime import LifetimeModel, holdout_error
from .rfm import fit_rfm, score_rfm
from .segmentation import fit_micro_segments


def nightly_days(as_of, *, churn_horizon_days, clv_horizon_days=None):
    """The snapshot days ``fit_nightly`` reads, oldest first: d0, d1, as_of and, when a CLV
    holdout needs another start than d1, ``as_of - clv_horizon_days``."""
    d1 = as_of - dt.timedelta(days=churn_horizon_days)
    days = {d1 - dt.timedelta(days=churn_horizon_days), d1, as_of}
    if clv_horizon_days:
        days.add(as_of - dt.timedelta(days=clv_horizon_days))
    return sorted(days)


@dataclass
class FitReport:
    """What ``fit_nightly`` measured (``metrics``), the parameters people read
    (``params``) and the models it had to leave out ({name: reason})."""

    metrics: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    skipped: dict = field(default_factory=dict)


@dataclass
class NightlyModels:
    """The fitted bundle (picklable). ``version`` is set by whoever stores it."""

    thresholds: object
    rfm_bins: object = None
    segments: object = None
    churn: object = None
    lifetime: object = None
    clv_horizon_days: int = 365
    version: int | None = None

    def score(self, snapshots, previous=None):
        """The ``schema.SCORES`` columns for ``snapshots`` (row order kept)."""
        n = len(snapshots)
        out = pd.DataFrame(index=snapshots.index)
        out["lifecycle_stage"] = assign_stages(snapshots, self.thresholds, previous)
        if self.rfm_bins is not None:
            rfm = score_rfm(snapshots, self.rfm_bins)
            out["rfm_score"] = rfm["rfm_score"].to_numpy()
            out["rfm_segment"] = rfm["rfm_segment"].to_numpy()
        else:
            out["rfm_score"] = out["rfm_segment"] = ""
        if self.segments is not None and n:
            out["micro_segment"] = pd.array(self.segments.assign(snapshots), dtype="Int64")
        else:
            out["micro_segment"] = pd.array([pd.NA] * n, dtype="Int64")
        out["churn_probability"] = self.churn.predict_proba(snapshots) if self.churn is not None else np.nan
        if self.lifetime is not None and n:
            life = self.lifetime.predict(snapshots, self.clv_horizon_days)
            for name in ("prob_alive", "expected_orders", "clv", "next_order_days"):
                out[name] = life[name].to_numpy()
        else:
            for name in ("prob_alive", "expected_orders", "clv", "next_order_days"):
                out[name] = np.nan
        for name, (kind, _) in schema.SCORES.items():
            if kind == "float":
                out[name] = out[name].astype("float64")
        return out[list(schema.SCORE_NAMES)]


def fit_nightly(
    days,
    *,
    as_of,
    churn_horizon_days=90,
    clv_horizon_days=365,
    lifecycle_overrides=None,
    previous_segments=None,
    previous_k=None,
    k_min=4,
    k_max=10,
    random_state=0,
):
    """Fit the bundle on ``days`` ({date: snapshot frame of the sample}, at least
    ``as_of``). Returns ``(NightlyModels, FitReport)``."""
    if as_of not in days:
        raise InsufficientDataError(f"no snapshot of {as_of} to fit on")
    today = days[as_of]
    report = FitReport()
    report.metrics["customers"] = int(len(today))
    report.metrics["buyers"] = int((today["frequency"] > 0).sum())

    thresholds = fit_thresholds(today, lifecycle_overrides)
    report.params["lifecycle"] = thresholds.as_dict()
    models = NightlyModels(thresholds=thresholds, clv_horizon_days=clv_horizon_days)

    def attempt(name, fit):
        try:
            return fit()
        except InsufficientDataError as exc:
            report.skipped[name] = str(exc)
            return None

    models.rfm_bins = attempt("rfm", lambda: fit_rfm(today))
    if models.rfm_bins is not None:
        report.params["rfm"] = models.rfm_bins.as_dict()

    models.segments = attempt(
        "micro_segments",
        lambda: fit_micro_segments(
            today, k_min=k_min, k_max=k_max, previous=previous_segments, previous_k=previous_k,
            random_state=random_state,
        ),
    )
    if models.segments is not None:
        report.metrics["segments"] = int(models.segments.k)
        report.metrics["silhouette"] = float(models.segments.silhouette)

    d0, d1 = (as_of - dt.timedelta(days=churn_horizon_days * k) for k in (2, 1))
    if d0 in days and d1 in days:
        fitted = attempt("churn", lambda: train_churn({d: days[d] for d in (d0, d1, as_of)}, horizon_days=churn_horizon_days))
        if fitted is not None:
            models.churn, churn_metrics = fitted
            report.metrics.update(churn_metrics)
    else:
        report.skipped["churn"] = f"needs the snapshots of {d0} and {d1}"

    # The CLV holdout starts one CLV horizon back when the sample has buyers then (an older
    # shop), else one churn horizon back.
    starts = [day for day in (as_of - dt.timedelta(days=clv_horizon_days), d1) if day in days]
    calibration = next(
        (days[day] for day in starts if (days[day]["frequency"] > 0).sum() >= MIN_CLV_BUYERS), None
    )
    if calibration is None and starts:
        calibration = days[starts[-1]]
    if calibration is not None:
        held = attempt(
            "clv_holdout",
            lambda: holdout_error(calibration, today, horizon_days=(as_of - calibration["as_of"].iloc[0]).days)
            if len(calibration)
            else _no_rows(),
        )
        if held is not None:
            report.metrics.update(held)
    models.lifetime = attempt("clv", lambda: LifetimeModel().fit(today))
    if models.lifetime is not None:
        report.params["clv"] = models.lifetime.params
    return models, report


def _no_rows():
    raise InsufficientDataError("no customers in the calibration snapshot")
