"""The simulated shop: the same base triggers for every policy, follow-ups only after a real
send, no campaign effect without a send, exact expectations that the draws agree with, the
baselines in the expected order, features that reveal the type only in part, and clear
errors."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from oscar_journeys.optimizer import ManualPriorityPolicy
from oscar_journeys.optimizer.manual import DECISION_COLUMNS
from oscar_journeys.simulation import (
    NothingPolicy,
    OraclePolicy,
    RandomPolicy,
    World,
    run,
    synthetic_eligible,
    synthetic_features,
)
from oscar_journeys.simulation import world as world_module

START = dt.date(2025, 1, 6)


def equals(column, campaign):
    """Boolean array: the (nullable) campaign column equals ``campaign``; NA is False."""
    return column.eq(campaign).fillna(False).to_numpy(dtype=bool)


def decisions(customers, chosen, control=None):
    """A decision frame for the stub policies below (deterministic: propensity 1)."""
    n = len(customers)
    return pd.DataFrame(
        {
            "customer_id": customers,
            "campaign_id": pd.array(chosen, dtype="Float64").astype("Int64"),
            "propensity": np.ones(n),
            "expected_value": np.full(n, np.nan),
            "control": np.zeros(n, dtype=bool) if control is None else control,
        },
        columns=list(DECISION_COLUMNS),
    )


class PreferPolicy:
    """Sends the first of ``wanted`` the customer is eligible for (else nothing), and holds
    out the customers with an even id (they receive nothing)."""

    name = "prefer"

    def __init__(self, *wanted):
        self.wanted = wanted

    def decide(self, features, eligible, now, seed=None):
        customers = np.unique(eligible["customer_id"].to_numpy())
        chosen = np.full(len(customers), np.nan)
        for campaign in reversed(self.wanted):
            has = np.isin(customers, eligible.loc[eligible["campaign_id"] == campaign, "customer_id"])
            chosen[has] = campaign
        control = (customers % 2 == 0) & ~np.isnan(chosen)
        return decisions(customers, chosen, control)


@pytest.fixture(scope="module")
def world():
    return World(n_customers=10_000, seed=3)


@pytest.fixture(scope="module")
def runs(world):
    policies = {
        "nothing": NothingPolicy(),
        "random": RandomPolicy(),
        "manual": ManualPriorityPolicy(world.campaigns),
        "oracle": OraclePolicy(world),
    }
    return {name: run(world, policy, start=START, days=42, seed=7) for name, policy in policies.items()}


# --- the clock ----------------------------------------------------------------------------


def test_the_base_trigger_stream_is_the_same_for_every_policy(runs):
    def base(result):
        e = result.eligible
        return e[e["campaign_id"] != 3].reset_index(drop=True)

    reference = base(runs["nothing"])
    assert len(reference) > 10_000
    for name in ("random", "manual", "oracle"):
        pd.testing.assert_frame_equal(base(runs[name]), reference)
    # ... and it is the world's seed that fixes it: another world meets other customers.
    other = run(World(n_customers=10_000, seed=4), NothingPolicy(), start=START, days=42)
    assert not base(other).equals(reference)


def test_triggers_do_not_depend_on_the_order_they_are_asked_in():
    a, b = World(n_customers=2_000, seed=9), World(n_customers=2_000, seed=9)
    late = a.triggers(20)
    for day in range(21):
        b.triggers(day)
    pd.testing.assert_frame_equal(late, b.triggers(20))
    assert not late.equals(b.triggers(19))


def test_decision_points_mostly_offer_two_to_four_campaigns_and_respect_the_cooldown(runs):
    e = runs["nothing"].eligible
    sizes = e.groupby(["day", "customer_id"]).size()
    assert 0.55 < sizes.between(2, 4).mean() < 0.9
    days = e.drop_duplicates(["day", "customer_id"]).sort_values(["customer_id", "day"])
    gaps = days.groupby("customer_id")["day"].diff().dropna()
    assert gaps.min() > world_module.COOLDOWN_DAYS


def test_follow_up_3_is_eligible_only_delay_days_after_2_was_received(world):
    result = run(world, PreferPolicy(2), start=START, days=35, seed=1)
    out, delay = result.outcomes, int(world.follow_ups["delay_days"].iloc[0])
    received = out[out["campaign_id"] == 2]
    held_out = out[out["control"] & (out["chosen_campaign_id"] == 2)]
    assert len(received) > 500 and len(held_out) > 500
    expected = {(c, d + delay) for c, d in zip(received["customer_id"], received["day"]) if d + delay < 35}
    threes = result.eligible[result.eligible["campaign_id"] == 3]
    assert set(zip(threes["customer_id"], threes["day"])) == expected
    # Campaign 3 is never a base trigger.
    assert not any((world.triggers(day)["campaign_id"] == 3).any() for day in range(35))
    # Under a policy that never sends 2, campaign 3 never comes up.
    never = run(world, PreferPolicy(1), start=START, days=35, seed=1)
    assert not (never.eligible["campaign_id"] == 3).any()


# --- values -------------------------------------------------------------------------------


def test_control_and_nothing_rows_earn_no_campaign_effect(world):
    result = run(world, PreferPolicy(5, 4), start=START, days=42, seed=2)
    out = result.outcomes
    basket = world_module.BASKET[world.type_index(out["customer_id"])]
    share = out["value"].to_numpy() / basket  # the share of the basket paid
    nothing = out["campaign_id"].isna().to_numpy()
    controls = out["control"].to_numpy()
    assert controls.sum() > 1_000 and controls[~nothing].sum() == 0  # control rows receive nothing
    assert (out.loc[nothing, "true_uplift"] == 0).all()
    assert np.isin(share[nothing], [0.0, 1.0]).all()  # full price: no discount without a send
    assert np.isin(share[equals(out["campaign_id"], 5)], [0.0, 0.8]).all()
    # Held-out deal seekers buy at the rate of nothing, not at the rate of the discount.
    seekers = (out["hidden_type"] == "deal_seeker").to_numpy()
    held_5 = seekers & controls & equals(out["chosen_campaign_id"], 5)
    sent_5 = seekers & equals(out["campaign_id"], 5)
    assert held_5.sum() > 300 and sent_5.sum() > 300
    assert out.loc[held_5, "responded"].mean() < 0.10  # P_BUY nothing: 0.05
    assert out.loc[sent_5, "responded"].mean() > 0.28  # P_BUY with 20% off: 0.35


def test_the_exact_expected_value_matches_the_realized_value_on_average():
    world = World(n_customers=20_000, seed=11)
    result = run(world, RandomPolicy(), start=START, days=42, seed=3)
    out = result.outcomes
    types = world.type_index(out["customer_id"])
    actions = out["campaign_id"].fillna(0).to_numpy(dtype="int64")
    p = world_module.P_BUY[types, actions]
    paid = world_module.BASKET[types] * (1 - world_module.DISCOUNT[actions])
    variance = p * (1 - p) * paid**2
    # In total: realized minus baseline against the exact incremental value.
    totals = result.totals
    noise = np.sqrt(variance.sum())
    assert abs(totals["realized_value"] - out["true_value"].sum()) < 4 * noise
    assert abs(totals["realized_incremental"] - totals["incremental_value"]) < 4 * noise
    assert totals["incremental_value"] == pytest.approx(out["true_uplift"].sum())
    # Per type and action: the mean value against E[value | type, action].
    frame = pd.DataFrame(
        {"t": types, "a": actions, "value": out["value"], "expected": out["true_value"], "var": variance}
    )
    groups = frame.groupby(["t", "a"]).agg(
        n=("value", "size"), mean=("value", "mean"), expected=("expected", "first"), var=("var", "sum")
    )
    assert len(groups) == 5 * 6
    z = (groups["mean"] - groups["expected"]) / (np.sqrt(groups["var"]) / groups["n"])
    assert (z.abs() < 4.5).all(), z


def test_the_oracle_beats_manual_which_beats_random(runs):
    value = {name: result.totals["incremental_value"] for name, result in runs.items()}
    assert value["nothing"] == 0
    assert value["oracle"] > 1.5 * value["manual"]
    assert value["manual"] > 1.2 * value["random"] > 0
    later = {name: runs[name].summary(from_day=21)["incremental_value"] for name in ("manual", "oracle")}
    assert later["oracle"] > 1.5 * later["manual"]


def test_manual_priority_pays_for_some_types_and_loses_on_sure_things_with_discounts(runs):
    manual = runs["manual"]
    per_type = manual.by_type()["per_decision"]
    assert per_type["deal_seeker"] > 3 and per_type["category_loyal"] > 1 and per_type["cross_buyer"] > 0
    assert per_type["sure_thing"] < 0 and per_type["lost_cause"] < 0
    out = manual.outcomes
    sure = out[out["hidden_type"] == "sure_thing"]
    discounted = sure["campaign_id"].isin([4, 5])
    assert discounted.sum() > 500
    assert (sure.loc[discounted, "true_uplift"] < 0).all()
    assert sure.loc[~discounted, "true_uplift"].sum() > 0  # the loss is the discounts' doing
    # The oracle leaves the lost causes alone and does not give sure things a discount.
    oracle = runs["oracle"].outcomes
    assert oracle.loc[oracle["hidden_type"] == "lost_cause", "campaign_id"].isna().all()
    assert not oracle.loc[oracle["hidden_type"] == "sure_thing", "campaign_id"].isin([4, 5]).any()


def test_the_oracle_counts_the_follow_up_a_campaign_opens(world):
    sure = world.types.index[world.types == "sure_thing"][:3].to_numpy()
    eligible = pd.DataFrame({"customer_id": np.repeat(sure, 2), "campaign_id": [1, 2] * 3})
    # 1 and 2 are worth the same to a sure thing (+1); 2 also opens its follow-up 3 (+1).
    assert OraclePolicy(world, discount=0.0).decide(None, eligible, START)["campaign_id"].tolist() == [1, 1, 1]
    assert OraclePolicy(world, discount=0.8).decide(None, eligible, START)["campaign_id"].tolist() == [2, 2, 2]
    decided = OraclePolicy(world, discount=0.8).decide(None, eligible, START)
    assert decided["expected_value"].tolist() == pytest.approx([1.8] * 3)


def test_features_predict_the_type_imperfectly():
    train, test = World(n_customers=8_000, seed=21), World(n_customers=4_000, seed=22)
    model = HistGradientBoostingClassifier(random_state=0)
    model.fit(train.features(train.customer_ids, START).to_numpy(), train.types.to_numpy())
    accuracy = model.score(test.features(test.customer_ids, START).to_numpy(), test.types.to_numpy())
    assert 0.70 < accuracy < 0.95
    assert list(train.features([3, 1], START).index) == [3, 1]
    assert list(train.features([1], START).columns) == list(world_module.FEATURES)


# --- the runner ---------------------------------------------------------------------------


class Recorder(RandomPolicy):
    """RandomPolicy that records the days it decides on and what it learns from."""

    def __init__(self):
        self.events = []

    def decide(self, features, eligible, now, seed=None):
        self.events.append(("decide", now))
        return super().decide(features, eligible, now, seed)

    def learn(self, outcomes, features):
        self.events.append(("learn", outcomes, features))
        return self


def test_learning_sees_each_closed_window_once_with_the_features_at_decision(world):
    policy = Recorder()
    result = run(world, policy, start=START, days=30, learn_every=7, attribution_days=10, seed=5)
    learned, learn_days = [], []
    for i, event in enumerate(policy.events):
        if event[0] == "learn":
            now = policy.events[i + 1][1]  # learning comes just before the day's decisions
            outcomes, features = event[1], event[2]
            assert list(outcomes.columns) == ["customer_id", "campaign_id", "decided_at", "propensity", "value"]
            assert len(features) == len(outcomes)
            assert (outcomes["decided_at"] + pd.Timedelta(days=10) <= pd.Timestamp(now)).all()
            expected = world.features(outcomes["customer_id"], now).to_numpy()
            np.testing.assert_array_equal(features.to_numpy(), expected)
            learned.append(outcomes)
            learn_days.append((now - START).days)
    assert learn_days == [14, 21, 28] and result.learn_calls == 3  # day 7: no window closed yet
    everything = pd.concat(learned, ignore_index=True)
    closed = result.outcomes[result.outcomes["day"] <= 18].reset_index(drop=True)
    pd.testing.assert_frame_equal(everything, closed[list(everything.columns)])
    assert result.daily["learned"].sum() == len(closed)


def test_a_run_is_reproducible_from_its_seeds(world):
    a = run(world, RandomPolicy(), start=START, days=14, seed=1)
    b = run(world, RandomPolicy(), start=START, days=14, seed=1)
    c = run(world, RandomPolicy(), start=START, days=14, seed=2)
    pd.testing.assert_frame_equal(a.outcomes, b.outcomes)
    assert not a.outcomes["campaign_id"].equals(c.outcomes["campaign_id"])
    assert a.summary(7)["decisions"] == a.daily.loc[a.daily["day"] >= 7, "decisions"].sum()
    assert a.outcomes["decided_at"].iloc[-1] == pd.Timestamp(START + dt.timedelta(days=13))


def test_random_policy_is_uniform_over_the_eligible_and_nothing():
    eligible = synthetic_eligible(20_000, 3, 5, seed=1)
    decided = RandomPolicy().decide(None, eligible, START, seed=4)
    assert decided["propensity"].eq(0.25).all() and len(decided) == 20_000
    pairs = set(zip(eligible["customer_id"], eligible["campaign_id"]))
    sent = decided.dropna(subset=["campaign_id"])
    assert all((c, a) in pairs for c, a in zip(sent["customer_id"], sent["campaign_id"]))
    assert abs(decided["campaign_id"].isna().mean() - 0.25) < 0.02


def test_synthetic_frames_for_the_benchmark():
    eligible = synthetic_eligible(1_000, 4, 6, seed=2)
    assert len(eligible) == 4_000
    per = eligible.groupby("customer_id")["campaign_id"]
    assert (per.nunique() == 4).all() and eligible["campaign_id"].between(1, 6).all()
    assert eligible["campaign_id"].value_counts().min() > 500  # every campaign drawn
    features = synthetic_features(1_000, seed=2)
    assert features.index.name == "customer_id" and list(features.index[:2]) == [1, 2]
    assert list(features.columns) == list(world_module.FEATURES) and not features.isna().any().any()


class Cheater(RandomPolicy):
    def decide(self, features, eligible, now, seed=None):
        decided = super().decide(features, eligible, now, seed)
        decided["campaign_id"] = pd.array([3] * len(decided), dtype="Int64")  # 3 is no base trigger
        return decided


def test_a_policy_that_breaks_the_interface_is_stopped(world):
    with pytest.raises(ValueError, match="not eligible"):
        run(world, Cheater(), start=START, days=2)


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda w: World(n_customers=0), "n_customers"),
        (lambda w: World(n_customers=2.5), "n_customers"),
        (lambda w: World(seed=-1), "seed"),
        (lambda w: run(w, RandomPolicy(), start=START, days=0), "days"),
        (lambda w: run(w, RandomPolicy(), start=START, days=3, learn_every=0), "learn_every"),
        (lambda w: run(w, RandomPolicy(), start=START, days=3, attribution_days=-1), "attribution_days"),
        (lambda w: run(w, RandomPolicy(), start=START, days=3, seed=-2), "seed"),
        (lambda w: run(w, RandomPolicy(), start="2025-01-06", days=3), "start"),
        (lambda w: run(w, object(), start=START, days=3), "policy"),
        (lambda w: run(w, RandomPolicy(), start=START, days=2).summary(from_day=-1), "from_day"),
        (lambda w: OraclePolicy(w, discount=1.5), "discount"),
        (lambda w: w.features([0, 1], START), "customer_ids"),
        (lambda w: w.uplift([1], [9]), "campaign_ids"),
        (lambda w: synthetic_eligible(10, 5, 4, seed=0), "per_customer"),
        (lambda w: synthetic_features(0), "n_customers"),
    ],
)
def test_bad_arguments_raise_a_value_error_naming_them(world, call, name):
    with pytest.raises(ValueError, match=name):
        call(world)
