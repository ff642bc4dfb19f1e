"""Manual priority: today's practice, kept as the baseline the self-optimizing policy is
compared with. Each customer gets the eligible campaign the shop owner ranked highest."""

import numpy as np
import pandas as pd

DECISION_COLUMNS = ("customer_id", "campaign_id", "propensity", "expected_value", "control")


class ManualPriorityPolicy:
    """Choose, per customer, the eligible campaign with the highest ``priority``; between
    equal priorities, the lowest ``campaign_id``.

    ``campaigns``: DataFrame with one row per campaign, columns ``campaign_id`` and
    ``priority`` (higher wins). Deterministic: every choice has propensity 1.0, no expected
    value (NaN) and nobody is held out here (``control`` False; the global control group and
    the campaign holdouts are drawn by the decision round, see ``ml.rules``)."""

    name = "manual"

    def __init__(self, campaigns):
        missing = {"campaign_id", "priority"} - set(campaigns.columns)
        if missing:
            raise ValueError(f"campaigns frame lacks column(s) {sorted(missing)}")
        if campaigns["campaign_id"].duplicated().any():
            raise ValueError("campaigns frame names a campaign more than once")
        self.priorities = pd.Series(
            campaigns["priority"].to_numpy(dtype="float64"),
            index=campaigns["campaign_id"].to_numpy(dtype="int64"),
        )

    def decide(self, features, eligible, now, seed=None):
        """One row per customer in ``eligible`` (pairs ``customer_id``, ``campaign_id``):
        ``customer_id``, ``campaign_id``, ``propensity`` (1.0), ``expected_value`` (NaN),
        ``control`` (False), ordered by customer id. ``features``, ``now`` and ``seed`` are
        accepted for the common policy interface and not used."""
        customers = eligible["customer_id"].to_numpy(dtype="int64")
        campaigns = eligible["campaign_id"].to_numpy(dtype="int64")
        priority = self.priorities.reindex(campaigns).to_numpy()
        unknown = np.isnan(priority)
        if unknown.any():
            raise ValueError(f"eligible names campaign(s) without a priority: {sorted(set(campaigns[unknown].tolist()))}")
        # Sort by customer, then priority descending, then campaign ascending; keep the first.
        order = np.lexsort((campaigns, -priority, customers))
        customers, campaigns = customers[order], campaigns[order]
        first = np.ones(len(customers), dtype=bool)
        first[1:] = customers[1:] != customers[:-1]
        n = int(first.sum())
        return pd.DataFrame(
            {
                "customer_id": customers[first],
                "campaign_id": campaigns[first],
                "propensity": np.ones(n),
                "expected_value": np.full(n, np.nan),
                "control": np.zeros(n, dtype=bool),
            },
            columns=list(DECISION_COLUMNS),
        )
