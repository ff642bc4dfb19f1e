"""Lifecycle stage changed (``stage_changed``): the customer entered
``Campaign.lifecycle_stage`` (e.g. became at risk, or was reactivated).

- read from the timeline's ``lifecycle_stage_changed`` events, which the nightly chain
  records when a customer's stage differs from the day before (``services.nightly``), in the
  scan window (``base.window_start``: the last 30 days, not before the campaign was created
  or starts);
- triggered at the change (the end of the snapshot day); key ``stage:<to>:<snapshot day>``, so a
  customer who enters the stage again on another day can enter again (subject to
  ``Campaign.reentry_days``); context ``{"from": <previous stage>, "to": <stage>}``.
"""

import json

import pandas as pd
from django.db.models.functions import Coalesce
from django.utils import timezone

from ...ml import schema
from ...models import Event
from .base import occurrences, read_frame, window_start


def find(campaign, *, now, delay):
    if not campaign.lifecycle_stage:
        return occurrences()
    changes = (
        Event.objects.filter(
            type=schema.LIFECYCLE_STAGE_CHANGED,
            occurred_at__gte=window_start(campaign, now),
            occurred_at__lte=now,
            payload__to=campaign.lifecycle_stage,
        )
        .annotate(canonical=Coalesce("customer__merged_into_id", "customer_id"))
        .order_by()
    )
    frame = read_frame(changes, ["canonical", "occurred_at", "payload"], times=["occurred_at"])
    if frame.empty:
        return occurrences()
    payloads = frame["payload"].map(_as_dict)
    # The snapshot day: the change is recorded at its end (midnight after it, shop time).
    end = frame["occurred_at"] - pd.Timedelta(microseconds=1)
    day = end.dt.tz_convert(timezone.get_default_timezone()).dt.strftime("%Y-%m-%d")
    return occurrences(
        frame["canonical"].astype("int64"),
        f"stage:{campaign.lifecycle_stage}:" + day,
        frame["occurred_at"],
        [{"from": p.get("from", ""), "to": p.get("to", "")} for p in payloads],
    )


def _as_dict(value):
    if isinstance(value, dict):
        return value
    try:
        loaded = json.loads(value) if value else {}
    except (TypeError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}
