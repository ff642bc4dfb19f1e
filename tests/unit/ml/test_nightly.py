"""ml.nightly: the bundle fitted on DataFrames (no database) and what it scores."""

import datetime as dt
import pickle

import numpy as np
import pandas as pd
import pytest

from oscar_journeys.ml import schema
from oscar_journeys.ml.exceptions import InsufficientDataError
from oscar_journeys.ml.features import compute_snapshots
from oscar_journeys.ml.nightly import fit_nightly, nightly_days

UTC = dt.timezone.utc
AS_OF = dt.date(2025, 6, 30)


def events(customers=300, days=540, seed=5):
    """Loyal buyers (every ~30 days), lapsing ones (stop at a random day) and browsers."""
    rng = np.random.default_rng(seed)
    end = pd.Timestamp(AS_OF + dt.timedelta(days=1), tz=UTC)
    rows = []
    for n in range(customers):
        kind = n % 3
        joined = end - pd.Timedelta(days=days) + pd.Timedelta(days=float(rng.uniform(0, days * 0.4)))
        rows.append((n + 1, schema.USER_REGISTERED, joined, np.nan))
        stop = end if kind == 0 else joined + pd.Timedelta(days=float(rng.uniform(30, (end - joined).days)))
        at = joined
        while kind != 2:
            at += pd.Timedelta(days=float(rng.gamma(4.0, 7.5)))
            if at >= stop:
                break
            rows.append((n + 1, schema.ORDER_PLACED, at, float(rng.gamma(3.0, 30.0))))
    frame = pd.DataFrame(rows, columns=["customer_id", "type", "occurred_at", "value"])
    frame["category"] = None
    return frame


def frames(history, days):
    """{day: snapshot frame}, every day present (empty before the first event), as the
    service hands them over."""
    cutoffs = {day: pd.Timestamp(day + dt.timedelta(days=1), tz=UTC) for day in days}
    snaps = compute_snapshots(history, cutoffs)
    return {day: snaps[snaps["as_of"] == day].reset_index(drop=True) for day in days}


@pytest.fixture(scope="module")
def fitted():
    days = nightly_days(AS_OF, churn_horizon_days=90, clv_horizon_days=365)
    data = frames(events(), days)
    return data, *fit_nightly(data, as_of=AS_OF, churn_horizon_days=90, clv_horizon_days=365)


def test_every_model_is_fitted_and_measured(fitted):
    _, models, report = fitted
    assert report.skipped == {}
    assert report.metrics["churn_auc"] > 0.8 and 0 <= report.metrics["churn_brier"] < 0.25
    assert report.metrics["clv_holdout_rows"] > 0 and 4 <= report.metrics["segments"] <= 10
    assert set(report.params) == {"lifecycle", "rfm", "clv"}
    assert pickle.loads(pickle.dumps(models)).churn is not None


def test_score_gives_every_score_column_row_for_row(fitted):
    data, models, _ = fitted
    today = data[AS_OF]
    shuffled = today.sample(frac=1.0, random_state=1)
    scores = models.score(shuffled)
    assert list(scores.columns) == list(schema.SCORE_NAMES)
    assert scores.index.equals(shuffled.index)
    again = models.score(today).loc[shuffled.index]
    pd.testing.assert_frame_equal(scores, again)
    buyers = shuffled["frequency"].to_numpy() > 0
    assert scores["churn_probability"].to_numpy()[buyers].min() >= 0
    assert np.isnan(scores["churn_probability"].to_numpy()[~buyers]).all()
    assert (scores["lifecycle_stage"].to_numpy()[~buyers] == schema.PROSPECT).all()
    assert set(scores["rfm_segment"].to_numpy()[buyers]) <= set(schema.RFM_SEGMENTS)
    assert scores["micro_segment"].notna().all()


def test_a_young_shop_keeps_what_it_can_fit_and_says_why():
    # 200 days of history: no churn window two horizons back, no buyers a CLV horizon back.
    days = nightly_days(AS_OF, churn_horizon_days=90, clv_horizon_days=365)
    history = events(days=200)
    models, report = fit_nightly(frames(history, days), as_of=AS_OF, churn_horizon_days=90, clv_horizon_days=365)
    assert "churn" in report.skipped and models.churn is None
    # The CLV holdout falls back to one churn horizon back.
    assert report.metrics["clv_holdout_rows"] > 0 and "clv_holdout" not in report.skipped
    scores = models.score(frames(history, [AS_OF])[AS_OF])
    assert scores["churn_probability"].isna().all() and scores["clv"].notna().any()


def test_no_snapshot_of_the_day_is_insufficient():
    with pytest.raises(InsufficientDataError, match="no snapshot"):
        fit_nightly({}, as_of=AS_OF)
