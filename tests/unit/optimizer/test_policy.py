"""JourneyPolicy on synthetic logged decisions built here: it learns who each campaign pays
for, its propensities are the probabilities it draws from, it keeps exploring, shrinks thin
data toward the priors, values follow-ups, and refuses bad input by name."""

import copy
import datetime as dt
import pickle

import numpy as np
import pandas as pd
import pytest

from oscar_journeys.optimizer import DECISION_COLUMNS, JourneyPolicy
from oscar_journeys.optimizer.policy import POLICY_DECISION_COLUMNS

NOW = dt.datetime(2025, 5, 1, 12, tzinfo=dt.timezone.utc)
FEATURES = ["group_signal", "noise_a", "noise_b"]


def campaigns(*ids, priors=None):
    return pd.DataFrame(
        {"campaign_id": list(ids), "priority": [10] * len(ids), "prior_value": priors or [0.0] * len(ids)}
    )


def customer_features(groups, rng, start_id=0):
    """Features of customers of hidden ``groups`` (0/1): the group plus a little noise in
    ``group_signal``, pure noise in the others; indexed by customer id."""
    n = len(groups)
    return pd.DataFrame(
        {
            "group_signal": groups + rng.normal(0, 0.1, n),
            "noise_a": rng.normal(0, 1, n),
            "noise_b": rng.normal(0, 1, n),
        },
        index=pd.Index(np.arange(start_id, start_id + n), name="customer_id"),
    )


def randomized_log(n, uplift, options, rng, *, base=20.0, noise=5.0):
    """A log of ``n`` uniformly randomized decisions among ``options`` (campaign ids, None =
    nothing), propensity 1/len(options). ``uplift(campaign_id, groups)`` gives the true
    uplift per row; value = base + uplift + normal noise. Returns (outcomes, features, groups)."""
    groups = rng.integers(0, 2, n)
    features = customer_features(groups, rng)
    picks = rng.integers(0, len(options), n)
    chosen = [options[i] for i in picks]
    campaign = pd.array(chosen, dtype="Int64")
    effect = np.zeros(n)
    for a in options:
        if a is not None:
            rows = campaign.to_numpy(dtype="float64", na_value=np.nan) == a
            effect[rows] = uplift(a, groups[rows])
    outcomes = pd.DataFrame(
        {
            "customer_id": np.arange(n),
            "campaign_id": campaign,
            "decided_at": pd.Timestamp("2025-03-01", tz="UTC") + pd.to_timedelta(np.arange(n) % 30, unit="D"),
            "propensity": np.full(n, 1.0 / len(options)),
            "value": base + effect + rng.normal(0, noise, n),
        }
    )
    return outcomes, features.reset_index(drop=True), groups


def two_group_uplift(campaign_id, groups):
    """Campaign 1 pays for group 1 and costs for group 0; campaign 2 the other way round."""
    pays = groups == 1 if campaign_id == 1 else groups == 0
    return np.where(pays, 10.0, -3.0)


@pytest.fixture(scope="module")
def two_groups():
    rng = np.random.default_rng(11)
    outcomes, features, _ = randomized_log(6000, two_group_uplift, [None, 1, 2], rng)
    policy = JourneyPolicy(campaigns(1, 2), partition="tree").learn(outcomes, features)
    return policy, outcomes, features


def pairs(customers, campaign_ids):
    return pd.DataFrame(
        [(c, a) for c in customers for a in campaign_ids], columns=["customer_id", "campaign_id"]
    )


# --- (1) it learns who each campaign pays for ----------------------------------------------


def test_learns_which_campaign_pays_for_which_hidden_group(two_groups):
    policy, _, _ = two_groups
    rng = np.random.default_rng(5)
    groups = rng.integers(0, 2, 3000)
    features = customer_features(groups, rng, start_id=100_000)
    decided = policy.decide(features, pairs(features.index, [1, 2]), NOW, seed=1)
    chosen = decided["campaign_id"].to_numpy(dtype="float64", na_value=np.nan)
    assert np.mean(chosen[groups == 1] == 1) > 0.85
    assert np.mean(chosen[groups == 0] == 2) > 0.85
    predicted = policy.predict(features, pairs(features.index, [1]))
    assert predicted.loc[groups == 1, "uplift"].mean() == pytest.approx(10.0, abs=1.5)
    assert predicted.loc[groups == 0, "uplift"].mean() == pytest.approx(-3.0, abs=1.5)


def test_a_campaign_that_costs_for_everyone_loses_to_nothing():
    rng = np.random.default_rng(3)
    outcomes, features, _ = randomized_log(4000, lambda a, g: np.full(len(g), -6.0), [None, 7], rng)
    policy = JourneyPolicy(campaigns(7)).learn(outcomes, features)
    fresh = customer_features(rng.integers(0, 2, 2000), rng)
    decided = policy.decide(fresh, pairs(fresh.index, [7]), NOW, seed=2)
    assert decided["campaign_id"].isna().mean() > 0.9


# --- (2) the propensities are the probabilities the choice is drawn from -----------------------


def test_propensity_is_the_probability_of_what_the_customer_receives(two_groups):
    policy = copy.copy(two_groups[0]).set_options(holdout=0.3)
    rng = np.random.default_rng(8)
    features = customer_features(rng.integers(0, 2, 2000), rng, start_id=50)
    eligible = pairs(features.index, [1, 2])
    decided = policy.decide(features, eligible, NOW, seed=42)
    p = policy.probabilities(features, eligible, seed=42)
    nothing = p[p["campaign_id"].isna()].set_index("customer_id")["probability"]
    chosen_p = decided.merge(p, on=["customer_id", "campaign_id"], how="left")["probability"].to_numpy()
    p_nothing = nothing.reindex(decided["customer_id"]).to_numpy()
    sent = decided["campaign_id"].notna().to_numpy() & ~decided["control"].to_numpy()
    receives_nothing = p_nothing + 0.3 * (1 - p_nothing)
    assert np.allclose(decided["propensity"].to_numpy()[sent], chosen_p[sent] * 0.7)
    assert np.allclose(decided["propensity"].to_numpy()[~sent], receives_nothing[~sent])
    assert np.allclose(decided["nothing_propensity"].to_numpy(), receives_nothing)
    # The hold-out is a random 30 % of the customers given a campaign.
    given = decided["campaign_id"].notna()
    assert decided.loc[given, "control"].mean() == pytest.approx(0.3, abs=0.05)
    assert not decided.loc[~given, "control"].any()


def test_choice_frequencies_match_the_probabilities_over_seeds():
    # Priors close together, wide prior sd: every option is sometimes the best.
    policy = JourneyPolicy(campaigns(1, 2, 3, priors=[0.15, 0.05, -0.1]), exploration=0.1, holdout=0.25)
    features = pd.DataFrame(index=pd.Index([77], name="customer_id"))
    eligible = pairs([77], [1, 2, 3])
    seeds = 1000
    counts = {1: 0, 2: 0, 3: 0, None: 0}
    mean_p = {1: 0.0, 2: 0.0, 3: 0.0, None: 0.0}
    controls = sends = 0
    for seed in range(seeds):
        decided = policy.decide(features, eligible, NOW, seed=seed).iloc[0]
        choice = None if pd.isna(decided["campaign_id"]) else int(decided["campaign_id"])
        counts[choice] += 1
        controls += bool(decided["control"])
        sends += choice is not None
        p = policy.probabilities(features, eligible, seed=seed)
        for a, prob in zip(p["campaign_id"].tolist(), p["probability"].tolist()):
            mean_p[None if pd.isna(a) else int(a)] += prob / seeds
    assert sum(mean_p.values()) == pytest.approx(1.0)
    assert min(mean_p.values()) > 0.05  # every option is chosen now and then
    for option, expected in mean_p.items():
        tolerance = 4 * np.sqrt(expected * (1 - expected) / seeds)
        assert counts[option] / seeds == pytest.approx(expected, abs=tolerance), option
    assert controls / sends == pytest.approx(0.25, abs=4 * np.sqrt(0.25 * 0.75 / sends))


def test_thompson_share_is_a_whole_number_of_draws():
    policy = JourneyPolicy(campaigns(1, 2), draws=5, exploration=0.2)
    eligible = pairs(range(300), [1, 2])
    p = policy.probabilities(None, eligible, seed=3)["probability"].to_numpy()
    q = (p - 0.2 / 3) / 0.8 * 5
    assert np.allclose(q, np.round(q))
    assert len(set(np.round(q).tolist())) > 2  # the draws do differ between customers


def test_same_seed_same_decisions_other_seed_other_decisions(two_groups):
    policy = two_groups[0]
    rng = np.random.default_rng(4)
    features = customer_features(rng.integers(0, 2, 500), rng)
    eligible = pairs(features.index, [1, 2])
    first = policy.decide(features, eligible, NOW, seed=9)
    pd.testing.assert_frame_equal(first, policy.decide(features, eligible, NOW, seed=9))
    assert not first.equals(policy.decide(features, eligible, NOW, seed=10))


# --- (3) it keeps exploring ----------------------------------------------------------------------


@pytest.mark.parametrize("exploration", [0.05, 0.2])
def test_every_option_keeps_the_exploration_floor_after_learning(two_groups, exploration):
    policy = copy.copy(two_groups[0]).set_options(exploration=exploration)
    rng = np.random.default_rng(6)
    features = customer_features(rng.integers(0, 2, 600), rng)
    ids = features.index.to_numpy()
    # One, two and three eligible campaigns (3 never seen), nothing always an option.
    eligible = pd.concat(
        [pairs(ids[:200], [1]), pairs(ids[200:400], [1, 2]), pairs(ids[400:], [1, 2, 3])], ignore_index=True
    )
    p = policy.probabilities(features, eligible, seed=1)
    k = eligible.groupby("customer_id").size()
    floor = exploration / (k.reindex(p["customer_id"]).to_numpy() + 1)
    assert (p["probability"].to_numpy() >= floor - 1e-12).all()
    # Learned: many options sit exactly at the floor (no more than exploration is spent).
    assert np.isclose(p["probability"].to_numpy(), floor).mean() > 0.3
    assert np.allclose(p.groupby("customer_id")["probability"].sum(), 1.0)
    assert p["campaign_id"].isna().sum() == 600
    assert (p.groupby("customer_id")["campaign_id"].apply(lambda s: s.isna().iloc[-1])).all()


# --- (4) shrinkage toward the priors ------------------------------------------------------------


def shrinkage_log(n_treated, rng, n_control=3000):
    n = n_treated + n_control
    campaign = pd.array([1] * n_treated + [None] * n_control, dtype="Int64")
    value = rng.normal(20, 5, n) + np.where(np.arange(n) < n_treated, 10.0, 0.0)
    outcomes = pd.DataFrame({"customer_id": np.arange(n), "campaign_id": campaign, "propensity": 0.5, "value": value})
    features = pd.DataFrame({"x": rng.normal(0, 1, n)})
    return outcomes, features


def test_thin_data_stays_near_the_prior_thick_data_moves_to_the_data():
    rng = np.random.default_rng(12)
    few = JourneyPolicy(campaigns(1)).learn(*shrinkage_log(15, rng)).summary().set_index("campaign_id")
    many = JourneyPolicy(campaigns(1)).learn(*shrinkage_log(4000, rng)).summary().set_index("campaign_id")
    assert 0 < few.loc[1, "uplift"] < 5  # nearer the prior (0) than the data (10)
    assert many.loc[1, "uplift"] == pytest.approx(10.0, abs=0.7)
    assert many.loc[1, "uplift_sd"] < few.loc[1, "uplift_sd"]
    assert (few.loc[1, "n_treated"], many.loc[1, "n_treated"]) == (15, 4000)


def test_a_new_campaign_is_its_prior():
    before = JourneyPolicy(campaigns(1, 9, priors=[0.0, 2.5]), prior_strength=25.0)
    row = before.summary().set_index("campaign_id").loc[9]
    assert (row["uplift"], row["uplift_sd"]) == pytest.approx((2.5, np.sqrt(1.0 / 25.0)))

    rng = np.random.default_rng(2)
    outcomes, features = shrinkage_log(500, rng)
    policy = before.learn(outcomes, features)
    value_var = np.var(outcomes["value"].to_numpy())
    row = policy.summary().set_index("campaign_id").loc[9]
    assert (row["uplift"], row["uplift_sd"]) == pytest.approx((2.5, np.sqrt(value_var / 25.0)))
    assert (row["n_treated"], row["leaves"]) == (0, 0)
    predicted = policy.predict(features.iloc[:5].set_axis(pd.Index(range(5), name="customer_id")),
                               pairs(range(5), [9, 123]))
    by_campaign = predicted.groupby("campaign_id")[["uplift", "uplift_sd"]].first()
    assert by_campaign.loc[9].tolist() == pytest.approx([2.5, np.sqrt(value_var / 25.0)])
    # A campaign nobody declared: prior 0.
    assert by_campaign.loc[123].tolist() == pytest.approx([0.0, np.sqrt(value_var / 25.0)])


def test_campaigns_added_later_get_their_prior_and_known_ones_keep_theirs():
    policy = JourneyPolicy(campaigns(1, priors=[1.0]))
    policy.add_campaigns(campaigns(1, 4, priors=[-7.0, 3.0]))
    summary = policy.summary().set_index("campaign_id")["uplift"]
    assert summary.to_dict() == {1: 1.0, 4: 3.0}


# --- (5) deterministic rows teach nothing -------------------------------------------------------


def test_deterministic_rows_are_ignored(two_groups):
    _, outcomes, features = two_groups
    rng = np.random.default_rng(1)
    extra_features = customer_features(np.ones(400, dtype=int), rng).reset_index(drop=True)
    extra = pd.DataFrame(
        {
            "customer_id": np.arange(400) + 10**6,
            "campaign_id": pd.array([1] * 400, dtype="Int64"),
            "decided_at": pd.Timestamp("2025-04-01", tz="UTC"),
            "propensity": 1.0,
            "value": 5000.0,
        }
    )
    plain = JourneyPolicy(campaigns(1, 2)).learn(outcomes, features)
    mixed = JourneyPolicy(campaigns(1, 2)).learn(
        pd.concat([outcomes, extra], ignore_index=True), pd.concat([features, extra_features], ignore_index=True)
    )
    pd.testing.assert_frame_equal(plain.summary(), mixed.summary())
    probe = customer_features(rng.integers(0, 2, 50), rng)
    pd.testing.assert_frame_equal(
        plain.predict(probe, pairs(probe.index, [1, 2])), mixed.predict(probe, pairs(probe.index, [1, 2]))
    )

    only = JourneyPolicy(campaigns(1, priors=[0.5])).learn(extra, extra_features)
    assert only.version == 1
    row = only.summary().iloc[0]
    assert (row["n_treated"], row["n_control"], row["uplift"]) == (0, 0, 0.5)


def test_memory_keeps_the_most_recent_rows():
    rng = np.random.default_rng(21)
    old, old_features, _ = randomized_log(3000, lambda a, g: np.full(len(g), 10.0), [None, 1], rng)
    new, new_features, _ = randomized_log(3000, lambda a, g: np.full(len(g), -10.0), [None, 1], rng)
    policy = JourneyPolicy(campaigns(1), memory=3000)
    policy.learn(old, old_features)
    assert policy.summary()["uplift"].iloc[0] > 8
    assert policy.learn(new, new_features) is policy and policy.version == 2
    row = policy.summary().iloc[0]
    assert row["uplift"] < -8
    assert row["n_treated"] + row["n_control"] == 3000


# --- (6) follow-ups --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def follow_up_log():
    """Exact logged values, one group, no useful features: control 0; campaign 1 pays 4 to a
    quarter of its customers (uplift 1, response rate 1/4); 2 pays 4 (uplift 4); 3 pays 10;
    4 pays 20; 5 costs 8."""
    per_arm = 2000
    arms = [None, 1, 2, 3, 4, 5]
    campaign = pd.array(np.repeat(np.array(arms, dtype=object), per_arm).tolist(), dtype="Int64")
    value = np.concatenate(
        [np.zeros(per_arm), np.where(np.arange(per_arm) % 4 == 0, 4.0, 0.0), np.full(per_arm, 4.0),
         np.full(per_arm, 10.0), np.full(per_arm, 20.0), np.full(per_arm, -8.0)]
    )
    n = len(value)
    outcomes = pd.DataFrame(
        {"customer_id": np.arange(n), "campaign_id": campaign, "propensity": 1 / 6, "value": value}
    )
    features = pd.DataFrame({"x": np.random.default_rng(0).normal(0, 1, n)})
    return outcomes, features


def follow_up_policy(log, links, **options):
    follow_ups = pd.DataFrame(links, columns=["campaign_id", "follow_up_id", "delay_days", "condition"])
    policy = JourneyPolicy(campaigns(1, 2, 3, 4, 5), follow_ups, max_leaves=1, **options)
    return policy.learn(*log)


def values(policy, campaign_ids):
    predicted = policy.predict(pd.DataFrame(index=pd.Index([1], name="customer_id")), pairs([1], campaign_ids))
    return dict(zip(predicted["campaign_id"], predicted["value"]))


def test_a_small_campaign_with_a_big_follow_up_beats_a_medium_one(follow_up_log):
    policy = follow_up_policy(follow_up_log, [(1, 3, 14, "any")], discount=0.8)
    assert values(policy, [1, 2]) == pytest.approx({1: 1 + 0.8 * 10, 2: 4.0}, abs=0.05)
    eligible = pairs(range(1000), [1, 2])
    chosen = policy.decide(None, eligible, NOW, seed=0)["campaign_id"]
    assert (chosen == 1).mean() > 0.9

    # Discounted harder, the follow-up no longer makes up for the small own uplift.
    cheap = copy.copy(policy).set_options(discount=0.2)
    assert values(cheap, [1, 2]) == pytest.approx({1: 1 + 0.2 * 10, 2: 4.0}, abs=0.05)
    assert (cheap.decide(None, eligible, NOW, seed=0)["campaign_id"] == 2).mean() > 0.9
    # set_options on the copy left the original alone.
    assert policy.discount == 0.8 and values(policy, [1])[1] == pytest.approx(9.0, abs=0.05)


@pytest.mark.parametrize("condition, factor", [("any", 1.0), ("responded", 0.25), ("not_responded", 0.75)])
def test_follow_up_conditions_scale_by_the_response_rate(follow_up_log, condition, factor):
    policy = follow_up_policy(follow_up_log, [(1, 3, 14, condition)], discount=0.8)
    assert values(policy, [1])[1] == pytest.approx(1 + 0.8 * factor * 10, abs=0.05)


def test_depth_limits_the_follow_up_hops(follow_up_log):
    links = [(1, 3, 14, "any"), (3, 4, 7, "any"), (4, 1, 7, "any")]  # a cycle: depth must stop it
    for depth, expected in [(0, 1.0), (1, 1 + 0.5 * 10), (2, 1 + 0.5 * (10 + 0.5 * 20)),
                            (3, 1 + 0.5 * (10 + 0.5 * (20 + 0.5 * 1)))]:
        policy = follow_up_policy(follow_up_log, links, discount=0.5, depth=depth)
        assert values(policy, [1])[1] == pytest.approx(expected, abs=0.05), depth


def test_a_losing_follow_up_does_not_lower_the_value(follow_up_log):
    policy = follow_up_policy(follow_up_log, [(2, 5, 7, "any")], discount=0.9)
    assert values(policy, [2, 5]) == pytest.approx({2: 4.0, 5: -8.0}, abs=0.05)


def test_expected_value_is_the_value_of_the_choice(follow_up_log):
    policy = follow_up_policy(follow_up_log, [(1, 3, 14, "any")], discount=0.8)
    decided = policy.decide(None, pairs(range(400), [1, 2, 5]), NOW, seed=3)
    expected = {1: 9.0, 2: 4.0, 5: -8.0}
    for chosen, value in zip(decided["campaign_id"], decided["expected_value"]):
        assert value == (0.0 if pd.isna(chosen) else pytest.approx(expected[int(chosen)], abs=0.05))


# --- (7) bad input ----------------------------------------------------------------------------


def test_learn_rejects_bad_input_by_name(follow_up_log):
    outcomes, features = follow_up_log
    policy = JourneyPolicy(campaigns(1))
    with pytest.raises(ValueError, match="value"):
        policy.learn(outcomes.drop(columns="value"), features)
    with pytest.raises(ValueError, match="rows"):
        policy.learn(outcomes, features.iloc[:-1])
    for bad in (0.0, 1.5, np.nan):
        with pytest.raises(ValueError, match="propensity"):
            policy.learn(outcomes.assign(propensity=bad), features)
    with pytest.raises(ValueError, match="value"):
        policy.learn(outcomes.assign(value=np.nan), features)
    with pytest.raises(ValueError, match="features"):
        policy.learn(outcomes, features.to_numpy())
    with pytest.raises(ValueError, match="numeric"):
        policy.learn(outcomes, features.assign(x="high"))
    with pytest.raises(ValueError, match="campaign_id"):
        policy.learn(outcomes.assign(campaign_id="newsletter"), features)
    assert policy.version == 0 and policy.feature_names is None  # nothing half-learned


def test_decide_rejects_bad_input_by_name():
    policy = JourneyPolicy(campaigns(1))
    with pytest.raises(ValueError, match="campaign_id"):
        policy.decide(None, pd.DataFrame({"customer_id": [1]}), NOW)
    with pytest.raises(ValueError, match="missing"):
        policy.decide(None, pd.DataFrame({"customer_id": [1, None], "campaign_id": [1, 1]}), NOW)
    policy.learn(
        pd.DataFrame({"campaign_id": [1, None] * 5, "propensity": 0.5, "value": 1.0 * np.arange(10)}),
        pd.DataFrame({"x": np.arange(10.0)}),
    )
    duplicated = pd.DataFrame({"x": [1.0, 2.0]}, index=pd.Index([5, 5], name="customer_id"))
    with pytest.raises(ValueError, match="duplicates"):
        policy.decide(duplicated, pairs([5], [1]), NOW)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: JourneyPolicy(pd.DataFrame({"id": [1]})), "campaign_id"),
        (lambda: JourneyPolicy(campaigns(1, 1)), "more than once"),
        (lambda: JourneyPolicy(campaigns(1), pd.DataFrame({"campaign_id": [1]})), "follow_up_id"),
        (lambda: JourneyPolicy(campaigns(1), pd.DataFrame(
            {"campaign_id": [1], "follow_up_id": [2], "delay_days": [3], "condition": ["clicked"]})), "condition"),
        (lambda: JourneyPolicy(campaigns(1), exploration=1.5), "exploration"),
        (lambda: JourneyPolicy(campaigns(1), holdout=1.0), "holdout"),
        (lambda: JourneyPolicy(campaigns(1), draws=0), "draws"),
        (lambda: JourneyPolicy(campaigns(1), depth=-1), "depth"),
        (lambda: JourneyPolicy(campaigns(1), prior_strength=0), "prior_strength"),
        (lambda: JourneyPolicy(campaigns(1)).set_options(discount="lots"), "discount"),
    ],
)
def test_bad_configuration_is_refused_by_name(make, match):
    with pytest.raises(ValueError, match=match):
        make()


# --- (8) pickling -------------------------------------------------------------------------------


def test_a_pickled_policy_decides_the_same(two_groups):
    policy = two_groups[0]
    restored = pickle.loads(pickle.dumps(policy))
    rng = np.random.default_rng(17)
    features = customer_features(rng.integers(0, 2, 400), rng)
    eligible = pairs(features.index, [1, 2])
    pd.testing.assert_frame_equal(
        policy.decide(features, eligible, NOW, seed=5), restored.decide(features, eligible, NOW, seed=5)
    )
    pd.testing.assert_frame_equal(policy.summary(), restored.summary())
    assert restored.version == policy.version == 1


# --- (9) the decision frame ---------------------------------------------------------------------


def test_decision_frame_shape_order_and_types(two_groups):
    policy = two_groups[0]
    rng = np.random.default_rng(30)
    features = customer_features(rng.integers(0, 2, 3), rng, start_id=40).drop(columns="noise_b")
    # Unsorted, a duplicate pair, a customer without features (99), an unknown campaign (8).
    eligible = pd.DataFrame({"customer_id": [42, 99, 40, 41, 42, 40, 40], "campaign_id": [2, 1, 2, 1, 2, 1, 8]})
    decided = policy.decide(features, eligible, NOW, seed=0)
    assert tuple(decided.columns) == POLICY_DECISION_COLUMNS
    assert POLICY_DECISION_COLUMNS[: len(DECISION_COLUMNS)] == DECISION_COLUMNS
    assert decided["customer_id"].tolist() == [40, 41, 42, 99]
    assert decided.index.tolist() == [0, 1, 2, 3]
    assert decided.dtypes.astype(str).to_dict() == {
        "customer_id": "int64", "campaign_id": "Int64", "propensity": "float64", "expected_value": "float64",
        "control": "bool", "nothing_propensity": "float64",
    }
    allowed = eligible.groupby("customer_id")["campaign_id"].apply(set)
    for customer, chosen in zip(decided["customer_id"], decided["campaign_id"]):
        assert pd.isna(chosen) or chosen in allowed[customer]
    assert ((decided["propensity"] > 0) & (decided["propensity"] <= 1)).all()

    empty = policy.decide(features, eligible.iloc[:0], NOW)
    assert tuple(empty.columns) == POLICY_DECISION_COLUMNS and len(empty) == 0
    assert empty["campaign_id"].dtype == "Int64"


def test_missing_features_are_the_training_medians(two_groups):
    policy, _, features = two_groups
    medians = features.median()
    known = pd.DataFrame([medians.to_numpy()], columns=features.columns, index=pd.Index([1], name="customer_id"))
    holes = pd.DataFrame({"group_signal": [np.nan], "noise_a": [np.nan]}, index=pd.Index([2], name="customer_id"))
    at_median = policy.predict(known, pairs([1], [1, 2]))
    filled = policy.predict(holes, pairs([2], [1, 2]))
    unknown = policy.predict(None, pairs([3], [1, 2]))
    columns = ["uplift", "uplift_sd", "value"]
    assert np.allclose(at_median[columns].to_numpy(), filled[columns].to_numpy())
    assert np.allclose(at_median[columns].to_numpy(), unknown[columns].to_numpy())
    # A customer off the median does get another estimate (the features are read).
    off = known.assign(group_signal=medians["group_signal"] + (1.0 if medians["group_signal"] < 0.5 else -1.0))
    assert not np.allclose(policy.predict(off, pairs([1], [1]))["uplift"], at_median["uplift"].iloc[0])


def test_predict_keeps_the_rows_of_eligible_and_summary_lists_every_campaign(two_groups):
    policy = two_groups[0]
    eligible = pd.DataFrame({"customer_id": [5, 3, 5], "campaign_id": [2, 1, 1]}, index=[10, 11, 12])
    predicted = policy.predict(None, eligible)
    assert predicted.index.tolist() == [10, 11, 12]
    assert predicted[["customer_id", "campaign_id"]].equals(eligible)
    assert (predicted["uplift_sd"] > 0).all()
    summary = policy.summary()
    assert list(summary.columns) == ["campaign_id", "n_treated", "n_control", "uplift", "uplift_sd", "leaves"]
    assert summary["campaign_id"].tolist() == [1, 2]
    assert (summary["leaves"] > 1).all() and (summary["n_treated"] > 1500).all()


# --- the mixture partition on the simulated shop ------------------------------------------------


def test_the_mixture_finds_the_hidden_types_of_the_simulated_shop():
    """On the simulator (customer types that show as clusters in the features), after four
    weeks the policy sends lost causes least, spares sure things most of the discounts they
    do not need and keeps the discounts for the deal seekers, and over the next four weeks
    earns more than manual priority. A small, young shop: with 5% exploration and hold-out,
    not the defaults' 2% (which the 20,000-customer benchmark worlds favour; here, after
    four weeks, they earn 0.89 times manual priority over the next four, and 5% 1.13;
    docs/journeys.md)."""
    import datetime as dt

    from oscar_journeys.optimizer import ManualPriorityPolicy
    from oscar_journeys.simulation import World, run

    world = World(n_customers=8_000, seed=3)
    start = dt.date(2025, 1, 6)
    policy = JourneyPolicy(world.campaigns, world.follow_ups, exploration=0.05, holdout=0.05)
    learned = run(world, policy, start=start, days=56)
    manual = run(world, ManualPriorityPolicy(world.campaigns), start=start, days=56)
    late = learned.outcomes[learned.outcomes["day"] >= 28]
    rates = late.assign(sent=late["campaign_id"].notna(), discount=late["campaign_id"].isin([4, 5]))
    rates = rates.groupby("hidden_type")[["sent", "discount"]].mean()
    assert rates["sent"].idxmin() == "lost_cause"
    assert rates["discount"].idxmax() == "deal_seeker"
    manual_late = manual.outcomes[manual.outcomes["day"] >= 28]
    manual_sure = manual_late.loc[manual_late["hidden_type"] == "sure_thing", "campaign_id"].isin([4, 5]).mean()
    assert rates.loc["sure_thing", "discount"] < manual_sure / 3
    assert learned.summary(28)["incremental_value"] > 1.1 * manual.summary(28)["incremental_value"]
