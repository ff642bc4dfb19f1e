"""Lifecycle stages: where each customer stands in their relationship with the shop.

Pure pandas/numpy (no Django). Input is the snapshot frame documented in
:mod:`oscar_journeys.ml.schema` (one row per customer, rows in any order).

Thresholds (``fit_thresholds``), learned from the shop's own customers:

- ``cycle_days``, the shop's typical purchase cycle: the median ``avg_days_between_orders``
  of the repeat buyers (two orders or more). With fewer than 20 repeat buyers the median
  says little, so the cycle falls back to 90 days. It is clipped to [7, 365] days.
- ``new_days = cycle``, ``at_risk_days = 2 x cycle``, ``churned_days = 4 x cycle``.
- ``high_value_monetary``: the ``high_value_quantile`` (0.8) quantile of ``monetary`` over
  the buyers (frequency > 0); infinite (nobody is high value) without buyers.

The shop owner may override ``new_days``, ``at_risk_days``, ``churned_days`` and
``high_value_quantile``; an override wins and the others are still learned. Days must be
positive numbers, the quantile must lie strictly between 0 and 1, and ``at_risk_days`` must
stay below ``churned_days`` once the overrides are applied; anything else raises
``ValueError`` naming the key. A ``None`` value means "not overridden".

Stages (``assign_stages``): the first rule that matches wins.

1. no order yet (``frequency == 0``)                            -> prospect
2. ``recency_days > churned_days``                              -> churned
3. ``recency_days > at_risk_days``                              -> at_risk
4. yesterday churned (or reactivated, with one order in 90 days),
   ``recency_days <= new_days``                                  -> reactivated
5. one order, placed within ``new_days`` (``first_order_days``)  -> new
6. ``monetary >= high_value_monetary``                          -> high_value
7. anyone else                                                  -> active

"Reactivated" needs yesterday's stage (``previous``); without it a returning customer is
new, high value or active. A reactivated customer stays reactivated until the returning
order is ``new_days`` old, or until they order again (a second order in the last 90 days,
``orders_90d``): then they are active (or high value) again.

``transitions`` compares two days' stages and lists the customers whose stage changed,
which the nightly chain records as ``lifecycle_stage_changed`` events.

Everything is column arithmetic (``np.select`` over the rules): 1M rows take well under a
second.
"""

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from . import schema

DEFAULT_CYCLE_DAYS = 90.0
MIN_REPEAT_BUYERS = 20
CYCLE_BOUNDS = (7.0, 365.0)
NEW_CYCLES, AT_RISK_CYCLES, CHURNED_CYCLES = 1, 2, 4
HIGH_VALUE_QUANTILE = 0.8
OVERRIDABLE = ("new_days", "at_risk_days", "churned_days", "high_value_quantile")


@dataclass(frozen=True)
class Thresholds:
    """The fitted lifecycle thresholds (days and money); see the module docstring."""

    cycle_days: float
    new_days: float
    at_risk_days: float
    churned_days: float
    high_value_quantile: float = HIGH_VALUE_QUANTILE
    high_value_monetary: float = math.inf
    overridden: tuple = ()

    def as_dict(self):
        """JSON-safe: plain floats, ``None`` for an infinite or undefined value."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, float) and not math.isfinite(value):
                out[key] = None
        out["overridden"] = list(self.overridden)
        return out


def check_overrides(overrides):
    """The overrides as floats by key (None values left out); ``ValueError`` naming the key
    for an unknown key or a bad value, and for ``at_risk_days >= churned_days`` when both
    are given."""
    clean = {}
    for key, value in (overrides or {}).items():
        if key not in OVERRIDABLE:
            raise ValueError(f"unknown lifecycle threshold {key!r}; expected one of {', '.join(OVERRIDABLE)}")
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise ValueError(f"lifecycle threshold {key!r} must be a number, got {value!r}")
        value = float(value)
        if key == "high_value_quantile":
            if not 0 < value < 1:
                raise ValueError(f"lifecycle threshold {key!r} must be between 0 and 1 (exclusive), got {value!r}")
        elif not (math.isfinite(value) and value > 0):
            raise ValueError(f"lifecycle threshold {key!r} must be a positive number of days, got {value!r}")
        clean[key] = value
    if "at_risk_days" in clean and "churned_days" in clean and clean["at_risk_days"] >= clean["churned_days"]:
        raise ValueError(
            f"lifecycle threshold 'at_risk_days': at_risk_days ({clean['at_risk_days']:g}) must be below "
            f"churned_days ({clean['churned_days']:g})"
        )
    return clean


def _cycle_days(snapshots):
    gaps = snapshots["avg_days_between_orders"].to_numpy(dtype="float64")
    repeat = (snapshots["frequency"].to_numpy(dtype="float64") >= 2) & ~np.isnan(gaps)
    if repeat.sum() < MIN_REPEAT_BUYERS:
        return DEFAULT_CYCLE_DAYS
    return float(np.clip(np.median(gaps[repeat]), *CYCLE_BOUNDS))


def fit_thresholds(snapshots, overrides=None):
    """Learn the thresholds from ``snapshots``, then apply the owner's ``overrides``.

    Never raises for lack of data (it falls back to the defaults); raises ``ValueError``
    naming the key for a bad override."""
    chosen = check_overrides(overrides)
    cycle = _cycle_days(snapshots)
    days = {
        "new_days": chosen.get("new_days", NEW_CYCLES * cycle),
        "at_risk_days": chosen.get("at_risk_days", AT_RISK_CYCLES * cycle),
        "churned_days": chosen.get("churned_days", CHURNED_CYCLES * cycle),
    }
    if days["at_risk_days"] >= days["churned_days"]:
        key = "at_risk_days" if "at_risk_days" in chosen else "churned_days"
        raise ValueError(
            f"lifecycle threshold {key!r}: at_risk_days ({days['at_risk_days']:g}) must be below "
            f"churned_days ({days['churned_days']:g})"
        )
    quantile = chosen.get("high_value_quantile", HIGH_VALUE_QUANTILE)
    frequency = snapshots["frequency"].to_numpy(dtype="float64")
    monetary = snapshots["monetary"].to_numpy(dtype="float64")
    spent = monetary[(frequency > 0) & ~np.isnan(monetary)]
    high_value = float(np.quantile(spent, quantile)) if len(spent) else math.inf
    return Thresholds(
        cycle_days=cycle,
        high_value_quantile=quantile,
        high_value_monetary=high_value,
        overridden=tuple(key for key in OVERRIDABLE if key in chosen),
        **days,
    )


def assign_stages(snapshots, thresholds, previous=None):
    """The stage code of every row of ``snapshots`` (numpy object array, row order kept).

    ``previous``: yesterday's stage codes, a Series indexed by customer_id (or None)."""
    t = thresholds
    frequency = np.nan_to_num(snapshots["frequency"].to_numpy(dtype="float64"), nan=0.0)
    recency = snapshots["recency_days"].to_numpy(dtype="float64")
    first_order = snapshots["first_order_days"].to_numpy(dtype="float64")
    monetary = snapshots["monetary"].to_numpy(dtype="float64")
    if previous is not None and len(previous):
        before = snapshots["customer_id"].map(previous).to_numpy(dtype=object)
        one_order = snapshots["orders_90d"].to_numpy(dtype="float64") <= 1
        was_lapsed = (before == schema.CHURNED) | ((before == schema.REACTIVATED) & one_order)
    else:
        was_lapsed = np.zeros(len(snapshots), dtype=bool)
    # NaN compares False, so a buyer without recency falls through to the later rules.
    conditions = [
        frequency <= 0,
        recency > t.churned_days,
        recency > t.at_risk_days,
        was_lapsed & (recency <= t.new_days),
        (frequency == 1) & (first_order <= t.new_days),
        monetary >= t.high_value_monetary,
    ]
    choices = [schema.PROSPECT, schema.CHURNED, schema.AT_RISK, schema.REACTIVATED, schema.NEW, schema.HIGH_VALUE]
    return np.select(conditions, np.array(choices, dtype=object), default=schema.ACTIVE).astype(object)


def transitions(previous, current):
    """Customers whose stage changed between two days.

    ``previous`` and ``current``: Series of stage codes indexed by customer_id. A customer
    absent from ``previous`` (or with an empty stage there) counts as coming from "" unless
    they are a prospect now. Returns a DataFrame (customer_id, from, to) sorted by
    customer_id."""
    current = current.astype(object)
    if previous is None:
        previous = pd.Series(dtype=object)
    before = previous.reindex(current.index).astype(object)
    before = before.where(before.notna(), "")
    changed = (before != current) & ~((before == "") & (current == schema.PROSPECT))
    out = pd.DataFrame(
        {
            "customer_id": current.index[changed.to_numpy()].to_numpy(dtype="int64"),
            "from": before[changed].to_numpy(dtype=object),
            "to": current[changed].to_numpy(dtype=object),
        }
    )
    return out.sort_values("customer_id", kind="stable", ignore_index=True)
