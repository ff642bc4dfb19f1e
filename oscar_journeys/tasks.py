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


def _publish(task, args, kwargs):
    try:
        task.apply_async(args, kwargs)
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
def snapshot_build_shard(as_of_iso, lo, hi):
    """Build the snapshots of day ``as_of_iso`` (YYYY-MM-DD) for customers lo <= id < hi."""
    import datetime

    from .services.snapshots import snapshot_build

    result = snapshot_build(as_of=datetime.date.fromisoformat(as_of_iso), customer_range=(lo, hi))
    logger.info("Snapshots %s [%s, %s): %d rows in %.1fs", as_of_iso, lo, hi, result.rows, result.seconds)


@shared_task(ignore_result=True)
def snapshot_build_all(as_of_iso=None):
    """Queue one ``snapshot_build_shard`` per customer-id range for day ``as_of_iso``
    (default: yesterday in the shop's time zone), so several workers share the build."""
    import datetime

    from celery import group

    from .services.snapshots import shop_yesterday, snapshot_shards

    as_of = datetime.date.fromisoformat(as_of_iso) if as_of_iso else shop_yesterday()
    shards = snapshot_shards(as_of=as_of)
    if shards:
        group(snapshot_build_shard.s(as_of.isoformat(), lo, hi) for lo, hi in shards).apply_async()
    logger.info("Snapshots %s: queued %d shards", as_of, len(shards))
