"""Order attribution: what each customer bought after a decision, within the window.

For every decision that could lead to an order (``send``, ``holdout``, ``control``) and whose
window is still open, ``outcomes_attribute(now=...)`` counts the customer's ``order_placed``
events in ``(decided_at, decided_at + window]`` (the campaign's ``attribution_days``, else
``OSCAR_JOURNEYS_ATTRIBUTION_DAYS``), and fills ``attributed_orders``, ``attributed_value``
(the orders' totals) and ``converted_at`` (the first of them). Once the window has passed
the decision is closed and never read again.

Held-out and control decisions are attributed exactly like sends, so the uplift of a
campaign is the difference between the two groups' figures. A send counts whatever became
of its message (intention to treat: a failed send is still what the policy chose). Each
decision is attributed on its own: an order that follows two messages counts for both,
which is what a per-campaign uplift over its own holdout needs.

Vectorised: the open decisions are read in one query, sorted by customer and processed in
chunks; each chunk reads the orders of its customers in one query.
"""

import logging
from decimal import Decimal

import numpy as np
import pandas as pd
from django.db.models.functions import Coalesce
from django.utils import timezone

from .. import app_settings
from ..ml import schema
from ..models import Campaign, Decision, Event
from ..selectors import chunks

logger = logging.getLogger(__name__)

ATTRIBUTED_OUTCOMES = (Decision.SEND, Decision.HOLDOUT, Decision.CONTROL, Decision.NOTHING)
CHUNK = 20_000
COLUMNS = ["decision_id", "customer_id", "campaign_id", "decided_at", "orders", "value", "converted_at"]


def outcomes_attribute(*, now=None):
    """Attribute orders to the open decisions as of ``now``; return counts: ``open``
    (decisions looked at), ``updated`` (figures changed), ``closed``."""
    now = now or timezone.now()
    rows = (
        Decision.objects.filter(attribution_closed=False, outcome__in=ATTRIBUTED_OUTCOMES, decided_at__lte=now)
        .annotate(canonical=Coalesce("customer__merged_into_id", "customer_id"))
        .values_list("id", "canonical", "campaign_id", "decided_at", "attributed_orders", "attributed_value",
                     "converted_at")
    )
    frame = pd.DataFrame.from_records(list(rows), columns=COLUMNS)
    counts = {"open": len(frame), "updated": 0, "closed": 0}
    if not len(frame):
        return counts
    frame["decided_at"] = pd.to_datetime(frame["decided_at"], utc=True)
    frame["converted_at"] = pd.to_datetime(frame["converted_at"], utc=True)
    frame["value"] = frame["value"].astype("float64")
    frame["window"] = _windows(frame["campaign_id"])
    frame = frame.sort_values(["customer_id", "decision_id"], kind="stable").reset_index(drop=True)
    for start in range(0, len(frame), CHUNK):
        part = frame.iloc[start : start + CHUNK]
        updated, closed = _attribute_chunk(part, now=now)
        counts["updated"] += updated
        counts["closed"] += closed
    logger.info("attribution: %(open)d open decisions, %(updated)d updated, %(closed)d closed", counts)
    return counts


def _windows(campaign_ids):
    days = dict(Campaign.objects.filter(attribution_days__isnull=False).values_list("id", "attribution_days"))
    default = int(app_settings.ATTRIBUTION_DAYS)
    values = campaign_ids.map(lambda pk: days.get(pk, default) if pk == pk and pk is not None else default)
    return pd.to_timedelta(values.astype("int64"), unit="D")


def _attribute_chunk(part, *, now):
    customers = part["customer_id"].to_numpy(dtype="int64")
    orders = Event.objects.filter(
        type=schema.ORDER_PLACED,
        occurred_at__gt=part["decided_at"].min().to_pydatetime(),
        occurred_at__lte=now,
        customer_id__gte=int(customers.min()),
        customer_id__lte=int(customers.max()),
    ).values_list("customer_id", "occurred_at", "value")
    orders = pd.DataFrame.from_records(list(orders), columns=["customer_id", "occurred_at", "order_value"])
    orders["occurred_at"] = pd.to_datetime(orders["occurred_at"], utc=True)
    orders["order_value"] = pd.to_numeric(orders["order_value"]).astype("float64").fillna(0.0)
    pairs = part[["decision_id", "customer_id", "decided_at", "window"]].merge(orders, on="customer_id")
    pairs = pairs[(pairs["occurred_at"] > pairs["decided_at"]) & (pairs["occurred_at"] <= pairs["decided_at"] + pairs["window"])]
    found = pairs.groupby("decision_id").agg(
        new_orders=("occurred_at", "size"), new_value=("order_value", "sum"), new_converted=("occurred_at", "min")
    )
    part = part.join(found, on="decision_id")
    new_orders = part["new_orders"].fillna(0).astype("int64").to_numpy()
    new_value = part["new_value"].fillna(0.0).round(2).to_numpy()
    new_converted = pd.DatetimeIndex(part["new_converted"])
    closing = (part["decided_at"] + part["window"] <= pd.Timestamp(now)).to_numpy()
    old_converted = pd.DatetimeIndex(part["converted_at"])
    same_converted = (old_converted == new_converted) | (old_converted.isna() & new_converted.isna())
    changed = (
        (new_orders != part["orders"].to_numpy(dtype="int64"))
        | ~np.isclose(new_value, part["value"].to_numpy(dtype="float64"))
        | ~np.asarray(same_converted)
    )
    objs = [
        Decision(
            pk=int(pk), attributed_orders=int(n), attributed_value=Decimal(f"{v:.2f}"),
            converted_at=None if pd.isna(c) else c.to_pydatetime(), attribution_closed=bool(close),
        )
        for pk, n, v, c, close in zip(
            part["decision_id"].to_numpy()[changed], new_orders[changed], new_value[changed], new_converted[changed],
            closing[changed],
        )
    ]
    if objs:
        Decision.objects.bulk_update(
            objs, ["attributed_orders", "attributed_value", "converted_at", "attribution_closed"], batch_size=500
        )
    only_closing = part["decision_id"].to_numpy()[closing & ~changed].tolist()
    for chunk in chunks(only_closing):
        Decision.objects.filter(pk__in=chunk).update(attribution_closed=True)
    return int(changed.sum()), int(closing.sum())

