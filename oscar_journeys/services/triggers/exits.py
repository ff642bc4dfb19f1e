"""Exit conditions: a due enrollment whose reason to be has gone leaves its campaign before
its next step is decided.

Among the active enrollments with a step due at ``now`` (their ``DueStep``; one customer-id
range when sharded), in this order:

========================  ==================  ====================================================
campaign                  exit reason         when
========================  ==================  ====================================================
any                       ``customer_gone``   overdue by a day, and the customer is gone (deleted
                                              while a scan enrolled them); checked by
                                              ``enrollments_exit_vanished``, when the
                                              round's claim comes up short
any                       ``campaign_ended``  the campaign is inactive, or ended
cart abandoned            ``ordered``         the customer placed an order after the trigger
cart abandoned            ``basket_emptied``  the basket is gone, no longer open, or has no lines
browse abandoned          ``ordered``         an order after the trigger (the last view)
browse abandoned          ``added_to_basket`` a basket addition after the trigger
win-back                  ``ordered``         an order after the trigger (the start of the lapse)
after a purchase          ``order_cancelled`` the order was cancelled
========================  ==================  ====================================================

Each is one set-based UPDATE (status ``exited``, ``exit_reason``, ``next_due_at`` None)
with correlated EXISTS sub-queries on indexes; one DELETE then drops the exited
enrollments' due steps. The customer's events are looked up on the customer the
enrollment's customer was merged into, if it was.
"""

import datetime as dt
import logging

from django.apps import apps
from django.db import transaction
from django.db.models import Exists, IntegerField, OuterRef, Subquery
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Coalesce
from django.utils import timezone

from ...ml import schema
from ...models import Campaign, Customer, Enrollment, Event
from ...models import campaigns as triggers
from .. import decision_data as data
from .orders import order_number

logger = logging.getLogger(__name__)

CUSTOMER_GONE, CAMPAIGN_ENDED, ORDERED, BASKET_EMPTIED, ADDED_TO_BASKET, ORDER_CANCELLED = (
    "customer_gone",
    "campaign_ended",
    "ordered",
    "basket_emptied",
    "added_to_basket",
    "order_cancelled",
)


def _canonical_customer():
    """The enrollment's customer, or the one it has been merged into (a sub-query: the
    UPDATE statements below stay free of joins, whose self-referencing form PostgreSQL can
    plan badly right after a scan has inserted many rows)."""
    return Coalesce(
        Subquery(Customer.objects.filter(pk=OuterRef(OuterRef("customer_id"))).values("merged_into_id")[:1]),
        OuterRef("customer_id"),
    )


def _events_since_trigger(*types):
    """Exists: the enrollment's customer has an event of these types after the trigger."""
    return Exists(
        Event.objects.filter(
            customer_id=_canonical_customer(), type__in=types, occurred_at__gt=OuterRef("triggered_at")
        )
    )


def _basket_still_open():
    Basket = apps.get_model("basket", "Basket")
    Line = apps.get_model("basket", "Line")
    basket_id = Cast(KeyTextTransform("basket_id", OuterRef("context")), IntegerField())
    return Exists(
        Basket._default_manager.filter(pk=basket_id, status=Basket.OPEN).filter(
            Exists(Line._default_manager.filter(basket_id=OuterRef("pk")))
        )
    )


def _order_cancelled():
    return Exists(
        Event.objects.filter(customer_id=_canonical_customer(), type=schema.ORDER_CANCELLED)
        .annotate(number=order_number("payload"))
        .filter(number=order_number(OuterRef("context")))
    )


def _exit(queryset, reason, counts, now):
    updated = queryset.update(status=Enrollment.EXITED, exit_reason=reason, next_due_at=None, updated_at=now)
    if updated:
        counts[reason] = counts.get(reason, 0) + updated


def _active(steps):
    return Enrollment.objects.filter(status=Enrollment.ACTIVE, pk__in=steps.values("enrollment_id"))


def enrollments_exit_vanished(*, now, ranges=None):
    """Enrollments have no database constraint on their customer (models/delivery.py): one
    whose customer was deleted while a scan enrolled it is never claimed (the claim joins
    the customer), and would stay due for ever. Let go (``customer_gone``) those overdue by a
    day, of customers in ``ranges`` (half-open customer-id ranges; None: all); return
    ``{exit reason: count}``. The round calls it only when the claim found fewer due steps
    than there are: the check is a look-up per overdue step."""
    steps = data.due_steps(now=now - dt.timedelta(days=1), ranges=ranges)
    counts = {}
    with transaction.atomic():
        gone = _active(steps).filter(~Exists(Customer.objects.filter(pk=OuterRef("customer_id"))))
        _exit(gone, CUSTOMER_GONE, counts, now)
        if counts:
            steps.exclude(enrollment__status=Enrollment.ACTIVE).delete()
    return counts


def enrollments_exit_due(*, now=None, customer_range=None):
    """Mark the due active enrollments whose exit condition holds as exited (all but
    ``customer_gone``: ``enrollments_exit_vanished``); return ``{exit reason: count}``
    (reasons with none left out). ``customer_range``: a half-open ``(lo, hi)`` range of
    customer ids, or None for all."""
    now = now or timezone.now()
    steps = data.due_steps(now=now, ranges=None if customer_range is None else [tuple(customer_range)])
    due = _active(steps)
    counts = {}
    with transaction.atomic():
        campaigns = list(Campaign.objects.all())
        stopped = [campaign.pk for campaign in campaigns if not campaign.is_running(now)]
        if stopped:
            _exit(due.filter(campaign_id__in=stopped), CAMPAIGN_ENDED, counts, now)

        def of(trigger):
            return due.filter(campaign_id__in=[c.pk for c in campaigns if c.trigger == trigger and c.pk not in stopped])

        cart = of(triggers.CART_ABANDONED)
        _exit(cart.filter(_events_since_trigger(schema.ORDER_PLACED)), ORDERED, counts, now)
        _exit(cart.filter(~_basket_still_open()), BASKET_EMPTIED, counts, now)
        browse = of(triggers.BROWSE_ABANDONED)
        _exit(browse.filter(_events_since_trigger(schema.ORDER_PLACED)), ORDERED, counts, now)
        _exit(browse.filter(_events_since_trigger(schema.BASKET_ADDITION)), ADDED_TO_BASKET, counts, now)
        _exit(of(triggers.WIN_BACK).filter(_events_since_trigger(schema.ORDER_PLACED)), ORDERED, counts, now)
        _exit(of(triggers.POST_PURCHASE).filter(_order_cancelled()), ORDER_CANCELLED, counts, now)
        if counts:
            steps.exclude(enrollment__status=Enrollment.ACTIVE).delete()
    if counts:
        logger.info("enrollments exited: %s", counts)
    return counts
