"""Off-policy evaluation against known answers.

A small contextual bandit whose true values are known exactly: two contexts (x = 1 with
probability 0.4), three actions (0 = nothing, campaigns 1 and 2), mean rewards MU[x, a]
plus normal noise. The logging policy PI_LOG is stochastic; the target PI_TARGET favours
other actions, so its true value (2.49) is far from the logging policy's (1.72): an
estimator that ignored or misused the weights would miss it."""

import math

import numpy as np
import pandas as pd
import pytest

from oscar_journeys.optimizer.evaluation import (
    deterministic_probabilities,
    off_policy_value,
    target_probabilities,
)

P_CONTEXT_1 = 0.4
MU = np.array([[1.0, 2.0, 0.5], [3.0, 1.0, 4.0]])
PI_LOG = np.array([[0.5, 0.3, 0.2], [0.6, 0.3, 0.1]])
PI_TARGET = np.array([[0.1, 0.8, 0.1], [0.1, 0.1, 0.8]])
CAMPAIGN_OF_ACTION = [None, 1, 2]
NOISE_SD = 1.5
N_ROWS = 2000
SEEDS = range(200)


def true_value(pi):
    """Exact value per decision of policy ``pi``: sum over x of P(x) sum over a of
    pi(a | x) MU[x, a]."""
    return float(np.array([1 - P_CONTEXT_1, P_CONTEXT_1]) @ (pi * MU).sum(axis=1))


TRUTH = true_value(PI_TARGET)


def draw_log(seed, n=N_ROWS):
    """One log of ``n`` decisions by the logging policy: contexts, actions, and the frame."""
    rng = np.random.default_rng(seed)
    x = (rng.random(n) < P_CONTEXT_1).astype(int)
    action = (rng.random(n)[:, None] > PI_LOG[x].cumsum(axis=1)).sum(axis=1)
    value = MU[x, action] + rng.normal(0.0, NOISE_SD, n)
    logged = pd.DataFrame({"customer_id": np.arange(n), "propensity": PI_LOG[x, action], "value": value})
    return x, action, logged


def estimate(seed, method, reward_model=MU):
    x, action, logged = draw_log(seed)
    return off_policy_value(
        logged,
        PI_TARGET[x, action],
        method=method,
        reward_logged=reward_model[x, action],
        reward_target=(PI_TARGET[x] * reward_model[x]).sum(axis=1),
    )


@pytest.fixture(scope="module")
def results():
    """Each method's result for every seed (computed once for the module)."""
    return {method: [estimate(seed, method) for seed in SEEDS] for method in ("ips", "snips", "dr")}


def estimates(rows):
    return np.array([row["estimate"] for row in rows])


# The synthetic problem itself.


def test_the_true_values_are_the_hand_computed_ones():
    # 0.6 * (0.1*1 + 0.8*2 + 0.1*0.5) + 0.4 * (0.1*3 + 0.1*1 + 0.8*4) = 0.6*1.75 + 0.4*3.6
    assert TRUTH == pytest.approx(2.49)
    # The logging policy earns 0.6*1.2 + 0.4*2.5: far from the target, so the weights matter.
    assert true_value(PI_LOG) == pytest.approx(1.72)


def test_the_log_follows_the_logging_policy():
    x, action, logged = draw_log(0, n=200_000)
    for context in (0, 1):
        shares = np.bincount(action[x == context], minlength=3) / (x == context).sum()
        np.testing.assert_allclose(shares, PI_LOG[context], atol=0.01)


# Unbiasedness, consistency, variance, coverage.


@pytest.mark.parametrize("method", ["ips", "dr"])
def test_ips_and_dr_are_unbiased(results, method):
    values = estimates(results[method])
    tolerance = 4 * values.std(ddof=1) / math.sqrt(len(values))
    assert tolerance < 0.05
    assert abs(values.mean() - TRUTH) < tolerance


def test_snips_is_close_to_the_truth_on_average_and_consistent(results):
    values = estimates(results["snips"])
    assert abs(values.mean() - TRUTH) < 4 * values.std(ddof=1) / math.sqrt(len(values))
    x, action, logged = draw_log(12345, n=400_000)
    big = off_policy_value(logged, PI_TARGET[x, action], method="snips")
    assert abs(big["estimate"] - TRUTH) < 0.015
    assert big["low"] <= TRUTH <= big["high"]


def test_dr_is_unbiased_even_with_a_wrong_reward_model():
    wrong = 0.5 * MU + np.array([[1.0], [-2.0]])
    values = np.array([estimate(seed, "dr", reward_model=wrong)["estimate"] for seed in range(100)])
    assert abs(values.mean() - TRUTH) < 4 * values.std(ddof=1) / math.sqrt(len(values))
    # ... whereas the wrong model alone (the direct method) is far off.
    direct = float(np.array([1 - P_CONTEXT_1, P_CONTEXT_1]) @ (PI_TARGET * wrong).sum(axis=1))
    assert abs(direct - TRUTH) > 1


def test_dr_with_the_true_reward_model_varies_less_than_ips(results):
    sd_ips = estimates(results["ips"]).std(ddof=1)
    sd_dr = estimates(results["dr"]).std(ddof=1)
    assert sd_dr < 0.6 * sd_ips
    assert estimates(results["snips"]).std(ddof=1) < sd_ips


@pytest.mark.parametrize("method", ["ips", "snips", "dr"])
def test_the_interval_covers_the_truth_about_95_percent_of_the_time(results, method):
    rows = results[method]
    covered = np.mean([row["low"] <= TRUTH <= row["high"] for row in rows])
    assert 0.88 <= covered <= 0.99
    # The interval's width matches the estimator's actual spread across seeds.
    reported_se = np.mean([(row["high"] - row["low"]) / (2 * 1.959964) for row in rows])
    assert reported_se == pytest.approx(estimates(rows).std(ddof=1), rel=0.15)


def test_a_wider_confidence_gives_a_wider_interval():
    x, action, logged = draw_log(3)
    narrow = off_policy_value(logged, PI_TARGET[x, action], confidence=0.8)
    wide = off_policy_value(logged, PI_TARGET[x, action], confidence=0.99)
    assert narrow["estimate"] == wide["estimate"]
    ratio = (wide["high"] - wide["low"]) / (narrow["high"] - narrow["low"])
    assert ratio == pytest.approx(2.575829 / 1.281552)
    assert wide["confidence"] == 0.99


# Exact answers on small inputs.


@pytest.mark.parametrize("method", ["ips", "snips"])
def test_target_equal_to_logging_gives_the_plain_mean(method):
    x, action, logged = draw_log(7, n=500)
    result = off_policy_value(logged, logged["propensity"].to_numpy(), method=method)
    values = logged["value"].to_numpy()
    assert result["estimate"] == pytest.approx(values.mean())
    half = 1.959964 * values.std(ddof=1 if method == "ips" else 0) / math.sqrt(len(values))
    assert result["low"] == pytest.approx(values.mean() - half)
    assert result["high"] == pytest.approx(values.mean() + half)
    assert result["n"] == 500
    assert result["effective_sample_size"] == pytest.approx(500)
    assert result["method"] == method and result["confidence"] == 0.95


def test_hand_computed_estimates():
    logged = pd.DataFrame({"propensity": [0.5, 0.25, 1.0], "value": [2.0, 4.0, 3.0]})
    target = np.array([1.0, 0.5, 0.0])  # weights 2, 2, 0
    ips = off_policy_value(logged, target)
    assert ips["estimate"] == pytest.approx((4 + 8 + 0) / 3)
    terms = np.array([4.0, 8.0, 0.0])
    assert ips["high"] - ips["estimate"] == pytest.approx(1.959964 * terms.std(ddof=1) / math.sqrt(3))
    snips = off_policy_value(logged, target, method="snips")
    assert snips["estimate"] == pytest.approx(12 / 4)
    # delta method: sqrt(sum w^2 (v - est)^2) / sum w = sqrt(4*1 + 4*1) / 4
    assert snips["high"] - snips["estimate"] == pytest.approx(1.959964 * math.sqrt(8) / 4)
    assert ips["effective_sample_size"] == pytest.approx(16 / 8)
    dr = off_policy_value(
        logged, target, method="dr", reward_logged=[1.0, 1.0, 1.0], reward_target=[0.5, 0.5, 0.5]
    )
    # terms: 0.5 + 2*(2-1), 0.5 + 2*(4-1), 0.5 + 0
    assert dr["estimate"] == pytest.approx((2.5 + 6.5 + 0.5) / 3)


def test_empty_log_gives_no_estimate():
    empty = pd.DataFrame({"propensity": [], "value": []})
    for method in ("ips", "snips"):
        result = off_policy_value(empty, [], method=method)
        assert result["estimate"] is None and result["low"] is None and result["high"] is None
        assert result["n"] == 0 and result["effective_sample_size"] == 0.0
    result = off_policy_value(empty, [], method="dr", reward_logged=[], reward_target=[])
    assert result["estimate"] is None


def test_snips_without_any_matching_action_gives_no_estimate():
    logged = pd.DataFrame({"propensity": [0.5, 0.5], "value": [1.0, 2.0]})
    assert off_policy_value(logged, [0.0, 0.0], method="snips")["estimate"] is None
    ips = off_policy_value(logged, [0.0, 0.0])
    assert ips["estimate"] == 0.0 and ips["low"] is None  # no spread: no interval


def test_one_row_has_an_estimate_but_no_interval():
    result = off_policy_value(pd.DataFrame({"propensity": [0.5], "value": [3.0]}), [1.0])
    assert result["estimate"] == 6.0 and result["low"] is None and result["high"] is None


# Joining a target policy's probabilities to the logged rows.


def test_target_probabilities_match_none_with_none_and_give_zero_for_unoffered_actions():
    long = pd.DataFrame(
        {
            "customer_id": [1, 1, 1, 2, 2, 3],
            "campaign_id": [None, 10, 20, None, 10, 20],
            "probability": [0.2, 0.5, 0.3, 0.9, 0.1, 1.0],
        }
    )
    logged = pd.DataFrame({"customer_id": [2, 1, 3, 1, 3], "campaign_id": [np.nan, 20, np.nan, np.nan, 20]})
    np.testing.assert_allclose(target_probabilities(long, logged), [0.9, 0.3, 0.0, 0.2, 1.0])
    # Nullable Int64 with NA on both sides, and pd.NA in an object column, match the same way.
    long_int = long.assign(campaign_id=pd.array([pd.NA, 10, 20, pd.NA, 10, 20], dtype="Int64"))
    logged_obj = logged.assign(campaign_id=pd.Series([pd.NA, 20, None, pd.NA, 20], dtype="object"))
    np.testing.assert_allclose(target_probabilities(long_int, logged_obj), [0.9, 0.3, 0.0, 0.2, 1.0])


def test_target_probabilities_on_a_decision_key_when_customers_repeat():
    long = pd.DataFrame(
        {
            "decision_id": [100, 100, 101, 101],
            "customer_id": [7, 7, 7, 7],
            "campaign_id": [None, 1, None, 1],
            "probability": [0.75, 0.25, 0.4, 0.6],
        }
    )
    logged = pd.DataFrame({"decision_id": [101, 100], "customer_id": [7, 7], "campaign_id": [1, 1]})
    np.testing.assert_allclose(target_probabilities(long, logged, key="decision_id"), [0.6, 0.25])
    with pytest.raises(ValueError, match="more than once"):
        target_probabilities(long, logged)  # by customer the options repeat


def test_target_probabilities_reproduce_the_bandit_policy():
    x, action, logged = draw_log(1, n=300)
    long = pd.DataFrame(
        {
            "customer_id": np.repeat(logged["customer_id"].to_numpy(), 3),
            "campaign_id": pd.array(CAMPAIGN_OF_ACTION * len(logged), dtype="Int64"),
            "probability": PI_TARGET[x].ravel(),
        }
    ).sample(frac=1.0, random_state=0)
    logged["campaign_id"] = pd.Series([CAMPAIGN_OF_ACTION[a] for a in action], dtype="object")
    np.testing.assert_allclose(target_probabilities(long, logged), PI_TARGET[x, action])


def test_deterministic_probabilities():
    chosen = pd.DataFrame(
        {"customer_id": [1, 2, 3, 4], "campaign_id": pd.array([5, pd.NA, 6, 6], dtype="Int64"),
         "control": [False, False, True, False]}
    )
    logged = pd.DataFrame({"customer_id": [4, 3, 2, 1, 1], "campaign_id": [6, None, None, None, 5]})
    # Customer 3 is a control row: the target gives nothing, which is what was logged.
    np.testing.assert_allclose(deterministic_probabilities(chosen, logged), [1.0, 1.0, 1.0, 0.0, 1.0])
    np.testing.assert_allclose(
        deterministic_probabilities(chosen.drop(columns="control"), logged), [1.0, 0.0, 1.0, 0.0, 1.0]
    )


def test_deterministic_target_on_the_bandit_is_estimated_without_bias():
    best = MU.argmax(axis=1)  # nothing-or-campaign with the highest mean per context
    truth = true_value(np.eye(3)[best])
    assert truth == pytest.approx(0.6 * 2.0 + 0.4 * 4.0)
    values = []
    for seed in range(100):
        x, action, logged = draw_log(seed, n=1000)
        logged["campaign_id"] = pd.Series([CAMPAIGN_OF_ACTION[a] for a in action], dtype="object")
        chosen = pd.DataFrame(
            {"customer_id": logged["customer_id"], "campaign_id": [CAMPAIGN_OF_ACTION[b] for b in best[x]]}
        )
        target = deterministic_probabilities(chosen, logged)
        np.testing.assert_array_equal(target, (action == best[x]).astype(float))
        values.append(off_policy_value(logged, target, method="ips")["estimate"])
    values = np.array(values)
    assert abs(values.mean() - truth) < 4 * values.std(ddof=1) / math.sqrt(len(values))


# Errors.

LOGGED = pd.DataFrame({"propensity": [0.5, 0.25], "value": [1.0, 2.0]})


@pytest.mark.parametrize(
    ("logged", "target", "kwargs", "message"),
    [
        (LOGGED.drop(columns="value"), [1, 1], {}, r"lacks column\(s\) \['value'\]"),
        (LOGGED.drop(columns="propensity"), [1, 1], {}, r"lacks column\(s\) \['propensity'\]"),
        (LOGGED.assign(propensity=[0.0, 0.5]), [1, 1], {}, r"propensity must lie in \(0, 1\]"),
        (LOGGED.assign(propensity=[-0.1, 0.5]), [1, 1], {}, r"propensity must lie in \(0, 1\]"),
        (LOGGED.assign(propensity=[1.5, 0.5]), [1, 1], {}, r"propensity must lie in \(0, 1\]"),
        (LOGGED.assign(propensity=[np.nan, 0.5]), [1, 1], {}, "propensity holds missing values"),
        (LOGGED.assign(value=[np.nan, 0.5]), [1, 1], {}, "value holds missing values"),
        (LOGGED, [1.2, 1], {}, r"target_probability must lie in \[0, 1\]"),
        (LOGGED, [-0.2, 1], {}, r"target_probability must lie in \[0, 1\]"),
        (LOGGED, [np.nan, 1], {}, "target_probability holds missing values"),
        (LOGGED, [1, 1, 1], {}, "target_probability has 3 values but logged has 2 rows"),
        (LOGGED, [1, 1], {"method": "dm"}, "unknown method 'dm'"),
        (LOGGED, [1, 1], {"method": "dr"}, "needs reward_logged and reward_target"),
        (LOGGED, [1, 1], {"method": "dr", "reward_logged": [1, 1]}, "needs reward_logged and reward_target"),
        (LOGGED, [1, 1], {"method": "dr", "reward_target": [1, 1]}, "needs reward_logged and reward_target"),
        (LOGGED, [1, 1], {"method": "dr", "reward_logged": [1], "reward_target": [1, 1]}, "reward_logged has 1"),
        (LOGGED, [1, 1], {"method": "dr", "reward_logged": [1, 1], "reward_target": [1, np.nan]},
         "reward_target holds missing"),
        (LOGGED, [1, 1], {"confidence": 1.0}, "confidence must be between 0 and 1"),
    ],
)
def test_off_policy_value_errors(logged, target, kwargs, message):
    with pytest.raises(ValueError, match=message):
        off_policy_value(logged, target, **kwargs)


LONG = pd.DataFrame({"customer_id": [1, 1], "campaign_id": [None, 3], "probability": [0.4, 0.6]})
LOGGED_ACTIONS = pd.DataFrame({"customer_id": [1], "campaign_id": [3]})


@pytest.mark.parametrize(
    ("long", "logged", "message"),
    [
        (
            LONG.drop(columns="probability"),
            LOGGED_ACTIONS,
            r"probabilities_long frame lacks column\(s\) \['probability'\]",
        ),
        (LONG, LOGGED_ACTIONS.drop(columns="campaign_id"), r"logged frame lacks column\(s\) \['campaign_id'\]"),
        (LONG.assign(probability=[0.4, 1.6]), LOGGED_ACTIONS, r"probability must lie in \[0, 1\]"),
        (LONG.assign(probability=[0.4, np.nan]), LOGGED_ACTIONS, "probability holds missing values"),
        (LONG.assign(campaign_id=[None, None]), LOGGED_ACTIONS, "more than once"),
        (LONG, pd.DataFrame({"customer_id": [1, 2, 9], "campaign_id": [3, 3, None]}), r"2 logged row\(s\) have no row"),
        (LONG.assign(campaign_id=[None, 3.5]), LOGGED_ACTIONS, "integer ids or None"),
    ],
)
def test_target_probabilities_errors(long, logged, message):
    with pytest.raises(ValueError, match=message):
        target_probabilities(long, logged)


def test_deterministic_probabilities_errors():
    with pytest.raises(ValueError, match="more than one decision for customer_id \\[1\\]"):
        deterministic_probabilities(pd.DataFrame({"customer_id": [1, 1], "campaign_id": [2, 3]}), LOGGED_ACTIONS)
    with pytest.raises(ValueError, match=r"chosen frame lacks column\(s\) \['campaign_id'\]"):
        deterministic_probabilities(pd.DataFrame({"customer_id": [1]}), LOGGED_ACTIONS)
    with pytest.raises(ValueError, match="have no row"):
        deterministic_probabilities(pd.DataFrame({"customer_id": [2], "campaign_id": [3]}), LOGGED_ACTIONS)
