"""ml.churn on a simulated shop: customers of two hidden types (regular buyers, and buyers
who stop after a while) plus prospects, turned into snapshots by ml.features at four days
a horizon apart. The model is trained on the first three and checked on the fourth."""

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import brier_score_loss, roc_auc_score

from oscar_journeys.ml import schema
from oscar_journeys.ml.churn import ChurnModel, churn_labels, train_churn
from oscar_journeys.ml.exceptions import InsufficientDataError
from oscar_journeys.ml.features import compute_snapshots

BASE = pd.Timestamp("2024-01-01", tz="UTC")
H = 60
D0, D1, D2, D3 = 240, 300, 360, 420  # days after BASE


def date(day):
    return (BASE + pd.Timedelta(days=day)).date()


def simulate_events(n, seed):
    """Order and product-view events of ``n`` customers arriving over [0, D3].

    40% are regulars (order at a steady rate for good), 45% stoppers (same rates, but they
    stop ordering after an exponential lifetime of mean 120 days, and stop browsing two
    weeks later), 15% prospects (browse, never order)."""
    rng = np.random.default_rng(seed)
    start = rng.uniform(0, D3, n)
    kind = rng.choice(3, n, p=[0.4, 0.45, 0.15])  # 0 regular, 1 stopper, 2 prospect
    rate = rng.uniform(1 / 35, 1 / 12, n)
    stop = np.where(kind == 0, np.inf, start + rng.exponential(120, n))
    buys_until = np.minimum(stop, D3)

    buyer = kind != 2
    repeat = rng.poisson(rate * (buys_until - start)) * buyer
    first = np.flatnonzero(buyer)
    who = np.concatenate([first, np.repeat(np.arange(n), repeat)])
    when = np.concatenate([start[first], start[np.repeat(np.arange(n), repeat)]])
    when[len(first):] += rng.uniform(0, 1, repeat.sum()) * (buys_until - start)[who[len(first):]]
    orders = pd.DataFrame({"customer_id": who, "type": schema.ORDER_PLACED, "day": when,
                           "value": rng.gamma(4, 15, who.size), "category": None})

    browses_until = np.minimum(np.where(kind == 1, stop + 14, np.inf), D3)
    views = rng.poisson(0.3 * (browses_until - start))
    who = np.repeat(np.arange(n), views)
    when = start[who] + rng.uniform(0, 1, who.size) * (browses_until - start)[who]
    viewed = pd.DataFrame({"customer_id": who, "type": schema.PRODUCT_VIEWED, "day": when,
                           "value": np.nan, "category": "Books"})

    events = pd.concat([orders, viewed], ignore_index=True)
    events["customer_id"] = events["customer_id"].astype("int64") + 1
    events["type"] = events["type"].astype("category")
    events["occurred_at"] = BASE + pd.to_timedelta(events.pop("day"), unit="D")
    return events[list(schema.EVENT_COLUMNS)]


def snapshot_days(events, days):
    frame = compute_snapshots(events, {date(d): BASE + pd.Timedelta(days=d) for d in days})
    return {as_of: part.reset_index(drop=True) for as_of, part in frame.groupby("as_of")}


@pytest.fixture(scope="module")
def shop():
    return snapshot_days(simulate_events(4000, seed=11), (D0, D1, D2, D3))


@pytest.fixture(scope="module")
def trained(shop):
    # The days in no particular order: train_churn sorts them.
    return train_churn({date(d): shop[date(d)] for d in (D2, D0, D1)}, horizon_days=H)


def training_days(shop):
    return {date(d): shop[date(d)] for d in (D0, D1, D2)}


# ---------------------------------------------------------------------------------------
# The label


def snap(rows):
    """rows: (customer_id, frequency)."""
    return pd.DataFrame(rows, columns=["customer_id", "frequency"])


def test_label_by_hand():
    earlier = snap([(5, 1), (1, 2), (3, 0), (4, 2), (2, 1), (6, 0)])
    later = snap([(2, 1), (1, 3), (5, 4), (3, 1), (6, 0), (7, 1)])  # 4 is absent
    labels = churn_labels(earlier, later)
    # 5 ordered again, 1 ordered again, 3 non-buyer, 4 absent (no order), 2 no new order, 6 non-buyer
    np.testing.assert_array_equal(labels, [0.0, 0.0, np.nan, 1.0, 1.0, np.nan])


def test_label_of_an_empty_later_frame_is_churned_for_every_buyer():
    labels = churn_labels(snap([(1, 2), (2, 0)]), snap([]))
    np.testing.assert_array_equal(labels, [1.0, np.nan])


def test_label_refuses_a_later_frame_with_a_customer_twice():
    with pytest.raises(ValueError, match="twice"):
        churn_labels(snap([(1, 1)]), snap([(1, 1), (1, 2)]))


# ---------------------------------------------------------------------------------------
# Training on the simulated shop


def test_metrics_are_plain_numbers_measured_on_the_later_window(shop, trained):
    _, metrics = trained
    assert set(metrics) == {"churn_auc", "churn_brier", "recency_auc", "churn_base_rate",
                            "churn_train_rows", "churn_test_rows"}
    for name in ("churn_auc", "churn_brier", "recency_auc", "churn_base_rate"):
        assert type(metrics[name]) is float, name
    assert type(metrics["churn_train_rows"]) is int and type(metrics["churn_test_rows"]) is int

    d0, d1, d2 = (shop[date(d)] for d in (D0, D1, D2))
    assert metrics["churn_train_rows"] == int((d0["frequency"] > 0).sum())
    assert metrics["churn_test_rows"] == int((d1["frequency"] > 0).sum())
    labels = churn_labels(d1, d2)
    buyers = ~np.isnan(labels)
    assert metrics["churn_base_rate"] == pytest.approx(labels[buyers].mean())
    # recency_auc: recency_days alone as the score, on the same rows.
    assert metrics["recency_auc"] == pytest.approx(roc_auc_score(labels[buyers], d1["recency_days"][buyers]))


def test_model_beats_chance_and_the_constant_base_rate(trained):
    _, metrics = trained
    base = metrics["churn_base_rate"]
    assert 0.2 < base < 0.8  # the simulation gives both classes plenty of rows
    assert metrics["churn_auc"] > 0.85
    assert metrics["churn_auc"] > metrics["recency_auc"] - 0.02  # no worse than recency alone
    assert metrics["churn_brier"] < 0.7 * base * (1 - base)


def test_model_holds_on_the_next_window_it_never_saw(shop, trained):
    """Scored at d2, checked against what the simulation did in (d2, d3]."""
    model, _ = trained
    today, later = shop[date(D2)], shop[date(D3)]
    labels = churn_labels(today, later)
    buyers = ~np.isnan(labels)
    p = model.predict_proba(today)
    assert roc_auc_score(labels[buyers], p[buyers]) > 0.85
    # Calibrated-ish: the mean probability is near the churn rate that happened.
    assert p[buyers].mean() == pytest.approx(labels[buyers].mean(), abs=0.05)
    rate = labels[buyers].mean()
    assert brier_score_loss(labels[buyers], p[buyers]) < 0.7 * rate * (1 - rate)
    # And the probabilities order the risk: the riskiest fifth churns far more than the safest.
    low, high = np.quantile(p[buyers], [0.2, 0.8])
    assert labels[buyers][p[buyers] >= high].mean() > labels[buyers][p[buyers] <= low].mean() + 0.5


def test_non_buyers_get_nan_and_buyers_a_probability(shop, trained):
    model, _ = trained
    today = shop[date(D2)]
    p = model.predict_proba(today)
    assert p.dtype == np.float64 and p.shape == (len(today),)
    buyers = (today["frequency"] > 0).to_numpy()
    assert (~buyers).sum() > 50 and np.isnan(p[~buyers]).all()
    assert np.isfinite(p[buyers]).all() and ((p[buyers] >= 0) & (p[buyers] <= 1)).all()


def test_row_order_is_kept(shop, trained):
    model, _ = trained
    today = shop[date(D2)]
    p = model.predict_proba(today)
    shuffled = today.sample(frac=1, random_state=3)
    np.testing.assert_array_equal(model.predict_proba(shuffled), p[shuffled.index.to_numpy()])
    # A row's probability does not depend on the other rows of the frame.
    part = today.iloc[100:160]
    np.testing.assert_array_equal(model.predict_proba(part), p[100:160])


def test_returned_model_is_refitted_on_the_latest_window(shop, trained):
    """Scrambling d0 changes what the model is measured with, not the model returned:
    that one is fitted on d1 -> d2 only."""
    model, metrics = trained
    days = training_days(shop)
    scrambled = days[date(D0)].copy()
    buyers = scrambled["frequency"] > 0
    features = list(schema.NUMERIC_FEATURES)
    rng = np.random.default_rng(0)
    scrambled.loc[buyers, features] = scrambled.loc[buyers, features].to_numpy()[rng.permutation(buyers.sum())]
    days[date(D0)] = scrambled
    refitted, scrambled_metrics = train_churn(days, horizon_days=H)
    assert scrambled_metrics["churn_auc"] != metrics["churn_auc"]
    today = shop[date(D2)]
    np.testing.assert_array_equal(refitted.predict_proba(today), model.predict_proba(today))
    assert refitted.trained_until == date(D2) and refitted.horizon_days == H


def test_customers_missing_from_the_later_frame_count_as_churned(shop, trained):
    _, metrics = trained
    days = training_days(shop)
    d1, d2 = days[date(D1)], days[date(D2)]
    labels = churn_labels(d1, d2)
    retained = d1["customer_id"][labels == 0].to_numpy()
    dropped = retained[::3]
    days[date(D2)] = d2[~d2["customer_id"].isin(dropped)]
    _, changed = train_churn(days, horizon_days=H)
    buyers = int((~np.isnan(labels)).sum())
    assert changed["churn_test_rows"] == metrics["churn_test_rows"] == buyers
    assert changed["churn_base_rate"] == pytest.approx((np.nansum(labels) + len(dropped)) / buyers)


def test_model_pickles(shop, trained):
    model, _ = trained
    restored = pickle.loads(pickle.dumps(model))
    assert isinstance(restored, ChurnModel)
    today = shop[date(D2)]
    np.testing.assert_array_equal(restored.predict_proba(today), model.predict_proba(today))


def test_predicting_an_empty_frame_or_no_buyers(shop, trained):
    model, _ = trained
    today = shop[date(D2)]
    assert model.predict_proba(today.iloc[:0]).shape == (0,)
    prospects = today[today["frequency"] == 0]
    assert np.isnan(model.predict_proba(prospects)).all()


def test_missing_feature_column_is_a_clear_error(shop, trained):
    model, _ = trained
    with pytest.raises(ValueError, match="orders_90d"):
        model.predict_proba(shop[date(D2)].drop(columns=["orders_90d"]))


# ---------------------------------------------------------------------------------------
# Not enough data


def test_a_window_without_churners_is_insufficient(shop):
    days = training_days(shop)
    everyone_again = days[date(D0)].assign(frequency=lambda f: f["frequency"] + 1)
    days[date(D1)] = everyone_again.assign(as_of=date(D1))
    with pytest.raises(InsufficientDataError, match="0 churned"):
        train_churn(days, horizon_days=H)


def test_a_test_window_where_everyone_churns_is_insufficient(shop):
    days = training_days(shop)
    days[date(D2)] = days[date(D1)].assign(as_of=date(D2))  # nobody ordered in (d1, d2]
    with pytest.raises(InsufficientDataError, match=f"0 retained buyers in {date(D1)} -> {date(D2)}"):
        train_churn(days, horizon_days=H)


def test_too_few_buyers_is_insufficient(shop):
    days = training_days(shop)
    d0 = days[date(D0)]
    days[date(D0)] = d0[d0["frequency"] > 0].head(49)
    with pytest.raises(InsufficientDataError, match="49 labelled buyers"):
        train_churn(days, horizon_days=H)


def test_days_must_be_a_horizon_apart(shop):
    days = training_days(shop)
    with pytest.raises(ValueError, match="must be 30 days apart") as caught:
        train_churn(days, horizon_days=30)
    assert not isinstance(caught.value, InsufficientDataError)  # a caller's bug, not a young shop
    del days[date(D0)]
    with pytest.raises(ValueError, match="exactly three days"):
        train_churn(days, horizon_days=H)
