"""Browse abandoned: a known customer viewed products, then did nothing for the first step's
delay: no basket addition and no order after their last view.

- Views count from ``BROWSE_WINDOW`` (48 hours) before the abandonment cut-off (``now -
  delay``), and not before the campaign was created or starts: a view older than that is
  past interest, not abandonment;
- with ``Campaign.products`` / ``Campaign.categories``: only customers who viewed one of
  them in that window, and the context lists only those;
- anonymous visitors (no account, email or phone) are left out;
- triggered at the last view; key ``browse:<last view, epoch seconds>``; context
  ``{"product_ids": [...]}``: the last three distinct products viewed, latest first.
"""

import datetime as dt

import numpy as np
import pandas as pd
from django.db.models import BooleanField, Case, Value, When
from django.db.models.functions import Coalesce

from ...ml import schema
from ...models import Event
from .base import epoch_seconds, identified, occurrences, product_condition, to_utc, window_start

BROWSE_WINDOW = dt.timedelta(hours=48)
PRODUCTS_IN_CONTEXT = 3


def find(campaign, *, now, delay):
    cutoff = now - delay
    since = max(cutoff - BROWSE_WINDOW, window_start(campaign, now, lookback=delay + BROWSE_WINDOW))
    condition = product_condition(campaign)
    matches = Value(True) if condition is None else Case(When(condition, then=Value(True)), default=Value(False))
    rows = (
        Event.objects.filter(
            type__in=[schema.PRODUCT_VIEWED, schema.BASKET_ADDITION, schema.ORDER_PLACED],
            occurred_at__gte=since,
            occurred_at__lte=now,
        )
        .filter(identified())
        .annotate(
            canonical=Coalesce("customer__merged_into_id", "customer_id"),
            matches=Coalesce(matches, Value(False), output_field=BooleanField()),
        )
        .values_list("canonical", "type", "occurred_at", "product_id", "matches")
    )
    events = pd.DataFrame.from_records(
        list(rows), columns=["customer_id", "type", "occurred_at", "product_id", "matches"]
    )
    if events.empty:
        return occurrences()
    events["occurred_at"] = to_utc(events["occurred_at"])
    viewed = events["type"] == schema.PRODUCT_VIEWED
    views = events[viewed]
    last_view = views.groupby("customer_id")["occurred_at"].max()
    last_action = events[~viewed].groupby("customer_id")["occurred_at"].max().reindex(last_view.index)
    abandoned = (last_view <= pd.Timestamp(cutoff)) & ~(last_action >= last_view)
    wanted = views[views["matches"].astype(bool) & views["product_id"].notna()]
    abandoned &= last_view.index.isin(wanted["customer_id"].unique())
    last_view = last_view[abandoned]
    if last_view.empty:
        return occurrences()
    # The last distinct products each customer viewed, latest first.
    recent = (
        wanted[wanted["customer_id"].isin(last_view.index)]
        .sort_values(["customer_id", "occurred_at"], ascending=[True, False], kind="stable")
        .drop_duplicates(["customer_id", "product_id"])
    )
    recent = recent[recent.groupby("customer_id").cumcount() < PRODUCTS_IN_CONTEXT]
    products = recent.groupby("customer_id")["product_id"].agg(lambda ids: [int(pk) for pk in ids])
    customers = last_view.index.to_numpy(dtype=np.int64)
    return occurrences(
        pd.Series(customers),
        "browse:" + epoch_seconds(last_view.reset_index(drop=True)),
        last_view.reset_index(drop=True),
        pd.Series([{"product_ids": products.get(pk, [])} for pk in customers.tolist()], dtype=object),
    )
