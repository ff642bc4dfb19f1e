"""Sending the outbox: each queued message goes out at most once.

``messages_send(message_ids=[...])`` is what the ``messages_send`` task runs. A conditional
UPDATE claims the messages a group of ``SEND_CLAIM_SIZE`` at a time (queued → sending, only
those still queued and due), committed before any of them is sent; a message another worker
(or an earlier delivery of the same task) claimed is left alone.
Consent and suppression are checked again, for each channel's batch at once in a few
queries (``consent.message_blocks``) just before its first claim: a message whose customer
withdrew consent or whose address was suppressed since the decision is cancelled once
claimed. Then the message is rendered (``services.rendering.MessageRenderer``, one per batch) and handed
to its channel's backend (one ``with backend:`` per channel per batch), and the outcome is
written with another conditional UPDATE (only from "sending"), so statuses only move
forward; the group's outcomes are committed with the next group's claim. Each claim commits
on its own, so a worker killed mid-batch leaves at most one group in "sending".

A transient error (timeout, 5xx) puts the message back to "queued" with ``send_after`` a
back-off later, until ``SEND_MAX_ATTEMPTS``; a permanent one marks it failed, and puts the
address on the suppression list when the provider says the address itself is bad.

``messages_relay(now=...)`` is the safety net, run by every tick: messages left "sending"
longer than ``SENDING_TIMEOUT_SECONDS`` (their worker died) are marked failed, never sent
again, since they may have gone out; queued messages that are due (a retry's back-off has
passed, or the publish after the decision's commit was lost) get their send task again.
"""

import datetime as dt
import logging
import random
import time
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from .. import app_settings
from ..exceptions import ChannelError, ChannelPermanentError, ChannelTransientError
from ..models import Message, Suppression
from . import consent
from .rendering import MessageRenderer

logger = logging.getLogger(__name__)

RETRY_BASE_SECONDS = 30
# The relay leaves alone messages that became due this recently: their task, queued when
# the decision committed, is most likely still on its way.
RELAY_GRACE_SECONDS = 60


@dataclass
class SendStats:
    sent: int = 0
    failed: int = 0
    retried: int = 0
    cancelled: int = 0
    skipped: int = 0  # not due, or already claimed / handled elsewhere
    seconds: float = 0.0

    def add(self, other):
        for name in ("sent", "failed", "retried", "cancelled", "skipped", "seconds"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self

    def as_dict(self):
        return {"sent": self.sent, "failed": self.failed, "retried": self.retried, "cancelled": self.cancelled,
                "skipped": self.skipped}


def message_retry_delay(attempts, *, rng=random):
    """Seconds to wait before attempt ``attempts + 1``: exponential from 30 s, capped at
    ``SEND_RETRY_BACKOFF_MAX``, with jitter (between half and all of it) so retries of one
    outage do not all come back at once."""
    ceiling = min(float(app_settings.SEND_RETRY_BACKOFF_MAX), RETRY_BASE_SECONDS * 2.0 ** max(0, attempts - 1))
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


def messages_send(*, message_ids, now=None):
    """Send the due, queued messages among ``message_ids``; return a SendStats. Safe to run
    twice, or in two workers at once: each message is claimed before it is sent."""
    now = now or timezone.now()
    started = time.monotonic()
    stats = SendStats()
    ids = sorted({int(pk) for pk in message_ids})
    messages = list(
        Message.objects.filter(pk__in=ids, status=Message.QUEUED, send_after__lte=now)
        .select_related("customer", "enrollment")
        # A batch has a few channels, templates and campaigns: one instance of each, shared.
        .prefetch_related("channel", "template", "campaign")
        .order_by("channel_id", "id")
    )
    stats.skipped = len(ids) - len(messages)
    if messages:
        renderer = MessageRenderer(now=now)
        renderer.prefetch(messages)
        by_channel = {}
        for message in messages:
            by_channel.setdefault(message.channel_id, []).append(message)
        for batch in by_channel.values():
            _send_channel(batch, renderer, now=now, stats=stats)
    stats.seconds = time.monotonic() - started
    logger.info("sent %d, failed %d, retried %d, cancelled %d, skipped %d in %.2fs",
                stats.sent, stats.failed, stats.retried, stats.cancelled, stats.skipped, stats.seconds)
    return stats


def _send_channel(batch, renderer, *, now, stats):
    channel = batch[0].channel
    outbox = _Outbox(stats, now=now)
    size = max(1, int(app_settings.SEND_CLAIM_SIZE))
    groups = [batch[start : start + size] for start in range(0, len(batch), size)]
    try:
        if not channel.enabled:
            for group in groups:
                for message in outbox.claim(group):
                    outbox.finish(message, Message.CANCELLED, last_error="channel disabled")
            return
        # The send-time re-check, for the whole batch at once ("" = may be sent).
        blocks = consent.message_blocks([(message.customer, channel.kind, message.recipient) for message in batch])
        blocked = {message.pk: reason for message, reason in zip(batch, blocks)}
        try:
            backend = channel.get_backend()
            backend.open()
        except Exception as exc:  # a misconfigured or unreachable channel: every message waits
            logger.warning("channel %s could not be opened: %s", channel, exc)
            for group in groups:
                for message in outbox.claim(group):
                    _retry_or_fail(outbox, message, exc)
            return
        try:
            for group in groups:
                for message in outbox.claim(group):
                    _send_one(backend, renderer, outbox, message, blocked=blocked[message.pk])
        finally:
            try:
                backend.close()
            except Exception:
                logger.exception("closing channel %s failed", channel)
    finally:
        outbox.flush()


def _update_sql(pks, *, where_status, due_by=None, attempt=False, returning=True, **fields):
    """(sql, params) of ``UPDATE message SET fields WHERE id IN pks AND (status =
    where_status [AND send_after <= due_by]) IS TRUE [RETURNING id]``. Plain SQL with values
    prepared by the model's fields: the ORM's query building costs more than the statement
    itself."""
    qn = connection.ops.quote_name
    meta = Message._meta
    sets, params = [], []
    for name, value in fields.items():
        field = meta.get_field(name)
        sets.append(f"{qn(field.column)} = %s")
        params.append(field.get_db_prep_save(value, connection))
    if attempt:
        sets.append(f"{qn('attempts')} = {qn('attempts')} + 1")
    checks = [f"{qn('status')} = %s"]
    params += [*pks, where_status]
    if due_by is not None:
        checks.append(f"{qn('send_after')} <= %s")
        params.append(meta.get_field("send_after").get_db_prep_save(due_by, connection))
    # The rows are found by their primary keys; their state is a check on each row. "(...)
    # IS TRUE" keeps the state out of the planner's choice of index: with stale statistics
    # (a table analyzed before a round queued its messages) PostgreSQL otherwise walks the
    # (status, send_after) index over every queued message to find these.
    marks = ", ".join(["%s"] * len(pks))
    sql = (
        f"UPDATE {qn(meta.db_table)} SET {', '.join(sets)} WHERE {qn('id')} IN ({marks}) "
        f"AND ({' AND '.join(checks)}) IS TRUE"
    )
    return (f"{sql} RETURNING {qn('id')}" if returning else sql), params


def _conditional_update(pks, **kwargs):
    """Run ``_update_sql``; return the ids of the rows it updated."""
    sql, params = _update_sql(pks, **kwargs)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {pk for (pk,) in cursor.fetchall()}


class _Outbox:
    """The status changes of one batch. Messages are claimed (queued → sending) a group of
    ``SEND_CLAIM_SIZE`` at a time, and the outcomes of a group (sending → sent / failed /
    cancelled / queued again) are committed together with the claim of the next group: one
    commit per group. Whatever happens, at most one group is left in "sending": the one
    claimed last, whose outcomes were still to be written."""

    STATS = {Message.SENT: "sent", Message.FAILED: "failed", Message.CANCELLED: "cancelled", Message.QUEUED: "retried"}

    def __init__(self, stats, *, now):
        self.stats, self.now, self.pending = stats, now, []

    def claim(self, messages):
        """queued → sending, for those of ``messages`` still queued and due; returns the
        ones this call got, in order. Committed, with the outcomes written since the last
        claim, before it returns."""
        with transaction.atomic():
            self._write_pending()
            got = _conditional_update(
                [message.pk for message in messages], where_status=Message.QUEUED, due_by=self.now, attempt=True,
                status=Message.SENDING, claimed_at=self.now,
            )
        claimed = [message for message in messages if message.pk in got]
        for message in claimed:
            message.status, message.claimed_at, message.attempts = Message.SENDING, self.now, message.attempts + 1
        self.stats.skipped += len(messages) - len(claimed)
        return claimed

    def finish(self, message, status, **fields):
        """sending → ``status`` (only from sending: statuses move forward), written with the
        next claim or by ``flush()``."""
        self.pending.append((message, status, fields))
        name = self.STATS[status]
        setattr(self.stats, name, getattr(self.stats, name) + 1)

    def flush(self):
        with transaction.atomic():
            self._write_pending()

    def _write_pending(self):
        # One statement per outcome, the outcomes of one form (same columns) sent together:
        # executemany, which psycopg sends as one pipeline (one round trip, not one each).
        forms = {}
        for message, status, fields in self.pending:
            sql, params = _update_sql([message.pk], where_status=Message.SENDING, returning=False, status=status, **fields)
            forms.setdefault(sql, []).append((message.pk, params))
        self.pending = []
        for sql, rows in forms.items():
            with connection.cursor() as cursor:
                cursor.executemany(sql, [params for _pk, params in rows])
                written = cursor.rowcount
            if written != len(rows):
                logger.warning("%d of messages %s were no longer sending when their outcome was written",
                               len(rows) - written, [pk for pk, _params in rows])


def _send_one(backend, renderer, outbox, message, *, blocked):
    """Render and send one claimed message; ``blocked`` is its consent re-check ("" when it
    may be sent, else the reason it is cancelled with)."""
    kind = message.channel.kind
    if blocked:
        outbox.finish(message, Message.CANCELLED, last_error=blocked)
        return
    try:
        outgoing, links = renderer.render(message)
    except Exception as exc:
        logger.exception("message %s could not be rendered", message.pk)
        outbox.finish(message, Message.FAILED, last_error=f"rendering: {exc}"[:2000])
        return
    try:
        result = backend.send(outgoing)
    except ChannelTransientError as exc:
        _retry_or_fail(outbox, message, exc)
    except ChannelPermanentError as exc:
        outbox.finish(message, Message.FAILED, last_error=str(exc)[:2000])
        if exc.suppress:
            consent.suppress(kind=kind, address=message.recipient, reason=Suppression.BOUNCED,
                             detail=str(exc)[:255], now=outbox.now)
    except Exception as exc:  # a backend bug: it may have gone out, so it is not retried
        logger.exception("channel %s raised while sending message %s", message.channel, message.pk)
        outbox.finish(message, Message.FAILED, last_error=f"{type(exc).__name__}: {exc}"[:2000])
    else:
        outbox.finish(message, Message.SENT, sent_at=outbox.now, provider_id=(result.provider_id or "")[:255],
                      links=links, last_error="")


def _retry_or_fail(outbox, message, exc):
    error = str(exc)[:2000]
    transient = isinstance(exc, ChannelTransientError) or not isinstance(exc, ChannelError)
    if transient and message.attempts < int(app_settings.SEND_MAX_ATTEMPTS):
        later = outbox.now + dt.timedelta(seconds=message_retry_delay(message.attempts))
        outbox.finish(message, Message.QUEUED, send_after=later, last_error=error)
    else:
        outbox.finish(message, Message.FAILED, last_error=error)


def messages_sweep_stuck(*, now=None):
    """Mark failed the messages left "sending" longer than SENDING_TIMEOUT_SECONDS; they
    are never sent again (they may have gone out). Returns how many."""
    now = now or timezone.now()
    limit = now - dt.timedelta(seconds=int(app_settings.SENDING_TIMEOUT_SECONDS))
    count = Message.objects.filter(status=Message.SENDING, claimed_at__lt=limit).update(
        status=Message.FAILED, last_error="sending timed out: the worker stopped mid-send; not resent"
    )
    if count:
        logger.warning("%d messages stuck in sending were marked failed", count)
    return count


def messages_relay(*, now=None, in_process=False):
    """Sweep stuck messages, then send (``in_process``) or queue send tasks for the queued
    messages that are due. Returns counts."""
    from ..tasks import enqueue_on_commit
    from ..tasks import messages_send as send_task

    now = now or timezone.now()
    stuck = messages_sweep_stuck(now=now)
    until = now if in_process else now - dt.timedelta(seconds=RELAY_GRACE_SECONDS)
    ids = list(
        Message.objects.filter(status=Message.QUEUED, send_after__lte=until)
        .order_by("send_after", "id")
        .values_list("id", flat=True)
    )
    size = max(1, int(app_settings.SEND_BATCH_SIZE))
    batches = [ids[start : start + size] for start in range(0, len(ids), size)]
    stats = SendStats()
    for batch in batches:
        if in_process:
            stats.add(messages_send(message_ids=batch, now=now))
        else:
            enqueue_on_commit(send_task, batch)
    return {"stuck_failed": stuck, "due": len(ids), "batches": len(batches), **stats.as_dict()}
