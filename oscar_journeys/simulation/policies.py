"""Baseline policies for the simulated shop, with the common ``decide(features, eligible,
now, seed=None)`` of ``optimizer.ManualPriorityPolicy`` and ``optimizer.JourneyPolicy``:

- ``RandomPolicy``: uniform over each customer's eligible campaigns and nothing. The
  floor, and a logging policy with known propensities for off-policy estimates.
- ``NothingPolicy``: never sends. Its true incremental value is 0 by definition; its
  realized value is what the shop earns without messages.
- ``OraclePolicy``: knows every customer's hidden type and the world's exact numbers, and
  sends the campaign worth most, counting the follow-ups it opens: the ceiling no policy
  that sees only the features can reach.

The manual baseline is ``optimizer.ManualPriorityPolicy(world.campaigns)``.
"""

import numpy as np
import pandas as pd

from ..optimizer.manual import DECISION_COLUMNS
from . import world as world_module


def _pairs(eligible):
    """The eligible pairs sorted by customer then campaign, and per customer: the ids, the
    first pair's position and the number of pairs."""
    missing = {"customer_id", "campaign_id"} - set(eligible.columns)
    if missing:
        raise ValueError(f"eligible lacks column(s) {sorted(missing)}")
    customers = eligible["customer_id"].to_numpy(dtype="int64")
    campaigns = eligible["campaign_id"].to_numpy(dtype="int64")
    order = np.lexsort((campaigns, customers))
    customers, campaigns = customers[order], campaigns[order]
    ids, first, counts = np.unique(customers, return_index=True, return_counts=True)
    return customers, campaigns, ids, first, counts


def _frame(ids, chosen, propensity, expected_value):
    """A decision frame (DECISION_COLUMNS); ``chosen`` is float with NaN for nothing."""
    return pd.DataFrame(
        {
            "customer_id": ids,
            "campaign_id": pd.array(chosen, dtype="Float64").astype("Int64"),
            "propensity": propensity,
            "expected_value": expected_value,
            "control": np.zeros(len(ids), dtype=bool),
        },
        columns=list(DECISION_COLUMNS),
    )


class RandomPolicy:
    """Each customer gets one of their K eligible campaigns or nothing, each with
    probability 1 / (K + 1), drawn with numpy's Generator(``seed``). ``expected_value`` is
    NaN (no model); nobody is held out."""

    name = "random"

    def decide(self, features, eligible, now, seed=None):
        _, campaigns, ids, first, counts = _pairs(eligible)
        rng = np.random.default_rng(seed)
        pick = np.minimum((rng.random(len(ids)) * (counts + 1)).astype("int64"), counts)
        sends = pick < counts
        chosen = np.full(len(ids), np.nan)
        chosen[sends] = campaigns[first[sends] + pick[sends]]
        return _frame(ids, chosen, 1.0 / (counts + 1), np.full(len(ids), np.nan))


class NothingPolicy:
    """Never sends anything (propensity 1.0, expected value 0.0)."""

    name = "nothing"

    def decide(self, features, eligible, now, seed=None):
        _, _, ids, _, _ = _pairs(eligible)
        return _frame(ids, np.full(len(ids), np.nan), np.ones(len(ids)), np.zeros(len(ids)))


def follow_up_values(uplift, p_buy, follow_ups, *, discount, depth):
    """Value of each action per type, counting follow-ups: V[t, a] = uplift[t, a] +
    discount * max(0, max over a's follow-ups b of factor * V[t, b]), to ``depth`` hops.
    The factor is 1 for condition "any", the chance the customer responds to a
    (``p_buy[t, a]``) for "responded", 1 minus it for "not_responded". ``uplift`` and
    ``p_buy``: arrays types x actions, the action index being the campaign id."""
    values = uplift.copy()
    for _ in range(depth):
        best = np.zeros_like(uplift)
        for follow in follow_ups.itertuples(index=False):
            a, b = int(follow.campaign_id), int(follow.follow_up_id)
            condition = getattr(follow, "condition", "any") or "any"
            factor = {"any": 1.0, "responded": p_buy[:, a], "not_responded": 1.0 - p_buy[:, a]}[condition]
            best[:, a] = np.maximum(best[:, a], factor * values[:, b])
        values = uplift + discount * best
    return values


class OraclePolicy:
    """Knows the hidden types: sends each customer the eligible campaign with the highest
    true value (its uplift plus ``discount`` times the best follow-up it opens, to ``depth``
    hops), or nothing when no campaign is worth more than 0. Deterministic (propensity
    1.0); ties go to the lowest campaign id. ``expected_value`` is that true value (0.0 for
    nothing)."""

    name = "oracle"

    def __init__(self, world, discount=0.8, depth=2):
        if not 0 <= discount <= 1:
            raise ValueError(f"discount must be between 0 and 1, got {discount!r}")
        if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 0:
            raise ValueError(f"depth must be a whole number, 0 or more, got {depth!r}")
        self.world = world
        self.discount = discount
        self.values = follow_up_values(
            world_module.UPLIFT, world_module.P_BUY, world.follow_ups, discount=discount, depth=depth
        )

    def decide(self, features, eligible, now, seed=None):
        customers, campaigns, ids, first, counts = _pairs(eligible)
        value = self.values[self.world.type_index(customers), campaigns]
        # Per customer: highest value first, then the lowest campaign id; keep the first.
        order = np.lexsort((campaigns, -value, customers))
        best = order[first]
        best_value = value[best]
        sends = best_value > 0
        chosen = np.where(sends, campaigns[best], np.nan)
        return _frame(ids, chosen, np.ones(len(ids)), np.where(sends, best_value, 0.0))
