"""Celery tasks: thin wrappers that take ids and simple values and call one service.

Queue them with ``enqueue_on_commit(task, *args)`` so a task never runs before the data it
reads is committed."""

from functools import partial

from celery import shared_task
from celery.utils.log import get_task_logger
from django.db import transaction

logger = get_task_logger(__name__)


def enqueue_on_commit(task, *args, **kwargs):
    """Queue ``task`` once the current transaction commits (at once outside one)."""
    transaction.on_commit(partial(task.delay, *args, **kwargs))


# --- identity ---------------------------------------------------------------------------


@shared_task(ignore_result=True)
def customer_link(customer_id, *, user_id=None, email=None, reason):
    """Join customer ``customer_id`` (a visitor's record) to the account ``user_id`` or to
    the customer who holds ``email``: the two are one person."""
    from .services.identity import customer_link as link

    link(customer_id=customer_id, user_id=user_id, email=email, reason=reason)
