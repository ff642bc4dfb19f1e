"""Triggers on the customer's orders, read from the timeline's ``order_placed`` events (Oscar
orders through the receivers, and orders imported through the API or CSV alike).

After a purchase (``post_purchase``):
- every order placed in the scan window (see ``base.window_start``: the last 30 days, not
  before the campaign was created or starts), worth at least ``Campaign.min_order_value``;
- with ``Campaign.products`` / ``Campaign.categories``: only orders with a line
  (``product_ordered`` event of the same order number) about one of them;
- enrolled at once, triggered at the order's time, so the first step is due ``delay`` after
  the order (a series of steps follows the same order);
- key ``order:<number>`` (``order:event:<event id>`` for an imported order without a
  number); context ``{"order_number", "order_id"}`` (``order_id``: the Oscar order, if any).

Win-back (``win_back``):
- a customer whose last order is ``Campaign.days_without_order`` days old and who has at
  least ``Campaign.min_past_orders`` orders; triggered at the moment the lapse began (last
  order + days), in the scan window, so a new campaign does not write to every customer who
  lapsed years ago (a scheduled campaign with an audience rule on ``recency_days`` does that);
- key ``winback:<date of the last order, shop time zone>``; context ``{}``.
"""

import datetime as dt

import pandas as pd
from django.apps import apps
from django.db.models import CharField, Count, Exists, Max, OuterRef, Subquery
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Coalesce
from django.utils import timezone

from ...ml import schema
from ...models import Event
from .base import occurrences, product_condition, to_utc, window_start


def order_number(field):
    """The ``order_number`` of a JSON field as text, whichever JSON type it was stored as
    (Oscar's number is text, but an order object fresh from checkout may hold an int)."""
    return Cast(KeyTextTransform("order_number", field), CharField())


def _canonical():
    return Coalesce("customer__merged_into_id", "customer_id")


def find_post_purchase(campaign, *, now, delay):
    Order = apps.get_model("order", "Order")
    start = window_start(campaign, now)
    placed = Event.objects.filter(type=schema.ORDER_PLACED, occurred_at__gte=start, occurred_at__lte=now)
    if campaign.min_order_value is not None:
        placed = placed.filter(value__gte=campaign.min_order_value)
    placed = placed.annotate(number=order_number("payload"))
    condition = product_condition(campaign)
    if condition is not None:
        lines = (
            Event.objects.filter(type=schema.PRODUCT_ORDERED, customer_id=OuterRef("customer_id"))
            .annotate(number=order_number("payload"))
            .filter(condition, number=OuterRef("number"))
        )
        placed = placed.filter(Exists(lines))
    rows = placed.annotate(
        canonical=_canonical(),
        order_id=Subquery(Order._default_manager.filter(number=OuterRef("number")).values("pk")[:1]),
    ).values_list("pk", "canonical", "number", "occurred_at", "order_id")
    frame = pd.DataFrame.from_records(
        list(rows), columns=["event_id", "customer_id", "number", "occurred_at", "order_id"]
    )
    numbered = frame["number"].notna() & (frame["number"].astype(str) != "")
    keys = ("order:" + frame["number"].astype(str)).where(numbered, "order:event:" + frame["event_id"].astype(str))
    context = [
        {"order_number": str(number) if has else None, "order_id": None if pd.isna(order_id) else int(order_id)}
        for number, has, order_id in zip(frame["number"].tolist(), numbered.tolist(), frame["order_id"].tolist())
    ]
    return occurrences(frame["customer_id"], keys, frame["occurred_at"], context)


def find_win_back(campaign, *, now, delay):
    days = dt.timedelta(days=campaign.days_without_order or 0)
    if not days:
        return occurrences()
    start = window_start(campaign, now)
    lapsed = (
        Event.objects.filter(type=schema.ORDER_PLACED, occurred_at__lte=now)
        .values(canonical=_canonical())
        .annotate(last_order=Max("occurred_at"), orders=Count("pk"))
        .filter(last_order__gte=start - days, last_order__lte=now - days, orders__gte=max(campaign.min_past_orders, 1))
        .values_list("canonical", "last_order")
    )
    frame = pd.DataFrame.from_records(list(lapsed), columns=["customer_id", "last_order"])
    last_order = to_utc(frame["last_order"])
    local_day = last_order.dt.tz_convert(timezone.get_default_timezone()).dt.strftime("%Y-%m-%d")
    return occurrences(
        frame["customer_id"], "winback:" + local_day, last_order + pd.Timedelta(days), [{}] * len(frame)
    )
