"""Cart abandoned: an open Oscar basket with lines, untouched for the first step's delay.

- Value: the sum of ``price_incl_tax`` (``price_excl_tax`` when the tax is unknown) times
  the quantity over the lines; ``Campaign.min_basket_value`` filters on it.
- Last activity: the latest ``date_updated`` of the lines (Oscar touches a line whenever it
  is added or its quantity changes). A basket merged into another on log-in is not open any
  more: the basket it was merged into carries on.
- Customer: the Customer of the basket's owner, or, for a guest's basket, the customer holding
  the ``basket`` identifier the receivers record on every basket addition; always the
  canonical customer. Anonymous visitors (no account, email or phone) are left out: there is
  nobody to write to.
- Key ``basket:<basket id>:<last activity, epoch seconds>``; context ``{"basket_id"}``;
  triggered at the last activity.

The scan is one aggregate query over the lines of open baskets (the owner's customer
joined in), read straight from the cursor into a frame, then one look-up of the guests'
basket identifiers per chunk of ids.
"""

import pandas as pd
from django.apps import apps
from django.db.models import CharField, DecimalField, F, Max, Sum
from django.db.models.functions import Cast, Coalesce

from ...models import CustomerIdentifier
from .base import epoch_seconds, identified, occurrences, read_frame, window_start


def abandoned_baskets(*, since, until, min_value=None):
    """Frame (basket_id, customer_id, last_activity) of the open baskets with lines whose
    last activity is in [since, until], worth at least ``min_value``, whose customer is
    known: the owner's customer, else the holder of the basket's identifier."""
    Line = apps.get_model("basket", "Line")
    Basket = apps.get_model("basket", "Basket")
    # One aggregate over the lines of open baskets; the owner's customer by LEFT JOINs.
    baskets = (
        Line._default_manager.filter(basket__status=Basket.OPEN)
        .order_by()
        .values("basket_id")
        .annotate(
            last_activity=Max("date_updated"),
            owner_customer=Max("basket__owner__journeys_customer__id"),
            owner_survivor=Max("basket__owner__journeys_customer__merged_into_id"),
        )
        .filter(last_activity__gte=since, last_activity__lte=until)
    )
    if min_value is not None:
        price = Coalesce("price_incl_tax", "price_excl_tax")
        value = Sum(price * F("quantity"), output_field=DecimalField(max_digits=14, decimal_places=2))
        baskets = baskets.annotate(value=value).filter(value__gte=min_value)
    columns = ["basket_id", "last_activity", "owner_customer", "owner_survivor"]
    frame = read_frame(baskets, columns, times=["last_activity"])
    customer = frame["owner_survivor"].fillna(frame["owner_customer"])
    # Guests' baskets: the known customer holding the basket's identifier. A semi-join on
    # the guests' lines touched in the window (a superset of the guest baskets found above;
    # no list of ids travels to the database and back).
    guest_lines = Line._default_manager.filter(
        basket__status=Basket.OPEN, basket__owner__isnull=True, date_updated__gte=since, date_updated__lte=until
    )
    guest_baskets = guest_lines.values(value=Cast("basket_id", CharField()))
    holders = CustomerIdentifier.objects.filter(kind=CustomerIdentifier.BASKET, value__in=guest_baskets).filter(
        identified()
    )
    holders = read_frame(holders, ["value", "customer_id", "customer__merged_into_id"])
    holder = dict(
        zip(
            holders["value"].astype("int64"),
            holders["customer__merged_into_id"].fillna(holders["customer_id"]),
        )
    )
    customer = customer.fillna(frame["basket_id"].map(holder))
    known = customer.notna().to_numpy()
    return pd.DataFrame(
        {
            "basket_id": frame["basket_id"][known].astype("int64"),
            "customer_id": customer[known].astype("int64"),
            "last_activity": frame["last_activity"][known],
        }
    ).reset_index(drop=True)


def find(campaign, *, now, delay):
    baskets = abandoned_baskets(
        since=window_start(campaign, now), until=now - delay, min_value=campaign.min_basket_value
    )
    keys = "basket:" + baskets["basket_id"].astype(str) + ":" + epoch_seconds(baskets["last_activity"])
    return occurrences(
        baskets["customer_id"],
        keys,
        baskets["last_activity"],
        '{"basket_id": ' + baskets["basket_id"].astype(str) + "}",  # the context's JSON, built in bulk
    )
