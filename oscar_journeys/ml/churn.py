"""Churn: the probability that a buyer places no order within the next ``horizon_days``.

Pure pandas / numpy / scikit-learn (no Django).

Label
    A buyer (``frequency > 0``) in the snapshot of day d *churned* (label 1) when they
    placed no order in (d, d + horizon]: their ``frequency`` in the snapshot of
    d + horizon is not above the one at d. A customer missing from the later snapshot
    placed no order there, so they churned. Non-buyers have no label: they are never
    trained on and their probability is NaN (``churn_labels``).

Time-based split
    ``train_churn`` reads the snapshots of three days, d0, d1 = d0 + h and d2 = d1 + h
    (h = ``horizon_days``). A label needs h days of future, so the freshest labelled
    window is d1 -> d2. The model is

    1. fitted on the d0 features with the labels of d0 -> d1,
    2. measured on the d1 features with the labels of d1 -> d2, a later period than the
       one it learnt from, as when it scores today's customers,
    3. refitted on d1 -> d2, and that refit is returned (to score d2 and later days).

    A random split of one window would measure the model on the period it learnt from,
    and flatter it.

Classifier
    ``HistGradientBoostingClassifier`` on ``schema.NUMERIC_FEATURES`` (a NaN goes down
    the branch learnt for missing values), calibrated by ``CalibratedClassifierCV``
    (isotonic, cv=3, ``ensemble=False``): the isotonic map is fitted on 3-fold
    out-of-fold scores, and one booster fitted on every row is kept, so scoring runs one
    booster instead of three. Fitting needs ``MIN_BUYERS`` (50) labelled buyers in each
    window and at least ``CV_FOLDS`` (3) of each class, so every fold holds both. Fits
    run on ``FIT_THREADS`` (1) OpenMP thread (see ``_fit``).

Metrics (on the d1 -> d2 rows)
    churn_auc: ROC AUC of the probability (0.5 = chance); churn_brier: mean of
    (p - y)^2 (a constant base rate b scores b (1 - b)); recency_auc: the AUC of
    ``recency_days`` alone on the same rows, the baseline to beat; churn_base_rate: share
    of churned rows; churn_train_rows, churn_test_rows.
"""

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import brier_score_loss, roc_auc_score
from threadpoolctl import threadpool_limits

from . import schema
from .exceptions import InsufficientDataError

MIN_BUYERS = 50
CV_FOLDS = 3
FIT_THREADS = 1  # OpenMP threads while fitting (see _fit)


def _numbers(snapshots, name):
    if name not in snapshots.columns:
        raise ValueError(f"snapshot frame lacks the {name!r} column")
    return pd.to_numeric(snapshots[name], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def _features(snapshots, names):
    missing = [name for name in names if name not in snapshots.columns]
    if missing:
        raise ValueError(f"snapshot frame lacks feature columns: {', '.join(missing)}")
    return snapshots[list(names)].to_numpy(dtype="float64", na_value=np.nan)


def churn_labels(earlier, later):
    """Per row of ``earlier`` (snapshot at d): 1.0 when the buyer placed no order by
    ``later`` (snapshot at d + horizon; absent customers placed none), 0.0 when they
    did, NaN for non-buyers."""
    ids = later["customer_id"]
    if not ids.is_unique:
        raise ValueError("the later snapshot holds a customer twice")
    before = _numbers(earlier, "frequency")
    positions = pd.Index(ids.to_numpy()).get_indexer(earlier["customer_id"].to_numpy())
    after = np.append(_numbers(later, "frequency"), np.nan)[positions]  # -1 (absent) -> NaN
    after = np.where(np.isnan(after), before, after)
    return np.where(before > 0, (after <= before).astype("float64"), np.nan)


def _labelled(earlier, later, window):
    labels = churn_labels(earlier, later)
    rows = ~np.isnan(labels)
    y = labels[rows].astype("int64")
    churned = int(y.sum())
    if rows.sum() < MIN_BUYERS:
        raise InsufficientDataError(
            f"{int(rows.sum())} labelled buyers in {window}: the churn model needs at least {MIN_BUYERS}"
        )
    if min(churned, y.size - churned) < CV_FOLDS:
        raise InsufficientDataError(
            f"{churned} churned and {y.size - churned} retained buyers in {window}: the churn model "
            f"needs at least {CV_FOLDS} of each"
        )
    return earlier[rows], y


def _fit(X, y, random_state):
    booster = HistGradientBoostingClassifier(random_state=random_state)
    calibrated = CalibratedClassifierCV(booster, method="isotonic", cv=CV_FOLDS, ensemble=False)
    # The booster's OpenMP threads wait for each other at every tree node; when other
    # processes keep the cores busy (a worker box), that made a fit 5-20 times slower
    # than one thread, which is as fast when the machine is idle.
    with threadpool_limits(limits=FIT_THREADS, user_api="openmp"):
        return calibrated.fit(X, y)


def _churn_column(classifier):
    return int(np.flatnonzero(classifier.classes_ == 1)[0])


@dataclass
class ChurnModel:
    """A fitted churn classifier (picklable): ``classifier`` (the calibrated sklearn
    model), ``features`` (the columns it reads), ``horizon_days`` and ``trained_until``
    (the last day of the window it was fitted on)."""

    classifier: object
    features: tuple
    horizon_days: int
    trained_until: object = None

    def predict_proba(self, snapshots):
        """Probability of no order within ``horizon_days`` per row (float64, row order
        kept); NaN for non-buyers."""
        out = np.full(len(snapshots), np.nan)
        buyers = _numbers(snapshots, "frequency") > 0
        if buyers.any():
            X = _features(snapshots, self.features)[buyers]
            out[buyers] = self.classifier.predict_proba(X)[:, _churn_column(self.classifier)]
        return out


def _recency(snapshots):
    """recency_days as a score; a buyer without one (inconsistent data) counts as the oldest."""
    recency = _numbers(snapshots, "recency_days")
    missing = np.isnan(recency)
    if missing.any():
        recency[missing] = np.nanmax(recency) + 1 if not missing.all() else 0.0
    return recency


def _days(days, horizon_days):
    if len(days) != 3:
        raise ValueError(f"train_churn needs the snapshots of exactly three days, got {len(days)}")
    d0, d1, d2 = sorted(days)
    step = dt.timedelta(days=horizon_days)
    if d1 - d0 != step or d2 - d1 != step:
        raise ValueError(f"the days {d0}, {d1}, {d2} must be {horizon_days} days apart")
    return d0, d1, d2


def train_churn(days, *, horizon_days, random_state=0):
    """Fit on d0 -> d1, measure on d1 -> d2, refit on d1 -> d2 (see the module doc).

    ``days``: {date: snapshot frame} for three days ``horizon_days`` apart. Returns
    ``(ChurnModel, metrics)``; raises ``InsufficientDataError`` when a window has too few
    labelled buyers or classes."""
    d0, d1, d2 = _days(days, horizon_days)
    features = tuple(schema.NUMERIC_FEATURES)
    train, y_train = _labelled(days[d0], days[d1], f"{d0} -> {d1}")
    test, y_test = _labelled(days[d1], days[d2], f"{d1} -> {d2}")
    X_test = _features(test, features)

    measured = _fit(_features(train, features), y_train, random_state)
    p_test = measured.predict_proba(X_test)[:, _churn_column(measured)]
    metrics = {
        "churn_auc": float(roc_auc_score(y_test, p_test)),
        "churn_brier": float(brier_score_loss(y_test, p_test)),
        "recency_auc": float(roc_auc_score(y_test, _recency(test))),
        "churn_base_rate": float(y_test.mean()),
        "churn_train_rows": int(y_train.size),
        "churn_test_rows": int(y_test.size),
    }
    final = _fit(X_test, y_test, random_state)
    return ChurnModel(final, features, int(horizon_days), d2), metrics
