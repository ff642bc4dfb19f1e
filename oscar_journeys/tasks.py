"""Celery tasks: thin wrappers that take ids and simple values and call one service.

Queue them with ``enqueue_on_commit(task, *args)`` so a task never runs before the data it
reads is committed."""

from functools import partial

from celery import shared_task
from celery.utils.log import get_task_logger
from django.db import transaction

logger = get_task_logger(__name__)


def enqueue_on_commit(task, *args, **kwargs):
    """Queue ``task`` once the current transaction commits (at once outside one).

    If the broker cannot be reached, the task runs in this process instead, so a broker
    outage neither breaks the shopper's request nor loses the work."""
    transaction.on_commit(partial(_publish, task, args, kwargs))


def _is_batch(value):
    return isinstance(value, (list, tuple)) and len(value) > 5


def _publish(task, args, kwargs):
    options = {}
    if any(_is_batch(value) for value in (*args, *(kwargs or {}).values())):
        # Show a batch of ids in logs and monitoring as its size: Celery would otherwise
        # format every id of every batch it publishes.
        options["argsrepr"] = repr(tuple(f"[{len(a)} ids]" if _is_batch(a) else a for a in args))
        options["kwargsrepr"] = repr({k: f"[{len(v)} ids]" if _is_batch(v) else v for k, v in (kwargs or {}).items()})
    try:
        task.apply_async(args, kwargs, **options)
    except Exception:
        logger.exception("could not queue %s; running it in process", task.name)
        task.apply(args, kwargs)


# --- identity ---------------------------------------------------------------------------


@shared_task(ignore_result=True)
def customer_link(customer_id, user_id, reason):
    """Join customer ``customer_id`` (a visitor's record) to the account ``user_id``: the
    two are one person. Ids only: no personal data travels through the broker."""
    from .services.customers import customer_link as link

    link(customer_id=customer_id, user_id=user_id, reason=reason)


# --- snapshots --------------------------------------------------------------------------


@shared_task(ignore_result=True)
def snapshot_build_shard(as_of_iso, lo, hi, version=None):
    """Build the snapshots of day ``as_of_iso`` (YYYY-MM-DD) for customers lo <= id < hi,
    scored with training run ``version`` (default: the latest successful one)."""
    import datetime

    from .services.nightly import models_of
    from .services.snapshots import LATEST, snapshot_build

    models = LATEST if version is None else models_of(version)
    result = snapshot_build(as_of=datetime.date.fromisoformat(as_of_iso), customer_range=(lo, hi), models=models)
    logger.info("Snapshots %s [%s, %s): %d rows, %d stage changes in %.1fs",
                as_of_iso, lo, hi, result.rows, result.stage_changes, result.seconds)


@shared_task(ignore_result=True)
def snapshot_build_all(as_of_iso=None, version=None):
    """Queue one ``snapshot_build_shard`` per customer-id range for day ``as_of_iso``
    (default: yesterday in the shop's time zone), so several workers share the build."""
    import datetime

    from celery import group

    from .services.snapshots import shop_yesterday, snapshot_shards

    as_of = datetime.date.fromisoformat(as_of_iso) if as_of_iso else shop_yesterday()
    shards = snapshot_shards(as_of=as_of)
    if shards:
        group(snapshot_build_shard.s(as_of.isoformat(), lo, hi, version) for lo, hi in shards).apply_async()
    logger.info("Snapshots %s: queued %d shards", as_of, len(shards))


@shared_task(ignore_result=True)
def nightly_run(as_of_iso=None):
    """The nightly chain for day ``as_of_iso`` (default: yesterday in the shop's time
    zone): fit the segment and prediction models on a sample, then queue one
    ``snapshot_build_shard`` per customer-id range, each scoring its customers with them.
    A failed fit is recorded on its training run and the snapshots are still built, scored
    with the last good models."""
    import datetime

    from .services.nightly import nightly_train
    from .services.snapshots import shop_yesterday

    as_of = datetime.date.fromisoformat(as_of_iso) if as_of_iso else shop_yesterday()
    try:
        version = nightly_train(as_of=as_of).version
    except Exception:
        logger.exception("Nightly training for %s failed; scoring with the last good models", as_of)
        version = None
    snapshot_build_all(as_of.isoformat(), version)


# --- campaigns and delivery ---------------------------------------------------------------
# Delayed work (a step due in an hour, a retry after a back-off) is a row with a due time
# that journeys_tick polls, never a Celery countdown or ETA: a Redis broker redelivers an
# ETA task past its visibility timeout, again and again.


def _now(now_iso):
    import datetime

    from django.utils import timezone

    if not now_iso:
        return timezone.now()
    now = datetime.datetime.fromisoformat(now_iso)
    return now if timezone.is_aware(now) else timezone.make_aware(now, datetime.timezone.utc)


@shared_task(ignore_result=True)
def journeys_tick(now_iso=None):
    """One round of the loop with workers: enroll new trigger occurrences here, queue one
    ``decision_round_shard`` per customer-id range with due steps, relay the outbox and
    attribute orders. Beat runs it every few minutes."""
    from celery import group

    from . import app_settings
    from .services.attribution import outcomes_attribute as attribute
    from .services.decision_data import due_customer_ranges
    from .services.delivery import messages_relay as relay
    from .services.triggers import triggers_scan

    now = _now(now_iso)
    enrolled = triggers_scan(now=now)
    shards = due_customer_ranges(now=now, shard_size=int(app_settings.DECISION_SHARD_SIZE))
    if shards:
        group([decision_round_shard.s(now.isoformat(), lo, hi) for lo, hi in shards]).apply_async()
    relayed = relay(now=now)
    attributed = attribute(now=now)
    logger.info("tick %s: %d enrolled, %d decision shards, relay %s, attribution %s",
                now.isoformat(), sum(enrolled.values()), len(shards), relayed, attributed)


@shared_task(ignore_result=True)
def decision_round_shard(now_iso, lo, hi):
    """Decide the steps due at ``now_iso`` for customers lo <= id < hi; their messages'
    send tasks are queued when the round commits."""
    from .services.decisions import decision_round

    decision_round(now=_now(now_iso), customer_range=(lo, hi))


# acks_late + reject_on_worker_lost: a batch whose worker died is delivered again. That is
# safe only because messages_send claims each message with a conditional UPDATE before
# sending it: the redelivered batch skips what was sent or is being sent, and sends the
# rest (docs/delivery.md).
@shared_task(ignore_result=True, acks_late=True, reject_on_worker_lost=True)
def messages_send(message_ids):
    """Send the outbox messages ``message_ids`` (each at most once)."""
    from .services.delivery import messages_send as send

    send(message_ids=list(message_ids))


@shared_task(ignore_result=True)
def messages_relay(now_iso=None):
    """Fail messages stuck in sending; queue send tasks for the due queued ones."""
    from .services.delivery import messages_relay as relay

    relay(now=_now(now_iso))


@shared_task(ignore_result=True)
def outcomes_attribute(now_iso=None):
    """Attribute orders to the decisions whose window is open."""
    from .services.attribution import outcomes_attribute as attribute

    attribute(now=_now(now_iso))


# --- the self-optimizing policy ---------------------------------------------------------------


@shared_task(ignore_result=True)
def policy_learn(now_iso=None):
    """A new version of the self-optimizing policy from the decisions whose attribution
    window closed since the last one (docs/journeys.md). Beat runs it daily."""
    from .services.optimizing import policy_learn as learn

    run = learn(now=_now(now_iso))
    logger.info("policy version %s: %s, %d decisions", run.version, run.status, run.outcomes)
