"""Off-policy evaluation: what a target policy would have earned, estimated from the
decisions another policy (the logging policy) actually took.

Pure numpy / pandas / scipy (no Django). Each logged row is one decision: the action the
customer received (a campaign, or nothing), the probability the logging policy had of
giving exactly that (``propensity``) and the value attributed to it (``value``). The
target policy is described, row by row, by the probability it would have given the same
action to the same customer (``target_probability``; 1 or 0 for a deterministic policy).
The ratio of the two, w = target_probability / propensity, is the row's importance
weight: rows the target would favour count more, rows it would never produce count zero.

``off_policy_value`` offers three estimators of the target's mean value per decision:

- ``"ips"`` (inverse propensity scoring, Horvitz-Thompson): the mean of w * value.
  Unbiased whenever every action the target may take had a positive logging propensity,
  but noisy when the weights are large.
- ``"snips"`` (self-normalised IPS, Hájek): sum(w * value) / sum(w). A little biased in
  small samples (the bias shrinks like 1/n) but usually much less variable, and it stays
  inside the range of the observed values. Its interval comes from the delta method.
- ``"dr"`` (doubly robust): the mean of reward_target + w * (value - reward_logged), where
  a reward model predicts q(x, a), the expected value of action a for the customer:
  ``reward_logged`` is q for the logged action, ``reward_target`` the target's expected
  q, sum over actions of pi(a | x) q(x, a). Unbiased when the propensities are right,
  whatever the model; the better the model, the smaller the variance (with the true model
  only the noise of the values themselves remains).

Every estimator returns a dict in the style of ``ml.uplift``: ``estimate``, ``low`` and
``high`` (a normal interval at ``confidence`` built from the per-row terms, or None when
it cannot be computed), ``n``, ``effective_sample_size`` ((sum w)^2 / sum w^2: how many
rows the estimate is really worth; far below ``n`` means a few large weights dominate and
the interval is not to be trusted), ``method`` and ``confidence``.

Read the interval as: over repeated logs drawn the same way, intervals built like this
would miss the target's true value about ``1 - confidence`` of the time. It is a large-
sample interval; with few rows, or an effective sample size of a few dozen, it is too
narrow.

``target_probabilities`` and ``deterministic_probabilities`` turn a target policy's output
(the long frame of ``JourneyPolicy.probabilities``, or a decision frame of a deterministic
policy such as ``ManualPriorityPolicy.decide``) into the ``target_probability`` array,
aligned with the logged rows.
"""

import math

import numpy as np
import pandas as pd
from scipy import stats

IPS = "ips"
SNIPS = "snips"
DR = "dr"
METHODS = (IPS, SNIPS, DR)

# Probabilities computed in float32 (the policies may) can stray this far past 0 or 1.
_TOLERANCE = 1e-6


def _check_confidence(confidence):
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1 (exclusive), got {confidence!r}")


def _array(values, name, n):
    """``values`` as a 1-d float array of length ``n`` without NaN, or a ValueError saying
    which input is wrong."""
    try:
        array = np.asarray(values, dtype=float).ravel()
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be numbers: {error}") from None
    if len(array) != n:
        raise ValueError(f"{name} has {len(array)} values but logged has {n} rows; give one per logged row")
    if np.isnan(array).any():
        raise ValueError(f"{name} holds missing values (NaN) at {int(np.isnan(array).sum())} row(s)")
    return array


def _probabilities(values, name, n, *, zero_allowed):
    array = _array(values, name, n)
    low_bad = array < -_TOLERANCE if zero_allowed else array <= 0
    bad = low_bad | (array > 1 + _TOLERANCE)
    if bad.any():
        allowed = "[0, 1]" if zero_allowed else "(0, 1]"
        raise ValueError(
            f"{name} must lie in {allowed}; {int(bad.sum())} row(s) do not, e.g. {array[bad][:3].tolist()}"
        )
    return np.clip(array, 0.0, 1.0)


def _result(method, estimate, se, n, weights, confidence):
    """The result dict; the interval is None when the standard error is unknown or zero
    (no spread among the per-row terms to judge the uncertainty from)."""
    sum_w, sum_w2 = float(weights.sum()), float((weights**2).sum())
    result = {
        "estimate": estimate,
        "low": None,
        "high": None,
        "n": n,
        "effective_sample_size": sum_w * sum_w / sum_w2 if sum_w2 > 0 else 0.0,
        "method": method,
        "confidence": confidence,
    }
    if estimate is not None and se is not None and math.isfinite(se) and se > 0:
        half = float(stats.norm.ppf((1 + confidence) / 2)) * se
        result["low"], result["high"] = estimate - half, estimate + half
    return result


def _mean_and_se(terms):
    """Mean of the per-row terms and its standard error (sample sd with ddof=1 over
    sqrt(n)); the error is None for fewer than two rows."""
    mean = float(terms.mean())
    if len(terms) < 2:
        return mean, None
    return mean, float(terms.std(ddof=1)) / math.sqrt(len(terms))


def off_policy_value(
    logged, target_probability, *, method=IPS, reward_logged=None, reward_target=None, confidence=0.95
):
    """Estimate the mean value per decision the target policy would have earned on the
    logged decisions.

    ``logged``: DataFrame with ``propensity`` (the logging policy's probability of the
    logged action, in (0, 1]) and ``value`` (the value attributed to the decision).
    ``target_probability``: array-like, one per logged row, the target policy's
    probability of the logged action, in [0, 1]. ``method``: ``"ips"``, ``"snips"`` or
    ``"dr"`` (see the module docstring). ``"dr"`` needs ``reward_logged`` (the reward
    model's prediction for the logged action, per row) and ``reward_target`` (the model's
    expected value under the target policy, per row); the other methods ignore them.

    Intervals: for IPS and DR the normal interval of the mean of the per-row terms (w *
    value, or reward_target + w * (value - reward_logged)); for SNIPS the delta-method
    standard error sqrt(sum w^2 (value - estimate)^2) / sum w. ``low``/``high`` are None
    with fewer than two rows or when the terms do not vary. With no rows at all, or (SNIPS)
    when the target gives none of the logged actions (every weight 0), ``estimate`` is
    None too: the log says nothing about the target."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; use one of {list(METHODS)}")
    _check_confidence(confidence)
    missing = {"propensity", "value"} - set(logged.columns)
    if missing:
        raise ValueError(f"logged frame lacks column(s) {sorted(missing)}")
    n = len(logged)
    propensity = _probabilities(logged["propensity"], "propensity", n, zero_allowed=False)
    target = _probabilities(target_probability, "target_probability", n, zero_allowed=True)
    value = _array(logged["value"], "value", n)
    if method == DR:
        if reward_logged is None or reward_target is None:
            raise ValueError("method 'dr' needs reward_logged and reward_target (the reward model's predictions)")
        reward_logged = _array(reward_logged, "reward_logged", n)
        reward_target = _array(reward_target, "reward_target", n)
    weights = target / propensity
    if n == 0:
        return _result(method, None, None, 0, weights, confidence)
    if method == IPS:
        estimate, se = _mean_and_se(weights * value)
    elif method == DR:
        estimate, se = _mean_and_se(reward_target + weights * (value - reward_logged))
    else:
        total = float(weights.sum())
        if total <= 0:
            return _result(method, None, None, n, weights, confidence)
        estimate = float((weights * value).sum()) / total
        se = math.sqrt(float((weights**2 * (value - estimate) ** 2).sum())) / total if n >= 2 else None
    return _result(method, estimate, se, n, weights, confidence)


def _action_columns(campaign_ids, frame_name):
    """Split a campaign id column into (nothing: bool array, id: int64 array with 0 where
    nothing), so that None / NaN / NA match each other in a join and ids match as ints."""
    series = pd.Series(campaign_ids).reset_index(drop=True)
    nothing = series.isna().to_numpy()
    try:
        ids = pd.to_numeric(series.where(~nothing, 0)).to_numpy(dtype="float64")
    except (TypeError, ValueError) as error:
        raise ValueError(f"{frame_name} campaign_id must be integer ids or None: {error}") from None
    if (ids != np.round(ids)).any():
        raise ValueError(f"{frame_name} campaign_id must be integer ids or None")
    return nothing, ids.astype("int64")


def target_probabilities(probabilities_long, logged, *, key="customer_id"):
    """The target policy's probability of each logged action: an array aligned with the
    rows of ``logged``, for ``off_policy_value``.

    ``probabilities_long``: one row per option of each decision, columns ``key``,
    ``campaign_id`` (None / NaN / NA = nothing) and ``probability`` (the shape of
    ``JourneyPolicy.probabilities``). ``logged``: columns ``key`` and ``campaign_id`` (None
    / NaN / NA = the customer received nothing). Rows are matched on ``key`` and the
    campaign, "nothing" matching "nothing" whatever missing marker each frame uses. An
    action the target never gives that decision (no row) gets 0.

    ``key`` is ``customer_id`` by default; when a customer has several logged decisions,
    name a column identifying the decision (a ``decision_id``) present in both frames.
    A ValueError names the problem when a column is missing, an option appears twice, a
    probability is NaN or outside [0, 1], or a logged decision has no row at all in
    ``probabilities_long`` (the target was not asked about it: its probability is
    unknown, not 0)."""
    for frame, name, needed in (
        (probabilities_long, "probabilities_long", {key, "campaign_id", "probability"}),
        (logged, "logged", {key, "campaign_id"}),
    ):
        missing = needed - set(frame.columns)
        if missing:
            raise ValueError(f"{name} frame lacks column(s) {sorted(missing)}")
    probability = _probabilities(
        probabilities_long["probability"], "probability", len(probabilities_long), zero_allowed=True
    )
    nothing, ids = _action_columns(probabilities_long["campaign_id"], "probabilities_long")
    options = pd.DataFrame(
        {
            "_key": probabilities_long[key].to_numpy(),
            "_nothing": nothing,
            "_campaign": ids,
            "_probability": probability,
        }
    )
    duplicated = options.duplicated(["_key", "_nothing", "_campaign"])
    if duplicated.any():
        examples = options.loc[duplicated, "_key"].head(3).tolist()
        raise ValueError(f"probabilities_long lists an option more than once (for {key} {examples})")
    nothing, ids = _action_columns(logged["campaign_id"], "logged")
    rows = pd.DataFrame({"_key": logged[key].to_numpy(), "_nothing": nothing, "_campaign": ids})
    unknown = ~rows["_key"].isin(options["_key"]).to_numpy()
    if unknown.any():
        examples = rows.loc[unknown, "_key"].drop_duplicates().head(3).tolist()
        raise ValueError(
            f"{int(unknown.sum())} logged row(s) have no row in probabilities_long (e.g. {key} {examples}); "
            "ask the target policy about every logged decision"
        )
    joined = rows.merge(options, on=["_key", "_nothing", "_campaign"], how="left", sort=False)
    return joined["_probability"].fillna(0.0).to_numpy(dtype="float64")


def deterministic_probabilities(chosen, logged, *, key="customer_id"):
    """The probability of each logged action under a deterministic target policy: 1.0
    where the logged action is the one the target chose for that decision, else 0.0
    (None / NaN / NA match each other as "nothing"). An array aligned with ``logged``.

    ``chosen``: the target's decision frame, one row per ``key`` with ``campaign_id`` (the
    shape of ``ManualPriorityPolicy.decide``). When it has a ``control`` column, a row with
    ``control`` True counts as nothing: that is what the customer would have received.
    ``logged``: columns ``key`` and ``campaign_id``. Errors as in
    ``target_probabilities``, plus a decision chosen twice."""
    missing = {key, "campaign_id"} - set(chosen.columns)
    if missing:
        raise ValueError(f"chosen frame lacks column(s) {sorted(missing)}")
    if chosen[key].duplicated().any():
        examples = chosen.loc[chosen[key].duplicated(), key].head(3).tolist()
        raise ValueError(f"chosen holds more than one decision for {key} {examples}; a deterministic policy makes one")
    campaign = pd.Series(chosen["campaign_id"].to_numpy(), dtype="object")
    if "control" in chosen.columns:
        campaign = campaign.where(~chosen["control"].to_numpy(dtype=bool, na_value=False), None)
    long = pd.DataFrame(
        {key: chosen[key].to_numpy(), "campaign_id": campaign.to_numpy(), "probability": np.ones(len(chosen))}
    )
    return target_probabilities(long, logged, key=key)
