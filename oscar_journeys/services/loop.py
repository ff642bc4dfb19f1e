"""One round of the whole loop, in this process: triggers, decisions, delivery, attribution.

``journeys_run(now=...)`` is what ``manage.py journeys_run`` runs for shops without Celery
beat, and what tests call with a clock they move. With workers, ``tasks.journeys_tick`` does
the same work spread over tasks (decision shards, send batches)."""

import logging
import time

from django.utils import timezone

from .attribution import outcomes_attribute
from .decisions import decision_round
from .delivery import messages_relay

logger = logging.getLogger(__name__)


def journeys_run(*, now=None):
    """Run one round at ``now``; return counts: ``enrolled``, ``exited``, ``due``,
    ``decisions`` (with ``decisions_<outcome>`` and ``skipped_<reason>``), ``deferred``,
    ``completed``, ``messages`` (queued by this round), ``sent``, ``failed``, ``retried``,
    ``cancelled``, ``stuck_failed``, ``attributed`` (decisions whose figures changed),
    ``closed``, ``seconds``."""
    from .triggers import triggers_scan

    now = now or timezone.now()
    started = time.monotonic()
    enrolled = triggers_scan(now=now)
    decided = decision_round(now=now, enqueue=False)
    relayed = messages_relay(now=now, in_process=True)
    attributed = outcomes_attribute(now=now)
    counts = {
        "enrolled": sum(enrolled.values()),
        **decided.as_dict(),
        **{k: v for k, v in relayed.items() if k not in ("due", "batches", "skipped")},
        "attributed": attributed["updated"],
        "closed": attributed["closed"],
        "seconds": round(time.monotonic() - started, 3),
    }
    logger.info("journeys_run at %s: %s", now.isoformat(), counts)
    return counts
