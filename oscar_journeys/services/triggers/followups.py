"""Follow-up in a journey (``follow_up``): the customer received a campaign that an active
journey follows with this one (``FollowUp`` rows).

- read from the outbox: messages of the preceding campaign that were sent, ``delay_days``
  before (a held-out customer, or one for whom nothing was chosen, received nothing and has
  no follow-up);
- with the condition "responded": only if the customer clicked the message or ordered within
  its attribution before the follow-up is due; "not responded": only if neither;
- triggered ``delay_days`` after the send, in the scan window (``base.window_start``);
- key ``after:<message id>``; context ``{"after_campaign": <id>, "message_id": <id>}``.
"""

import datetime as dt

import pandas as pd
from django.db.models.functions import Coalesce

from ...models import FollowUp, Message
from .base import occurrences, read_frame, window_start


def find(campaign, *, now, delay):
    links = FollowUp.objects.filter(follow_up=campaign, journey__active=True).values_list(
        "campaign_id", "delay_days", "condition"
    )
    start = window_start(campaign, now)
    found = []
    for after, days, condition in links.distinct():
        wait = dt.timedelta(days=days)
        sent = (
            Message.objects.filter(
                campaign_id=after, status=Message.SENT, sent_at__gte=start - wait, sent_at__lte=now - wait
            )
            .annotate(canonical=Coalesce("customer__merged_into_id", "customer_id"))
            .order_by()
        )
        frame = read_frame(
            sent, ["id", "canonical", "sent_at", "clicked_at", "decision__converted_at"],
            times=["sent_at", "clicked_at", "decision__converted_at"],
        )
        if frame.empty:
            continue
        due = frame["sent_at"] + pd.Timedelta(days=days)
        responded = (frame["clicked_at"] <= due) | (frame["decision__converted_at"] <= due)
        if condition == FollowUp.RESPONDED:
            frame, due = frame[responded.to_numpy()], due[responded]
        elif condition == FollowUp.NOT_RESPONDED:
            frame, due = frame[~responded.to_numpy()], due[~responded]
        found.append(
            occurrences(
                frame["canonical"].astype("int64"),
                "after:" + frame["id"].astype("int64").astype(str),
                due,
                [{"after_campaign": after, "message_id": int(m)} for m in frame["id"].tolist()],
            )
        )
    return pd.concat(found, ignore_index=True) if found else occurrences()
