"""Campaign triggers: from what happened in the shop to enrollments, and back out.

``triggers_scan`` runs every few minutes (``journeys_tick``): for each running campaign with
at least one step it finds the trigger occurrences of its family and enters them as
enrollments (status active, step 1 due at ``triggered_at`` + the first step's delay), in
bulk. ``enrollments_exit_due`` runs at the start of each decision round and takes out the
due enrollments whose reason to be has gone (the customer ordered, emptied the basket...).

One module per trigger family; each documents its options, key, context and window:

- ``cart``: cart abandoned;
- ``orders``: after a purchase, win-back;
- ``calendar``: birthday, scheduled sends;
- ``browse``: browse abandoned;
- ``stages``: lifecycle stage changed (recorded by the nightly chain);
- ``followups``: follow-ups in a journey, after a campaign was received;
- ``exits``: the exit conditions;
- ``base``: the occurrence frame, re-entry and the bulk insert.

The user documentation is ``docs/campaigns.md``.
"""

import logging
import time

from django.db import transaction
from django.db.models import Prefetch
from django.utils import timezone

from ...models import Campaign, CampaignStep
from ...models import campaigns as c
from . import browse, calendar, cart, followups, orders, stages
from .base import enroll
from .exits import enrollments_exit_due

__all__ = ["FINDERS", "enrollments_exit_due", "triggers_scan"]

logger = logging.getLogger(__name__)

# trigger code -> find(campaign, *, now, delay) -> occurrence frame (see base.py)
FINDERS = {
    c.CART_ABANDONED: cart.find,
    c.POST_PURCHASE: orders.find_post_purchase,
    c.BIRTHDAY: calendar.find_birthdays,
    c.WIN_BACK: orders.find_win_back,
    c.BROWSE_ABANDONED: browse.find,
    c.SCHEDULED: calendar.find_scheduled,
    c.STAGE_CHANGED: stages.find,
    c.FOLLOW_UP: followups.find,
}


def triggers_scan(*, now=None, campaign_ids=None):
    """Enroll the new trigger occurrences of every running campaign (of ``campaign_ids``
    only, when given); return ``{campaign_id: enrollments created}`` for the campaigns
    scanned. Idempotent: a second scan at the same ``now`` creates nothing. Each campaign is
    scanned in its own transaction."""
    now = now or timezone.now()
    campaigns = Campaign.objects.filter(active=True).prefetch_related(
        Prefetch("steps", queryset=CampaignStep.objects.order_by("position"))
    )
    if campaign_ids is not None:
        campaigns = campaigns.filter(pk__in=list(campaign_ids))
    created = {}
    for campaign in campaigns:
        steps = list(campaign.steps.all())
        if not steps or not campaign.is_running(now):
            continue
        find = FINDERS.get(campaign.trigger)
        if find is None:
            logger.warning("campaign %s has an unknown trigger %r; skipped", campaign.pk, campaign.trigger)
            continue
        started = time.perf_counter()
        delay = steps[0].delay
        with transaction.atomic():
            found = find(campaign, now=now, delay=delay)
            created[campaign.pk] = enroll(campaign, found, now=now, delay=delay)
        logger.info(
            "campaign %s (%s): %s occurrences, %s enrolled in %.2f s",
            campaign.pk,
            campaign.trigger,
            len(found),
            created[campaign.pk],
            time.perf_counter() - started,
        )
    return created
