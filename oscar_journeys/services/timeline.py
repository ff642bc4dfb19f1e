"""Recording events on the timeline."""

import uuid

from django.db import IntegrityError, transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from ..models import Customer, Event
from ..signals import timeline_event_recorded


def _announce(event):
    transaction.on_commit(lambda: timeline_event_recorded.send(sender=Event, event=event))


def timeline_record_event(
    *,
    customer,
    type,
    occurred_at=None,
    source="oscar",
    idempotency_key=None,
    value=None,
    currency="",
    category="",
    product=None,
    product_id=None,
    payload=None,
):
    """Append one event to the customer's timeline; return ``(event, created)``.

    ``customer`` may be a merged record: the event is stored on its survivor and remembers
    the record it was recorded for. With an ``idempotency_key`` already stored for this
    source, nothing is written and the stored event is returned with ``created=False``."""
    event = Event(
        customer_id=customer.merged_into_id or customer.pk,
        recorded_for_id=customer.pk,
        type=type,
        occurred_at=occurred_at or timezone.now(),
        source=source,
        idempotency_key=idempotency_key or uuid.uuid4().hex,
        value=value,
        currency=currency or "",
        category=(category or "")[:255],
        product_id=product.pk if product is not None else product_id,
        payload=payload or {},
    )
    if idempotency_key is None:
        event.save()
    else:
        try:
            with transaction.atomic():
                event.save()
        except IntegrityError:
            return Event.objects.get(source=source, idempotency_key=idempotency_key), False
    _announce(event)
    return event, True


def timeline_record_events(events):
    """Insert many unsaved Event instances (keys already set) in one query; return them.

    The caller has already dropped keys that are stored (see ``api`` and ``csv`` import)."""
    created = Event.objects.bulk_create(events, batch_size=1000)
    for event in created:
        _announce(event)
    return created


def timeline_repair():
    """Move events that were recorded for a customer after it had been merged (a browser
    session that still named it) to the survivor. Returns how many moved. Merges move the
    events they find; this catches the late ones, and runs before every snapshot."""
    survivor = Customer.objects.filter(pk=OuterRef("customer_id")).values("merged_into_id")[:1]
    stale = Event.objects.filter(customer__in=Customer.objects.filter(merged_into__isnull=False).values("pk"))
    return stale.update(customer_id=Subquery(survivor))
