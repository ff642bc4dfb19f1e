"""ml.lifetime on customers simulated from the BG/NBD and gamma-gamma processes with known
parameters, turned into snapshots by ml.features: the fit recovers the parameters, the
predictions agree with ml.clv called directly and with what the simulation did next."""

import json
import pickle

import numpy as np
import pandas as pd
import pytest

from oscar_journeys.ml import schema
from oscar_journeys.ml.clv import BGNBD, GammaGamma
from oscar_journeys.ml.exceptions import InsufficientDataError
from oscar_journeys.ml.features import compute_snapshots
from oscar_journeys.ml.lifetime import PREDICTIONS, LifetimeModel, holdout_error, rft

BASE = pd.Timestamp("2023-01-01", tz="UTC")
C, H = 540, 180  # calibration snapshot day, holdout horizon (days after BASE / C)
BGNBD_TRUTH = {"r": 0.8, "alpha": 40.0, "a": 0.8, "b": 4.0}  # days
GG_TRUTH = {"p": 6.0, "q": 4.0, "v": 30.0}  # mean order value p v / (q - 1) = 60


def date(day):
    return (BASE + pd.Timedelta(days=day)).date()


def simulate(n, seed, prospects=100):
    """Order events of ``n`` customers whose first order falls in [0, C), drawn from the
    BG/NBD (rate lambda ~ gamma(r, alpha); after each repeat order they drop out with
    probability p ~ beta(a, b)) until C + H, each order worth gamma(p, nu) with nu ~
    gamma(q, v); plus ``prospects`` who only browse. Returns (events, alive at C by id)."""
    rng = np.random.default_rng(seed)
    b, g = BGNBD_TRUTH, GG_TRUTH
    lam = rng.gamma(b["r"], 1 / b["alpha"], n)
    drop = rng.beta(b["a"], b["b"], n)
    nu = rng.gamma(g["q"], 1 / g["v"], n)
    start = rng.uniform(0, C - 1, n)
    who, when = [np.arange(n)], [start]
    clock, active = start.copy(), np.arange(n)
    died_at = np.full(n, np.inf)
    while active.size:
        clock[active] += rng.exponential(1 / lam[active])
        bought = clock[active] < C + H
        who.append(active[bought])
        when.append(clock[active[bought]])
        dies = bought & (rng.random(active.size) < drop[active])
        died_at[active[dies]] = clock[active[dies]]
        active = active[bought & ~dies]
    who, when = np.concatenate(who), np.concatenate(when)
    orders = pd.DataFrame({"customer_id": who + 1, "type": schema.ORDER_PLACED, "day": when,
                           "value": rng.gamma(g["p"], 1 / nu[who]), "category": None})
    browsing = pd.DataFrame({"customer_id": np.arange(n + 1, n + 1 + prospects), "type": schema.PRODUCT_VIEWED,
                             "day": rng.uniform(0, C - 1, prospects), "value": np.nan, "category": "Books"})
    events = pd.concat([orders, browsing], ignore_index=True)
    events["type"] = events["type"].astype("category")
    events["occurred_at"] = BASE + pd.to_timedelta(events.pop("day"), unit="D")
    alive = pd.Series(np.concatenate([died_at >= C, np.zeros(prospects, bool)]),
                      index=np.arange(1, n + 1 + prospects))
    return events[list(schema.EVENT_COLUMNS)], alive


def snapshots(events, *days):
    frame = compute_snapshots(events, {date(d): BASE + pd.Timedelta(days=d) for d in days})
    return [frame[frame["as_of"] == date(d)].reset_index(drop=True) for d in days]


@pytest.fixture(scope="module")
def shop():
    events, alive = simulate(8000, seed=4)
    calibration, holdout = snapshots(events, C, C + H)
    return calibration, holdout, alive


@pytest.fixture(scope="module")
def model(shop):
    return LifetimeModel().fit(shop[0])


def rft_arrays(frame):
    data = rft(frame).dropna()
    return data["frequency"].to_numpy(), data["recency"].to_numpy(), data["T"].to_numpy()


# ---------------------------------------------------------------------------------------
# rft


def test_rft_by_hand():
    frame = pd.DataFrame(
        {"frequency": [3, 1, 0, 2], "first_order_days": [100.0, 40.0, np.nan, 12.5],
         "recency_days": [10.0, 40.0, np.nan, 2.5]},
        index=[7, 3, 9, 1],
    )
    data = rft(frame)
    assert list(data.index) == [7, 3, 9, 1]
    np.testing.assert_array_equal(data["frequency"], [2, 0, np.nan, 1])
    np.testing.assert_array_equal(data["recency"], [90, 0, np.nan, 10])
    np.testing.assert_array_equal(data["T"], [100, 40, np.nan, 12.5])


def test_rft_clips_rounding():
    frame = pd.DataFrame({"frequency": [1, 2], "first_order_days": [5.0, 5.0], "recency_days": [5.0 + 1e-9, -1e-9]})
    data = rft(frame)
    np.testing.assert_array_equal(data["recency"], [0.0, 5.0])


# ---------------------------------------------------------------------------------------
# Fit


def test_fit_recovers_the_simulated_parameters(model):
    fitted = model.params["bgnbd"]
    assert fitted["r"] == pytest.approx(BGNBD_TRUTH["r"], rel=0.15)
    assert fitted["alpha"] == pytest.approx(BGNBD_TRUTH["alpha"], rel=0.15)
    # a and b lie on a flat ridge (and the penalty slides them along it); their mean
    # drop-out probability a / (a + b) is what the data pin down.
    mean_drop = fitted["a"] / (fitted["a"] + fitted["b"])
    assert mean_drop == pytest.approx(BGNBD_TRUTH["a"] / (BGNBD_TRUTH["a"] + BGNBD_TRUTH["b"]), rel=0.3)
    truth = BGNBD()
    truth.params_ = dict(BGNBD_TRUTH)
    population = model.bgnbd.expected_purchases(365, 0, 0, 0)
    assert population == pytest.approx(truth.expected_purchases(365, 0, 0, 0), rel=0.1)
    p, q, v = (model.params["gamma_gamma"][k] for k in ("p", "q", "v"))
    assert p * v / (q - 1) == pytest.approx(60.0, rel=0.05)


def test_prob_alive_matches_who_the_simulation_kept_alive(shop, model):
    calibration, _, alive = shop
    predicted = model.predict(calibration, H)
    buyers = (calibration["frequency"] > 0).to_numpy()
    truly = alive.loc[calibration["customer_id"]].to_numpy()
    for name, group in {"buyers": buyers, "repeat buyers": calibration["frequency"].to_numpy() > 1,
                        "silent 120 days+": buyers & (calibration["recency_days"].to_numpy() > 120)}.items():
        assert predicted["prob_alive"][group].mean() == pytest.approx(truly[group].mean(), abs=0.04), name


def test_params_are_json_safe_and_in_days_and_currency(model):
    assert set(model.params) == {"bgnbd", "gamma_gamma"}
    assert set(model.params["bgnbd"]) == {"r", "alpha", "a", "b"}
    assert set(model.params["gamma_gamma"]) == {"p", "q", "v"}
    assert json.loads(json.dumps(model.params)) == model.params
    assert all(type(v) is float for part in model.params.values() for v in part.values())


def test_default_penalty_leaves_the_fit_near_maximum_likelihood(shop, model):
    """The penalty works on normalised units. On raw days it would pull alpha (40) to
    about 8 and r to half, and inflate a new customer's expected orders by 40%; here it
    moves them by a few per cent."""
    plain = LifetimeModel(penalizer=0).fit(shop[0])
    for name in ("r", "alpha"):
        assert model.params["bgnbd"][name] == pytest.approx(plain.params["bgnbd"][name], rel=0.05), name
    population = model.bgnbd.expected_purchases(365, 0, 0, 0)
    assert population == pytest.approx(plain.bgnbd.expected_purchases(365, 0, 0, 0), rel=0.05)
    totals = [m.predict(shop[0], H)["expected_orders"].sum() for m in (model, plain)]
    assert totals[0] == pytest.approx(totals[1], rel=0.05)


# ---------------------------------------------------------------------------------------
# Consistency with ml.clv


def test_unpenalized_fit_is_clv_maximum_likelihood_on_days(shop):
    calibration = shop[0]
    x, t_x, T = rft_arrays(calibration)
    direct = BGNBD().fit(x, t_x, T)
    model = LifetimeModel(penalizer=0).fit(calibration)
    for name, value in direct.params_.items():
        assert model.params["bgnbd"][name] == pytest.approx(value, rel=2e-3), name
    assert model.bgnbd.log_likelihood_ == pytest.approx(direct.log_likelihood_, abs=0.05)

    buyers = calibration[calibration["frequency"] > 0]
    repeat = (buyers["frequency"] > 1).to_numpy()
    value = buyers["avg_order_value"].to_numpy()
    direct_gg = GammaGamma().fit(x[repeat], value[repeat])
    for name, fitted in direct_gg.params_.items():
        assert model.params["gamma_gamma"][name] == pytest.approx(fitted, rel=2e-3), name
    assert model.gamma_gamma.log_likelihood_ == pytest.approx(direct_gg.log_likelihood_, abs=0.05)


def test_penalized_fit_is_clv_on_times_in_units_of_the_median_age(shop, model):
    x, t_x, T = rft_arrays(shop[0])
    s = np.median(T)
    direct = BGNBD(penalizer=0.001).fit(x, t_x / s, T / s)
    expected = dict(direct.params_, alpha=direct.params_["alpha"] * s)
    assert model.params["bgnbd"] == pytest.approx(expected, rel=1e-9)


def test_predictions_are_the_clv_formulas(shop, model):
    calibration = shop[0]
    predicted = model.predict(calibration, 365)
    buyers = (calibration["frequency"] > 0).to_numpy()
    x, t_x, T = rft_arrays(calibration)
    alive = model.bgnbd.prob_alive(x, t_x, T)
    orders = model.bgnbd.expected_purchases(365, x, t_x, T)
    value = model.gamma_gamma.expected_average_value(x, calibration["avg_order_value"].to_numpy()[buyers])
    np.testing.assert_allclose(predicted["prob_alive"][buyers], alive)
    np.testing.assert_allclose(predicted["expected_orders"][buyers], orders)
    np.testing.assert_allclose(predicted["clv"][buyers], orders * value)
    r, alpha = model.params["bgnbd"]["r"], model.params["bgnbd"]["alpha"]
    next_days = np.where(alive >= 0.5, (alpha + T) / (r + x), np.nan)
    np.testing.assert_allclose(predicted["next_order_days"][buyers], next_days)
    # Same history, same numbers: the model in days equals BGNBD with those parameters.
    by_hand = BGNBD()
    by_hand.params_ = model.params["bgnbd"]
    np.testing.assert_allclose(by_hand.expected_purchases(365, x, t_x, T), orders)


# ---------------------------------------------------------------------------------------
# Predictions


def test_predict_shape_index_and_nans(shop, model):
    calibration = shop[0].set_index(shop[0]["customer_id"] * 10)
    predicted = model.predict(calibration, H)
    assert list(predicted.columns) == list(PREDICTIONS)
    assert predicted.index.equals(calibration.index)
    assert (predicted.dtypes == np.float64).all()
    buyers = (calibration["frequency"] > 0).to_numpy()
    assert (~buyers).sum() == 100 and predicted[~buyers].isna().all().all()
    p = predicted[buyers]
    assert p[["prob_alive", "expected_orders", "clv"]].notna().all().all()
    assert ((p["prob_alive"] > 0) & (p["prob_alive"] <= 1)).all()
    assert (p["expected_orders"] >= 0).all() and (p["clv"] >= 0).all()
    # next_order_days only for customers more likely alive than not.
    np.testing.assert_array_equal(p["next_order_days"].notna(), p["prob_alive"] >= 0.5)
    assert 0 < p["next_order_days"].notna().mean() < 1
    # A single order: the BG/NBD cannot have lost them yet.
    single = calibration["frequency"][buyers] == 1
    assert (p["prob_alive"][single.to_numpy()] == 1).all()


def test_row_order_is_kept(shop, model):
    calibration = shop[0]
    predicted = model.predict(calibration, H)
    shuffled = calibration.sample(frac=1, random_state=2)
    pd.testing.assert_frame_equal(model.predict(shuffled, H), predicted.loc[shuffled.index])


def test_longer_horizons_expect_more(shop, model):
    short, long = (model.predict(shop[0], h) for h in (90, 365))
    buyers = short["expected_orders"].notna()
    assert (long["expected_orders"][buyers] > short["expected_orders"][buyers]).all()
    assert (long["prob_alive"][buyers] == short["prob_alive"][buyers]).all()


def test_free_orders_and_empty_frames_do_not_break_predict(shop, model):
    calibration = shop[0].copy()
    calibration.loc[calibration.index[:20], "avg_order_value"] = 0.0
    predicted = model.predict(calibration, H)
    assert np.isfinite(predicted["clv"][:20]).all()
    empty = model.predict(calibration.iloc[:0], H)
    assert empty.empty and list(empty.columns) == list(PREDICTIONS)


def test_predict_needs_a_fit_and_a_horizon(shop, model):
    with pytest.raises(RuntimeError, match="not fitted"):
        LifetimeModel().predict(shop[0], H)
    with pytest.raises(ValueError, match="horizon_days"):
        model.predict(shop[0], -1)


def test_model_pickles(shop, model):
    restored = pickle.loads(pickle.dumps(model))
    pd.testing.assert_frame_equal(restored.predict(shop[0], H), model.predict(shop[0], H))
    assert restored.params == model.params


# ---------------------------------------------------------------------------------------
# Few repeat buyers, not enough data


def some_buyers(calibration, repeat_buyers, single_buyers):
    repeat = calibration[calibration["frequency"] > 1].head(repeat_buyers)
    single = calibration[calibration["frequency"] == 1].head(single_buyers)
    return pd.concat([repeat, single], ignore_index=True)


def test_without_gamma_gamma_clv_uses_the_buyers_mean_order_value(shop):
    few = some_buyers(shop[0], 19, 40)
    model = LifetimeModel().fit(few)
    assert model.gamma_gamma is None and model.params["gamma_gamma"] is None
    predicted = model.predict(few, H)
    mean_value = few["avg_order_value"].mean()
    np.testing.assert_allclose(predicted["clv"], predicted["expected_orders"] * mean_value)
    assert LifetimeModel().fit(some_buyers(shop[0], 20, 40)).gamma_gamma is not None


def test_fewer_than_twenty_buyers_is_insufficient(shop):
    with pytest.raises(InsufficientDataError, match="19 buyers"):
        LifetimeModel().fit(some_buyers(shop[0], 5, 14))


def test_no_repeat_buyer_is_insufficient(shop):
    with pytest.raises(InsufficientDataError, match="no repeat buyer"):
        LifetimeModel().fit(some_buyers(shop[0], 0, 200))


def test_non_buyers_do_not_count_as_buyers(shop):
    calibration = shop[0]
    frame = pd.concat([some_buyers(calibration, 5, 14), calibration[calibration["frequency"] == 0]])
    with pytest.raises(InsufficientDataError, match="19 buyers"):
        LifetimeModel().fit(frame)


# ---------------------------------------------------------------------------------------
# Holdout


def test_holdout_error_is_small_against_a_naive_baseline(shop):
    calibration, holdout, _ = shop
    metrics = holdout_error(calibration, holdout, horizon_days=H)
    assert set(metrics) == {"clv_orders_mae", "clv_value_mae", "clv_orders_predicted", "clv_orders_actual",
                            "clv_holdout_rows"}
    assert type(metrics["clv_holdout_rows"]) is int
    assert all(type(v) is float for k, v in metrics.items() if k != "clv_holdout_rows")

    buyers = calibration[calibration["frequency"] > 0]
    later = holdout.set_index("customer_id").loc[buyers["customer_id"]]
    actual = later["frequency"].to_numpy() - buyers["frequency"].to_numpy()
    assert metrics["clv_holdout_rows"] == len(buyers)
    assert metrics["clv_orders_actual"] == actual.sum()
    assert metrics["clv_orders_predicted"] == pytest.approx(actual.sum(), rel=0.1)

    # Naive: every buyer keeps ordering (and spending) at their past daily rate.
    age = buyers["first_order_days"].to_numpy()
    naive_orders = buyers["frequency"].to_numpy() / age * H
    naive_value = buyers["monetary"].to_numpy() / age * H
    spent = later["monetary"].to_numpy() - buyers["monetary"].to_numpy()
    assert metrics["clv_orders_mae"] < 0.8 * np.abs(naive_orders - actual).mean()
    assert metrics["clv_value_mae"] < 0.8 * np.abs(naive_value - spent).mean()
    # And better than predicting the mean for everyone (which knows the future total).
    assert metrics["clv_orders_mae"] < np.abs(actual.mean() - actual).mean()


def test_holdout_counts_customers_absent_from_the_holdout_as_no_orders(shop):
    calibration, holdout, _ = shop
    full = holdout_error(calibration, holdout, horizon_days=H)
    gone = calibration["customer_id"][calibration["frequency"] > 0].to_numpy()[::5]
    partial = holdout_error(calibration, holdout[~holdout["customer_id"].isin(gone)], horizon_days=H)
    by_id = holdout.set_index("customer_id")["frequency"] - calibration.set_index("customer_id")["frequency"]
    assert partial["clv_orders_actual"] == full["clv_orders_actual"] - by_id.loc[gone].sum()
    assert partial["clv_holdout_rows"] == full["clv_holdout_rows"]
    assert partial["clv_orders_predicted"] == full["clv_orders_predicted"]


def test_holdout_needs_enough_calibration_buyers(shop):
    calibration, holdout, _ = shop
    with pytest.raises(InsufficientDataError):
        holdout_error(some_buyers(calibration, 3, 3), holdout, horizon_days=H)
