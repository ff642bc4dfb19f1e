"""The decision round: what each due enrollment step gets, written with its outbox message.

``decision_round(now=..., customer_range=(lo, hi))`` takes the active enrollments whose next
step is due (after ``triggers.enrollments_exit_due`` has let go of those whose exit condition
holds), and on frames, for all of them at once:

1. skips steps whose campaign is not running, whose customer is not in the campaign's
   audience (latest snapshot features, ``ml.audience``) or is excluded by a rule (an event
   of the rule's type within its days);
2. picks the channel: the campaign's first channel (``CampaignChannel.order``) that is
   enabled, has a template for the step, and reaches the customer with consent on an
   address not suppressed (``services.consent.reachability``); none: skipped, with the
   reason;
3. defers (no decision; ``next_due_at`` moves) the steps due in the channel's quiet hours
   or outside the campaign's send window, in the customer's time zone (``ml.rules``);
4. skips the steps a frequency cap forbids (``ml.rules``; a capped step is not retried);
5. lets the policy (``optimizer.ManualPriorityPolicy``, or a journey's learned policy)
   choose one campaign, or nothing, per customer; one decision is written for the customer,
   listing the campaigns chosen among (``Decision.candidates``); the other due steps are
   outranked: no decision row, and they move on as a decided step does;
6. for the chosen one: the global control group gets a ``control`` decision, a held-out
   enrollment (drawn once, deterministically, stored on ``Enrollment.held_out``) a
   ``holdout`` decision, everyone else a ``send`` decision and a queued ``Message``.

Steps 1–6 build the plan (``decision_plan.py``); this module claims, writes and commits.
Control and holdout are drawn after every other rule, so they stand for "would have been
sent": uplift compares like with like. Decisions, messages and the enrollments' advance are
written in one transaction, in bulk; the send tasks are queued once it commits. On
PostgreSQL the round first takes the advisory lock of each customer-id shard it covers
(``decision_data.lock_shards``; a shard another round holds is left to the next round), so
two rounds running at once never decide for the same customer: not the same step twice,
and not two campaigns past a frequency cap.
"""

import contextlib
import logging
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from django.db import connection, transaction
from django.utils import timezone

from .. import app_settings
from ..models import Decision, Enrollment, Message
from ..models.delivery import message_idempotency_key
from . import bulk
from . import decision_data as data
from . import decision_plan as planning

logger = logging.getLogger(__name__)

SKIPPED, SEND, HOLDOUT, CONTROL = Decision.SKIPPED, Decision.SEND, Decision.HOLDOUT, Decision.CONTROL


@dataclass
class RoundResult:
    """What one round did. ``outcomes``: decisions written per outcome; ``reasons``: skipped
    decisions per reason; ``message_ids``: the messages queued."""

    due: int = 0
    exited: dict = field(default_factory=dict)
    outcomes: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    deferred: int = 0
    completed: int = 0
    message_ids: list = field(default_factory=list)
    busy: int = 0  # customer-id shards skipped: another round was deciding them
    seconds: float = 0.0
    timings: dict = field(default_factory=dict)  # seconds per phase, for benchmarks and logs

    @property
    def decisions(self):
        return sum(self.outcomes.values())

    @property
    def messages(self):
        return len(self.message_ids)

    def as_dict(self):
        return {
            "due": self.due,
            "exited": sum(self.exited.values()),
            "decisions": self.decisions,
            **{f"decisions_{k}": v for k, v in sorted(self.outcomes.items())},
            **{f"skipped_{k}": v for k, v in sorted(self.reasons.items())},
            "deferred": self.deferred,
            "completed": self.completed,
            "messages": self.messages,
            "busy_shards": self.busy,
        }


def decision_round(*, now=None, customer_range=None, enqueue=True, policy=None):
    """Decide every active enrollment step due at ``now`` (for customers ``lo <= id < hi``
    with ``customer_range=(lo, hi)``); return a RoundResult. With ``enqueue`` the new
    messages' send tasks are queued when the transaction commits (``journeys_run`` sends
    them in process instead). ``policy``: a policy with ``decide()``; default manual
    priority."""
    from .triggers.exits import enrollments_exit_due, enrollments_exit_vanished

    now = now or timezone.now()
    started = time.monotonic()
    result = RoundResult()
    clock = _Clock(result.timings)
    with clock("exits"):
        result.exited = enrollments_exit_due(now=now, customer_range=customer_range) or {}
    with transaction.atomic():
        with clock("claim"):
            ranges, result.busy = data.lock_shards(now=now, customer_range=customer_range)
            due = data.claim_due(now=now, ranges=ranges)
            if data.due_steps(now=now, ranges=ranges).count() > len(due):  # a customer is missing
                for reason, count in enrollments_exit_vanished(now=now, ranges=ranges).items():
                    result.exited[reason] = result.exited.get(reason, 0) + count
        result.due = len(due)
        if len(due):
            config = data.load_config()
            with clock("plan"):
                plan = planning.build_plan(due, config, now=now, policy=policy, clock=clock)
            _write(plan, config, now=now, result=result, clock=clock)
            if enqueue and result.message_ids:
                _enqueue(result.message_ids)
        committing = time.monotonic()
    result.timings["commit"] = time.monotonic() - committing  # with the send tasks' publishing
    result.seconds = time.monotonic() - started
    logger.info(
        "decision round %s: %d due, %s, %d deferred, %d messages in %.2fs",
        customer_range or "all", result.due, dict(result.outcomes), result.deferred, result.messages, result.seconds,
    )
    return result


class _Clock:
    """``with clock("name"):`` adds the seconds spent inside to ``timings["name"]``."""

    def __init__(self, timings):
        self.timings = timings

    @contextlib.contextmanager
    def __call__(self, name):
        since = time.monotonic()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.monotonic() - since


def _enqueue(message_ids):
    from ..tasks import enqueue_on_commit, messages_send

    size = max(1, int(app_settings.SEND_BATCH_SIZE))
    for start in range(0, len(message_ids), size):
        enqueue_on_commit(messages_send, list(message_ids[start : start + size]))


# --- writing ---------------------------------------------------------------------------------------


def _write(plan, config, *, now, result, clock):
    decided = plan[plan["outcome"].notna()]
    with clock("write decisions and messages"):
        result.message_ids = _write_outbox(decided, now=now)
    result.outcomes.update(decided["outcome"].tolist())
    result.reasons.update(decided.loc[decided["outcome"] == SKIPPED, "reason"].tolist())
    # Outranked steps have no decision row (the logged one lists them in its candidates).
    outranked = int((plan["outcome"].isna() & (plan["reason"] == Decision.OUTRANKED)).sum())
    if outranked:
        result.reasons[Decision.OUTRANKED] += outranked
    with clock("advance"):
        result.deferred, result.completed = _advance(plan, config, now=now)


def _ints(series):
    """Python ints (None for missing): what the bulk insert writes."""
    return [None if v != v else int(v) for v in series.to_numpy(dtype="float64")]


def _write_outbox(decided, *, now):
    """Insert the decisions (a step already decided is skipped: unique (enrollment, step))
    and a queued message for each send decision inserted here; return the messages' ids.
    On PostgreSQL both go in one statement (``bulk.insert_rows_with_children``)."""
    if not len(decided):
        return []
    enrollments, steps = decided["enrollment_id"].tolist(), decided["step"].tolist()
    customers, campaigns = decided["customer_id"].tolist(), decided["campaign_id"].tolist()
    decisions = {
        "customer_id": customers, "campaign_id": campaigns, "enrollment_id": enrollments, "step": steps,
        "decided_at": now, "outcome": decided["outcome"].tolist(), "reason": decided["reason"].tolist(),
        "channel_id": _ints(decided["channel_id"]),
        "policy": [str(v)[:32] for v in decided["policy"].tolist()],
        "model_version": [str(v)[:64] for v in decided["model_version"].tolist()],
        "propensity": decided["propensity"].tolist(), "candidates": decided["candidates"].tolist(),
        "expected_value": [None if v != v else float(v) for v in decided["expected_value"].tolist()],
    }
    send = (decided["outcome"] == SEND).to_numpy()
    keys = [
        message_idempotency_key(customer_id=c, campaign_id=k, step=s, trigger_key=t) if sending else None
        for c, k, s, t, sending in zip(customers, campaigns, steps, decided["trigger_key"].tolist(), send.tolist())
    ]
    messages = {
        "template_id": _ints(decided["template_id"]), "idempotency_key": keys,
        "recipient": decided["address"].where(send, None).tolist(), "status": Message.QUEUED,
        "send_after": now, "created_at": now,
    }
    if connection.vendor == "postgresql":
        same = {name: bulk.Parent(name) for name in ("customer_id", "campaign_id", "enrollment_id", "step", "channel_id")}
        inserted = bulk.insert_rows_with_children(
            Decision, decisions, key=("enrollment_id", "step"), child=Message,
            child_data={"decision_id": bulk.Parent("pk"), **same, **messages}, has_child=send.tolist(),
        )
        return sorted(pk for (pk,) in inserted)
    bulk.insert_rows(Decision, decisions)
    ids = data.decision_ids(enrollments, steps, decided_at=now)
    rows = [i for i, (e, s) in enumerate(zip(enrollments, steps)) if send[i] and (e, s) in ids]
    if not rows:
        return []

    def pick(values):
        return [values[i] for i in rows]

    bulk.insert_rows(Message, {
        "decision_id": [ids[(enrollments[i], steps[i])] for i in rows],
        **{name: pick(decisions[name]) for name in ("customer_id", "campaign_id", "enrollment_id", "step", "channel_id")},
        **{name: pick(value) if isinstance(value, list) else value for name, value in messages.items()},
    })
    return data.queued_message_ids(pick(keys), send_after=now)


def _advance(plan, config, *, now):
    """Move every claimed enrollment on: to its next step (due ``delay`` after the trigger,
    and never sooner after this step than the campaign spaces them, so a deferred step
    pushes the following ones too), to its end, or to its deferred time; and store the
    holdout draw. The new values are computed here on the frame and written in bulk.
    Returns (deferred, completed)."""
    plan = plan.merge(
        config.steps.rename(columns={"step": "next", "delay": "next_delay"}).assign(step=lambda f: f["next"] - 1),
        on=["campaign_id", "step"], how="left",
    )
    action = plan["action"].to_numpy(dtype=object)
    has_next = plan["next"].notna().to_numpy()
    advancing = (action == "advance") & has_next
    completed = (action == "complete") | ((action == "advance") & ~has_next)
    on_schedule = plan["triggered_at"] + plan["next_delay"]
    spaced = pd.Timestamp(now) + (plan["next_delay"] - plan["delay"])
    due = on_schedule.where(on_schedule >= spaced, spaced)
    due = due.where(advancing, plan["defer_to"].where(action == "defer"))
    status = np.where(completed, Enrollment.COMPLETED, np.where(action == "exit", Enrollment.EXITED, Enrollment.ACTIVE))
    update = pd.DataFrame({
        "id": plan["enrollment_id"].to_numpy(dtype="int64"),
        "status": status,
        "next_step": np.where(advancing, plan["next"].fillna(0), plan["step"]).astype("int64"),
        "next_due_at": due,
        "exit_reason": np.where(action == "exit", "campaign_ended", ""),
        "held_out": plan["held_out"].astype(bool).to_numpy(),
    })
    data.update_enrollments(update, now=now)
    return int((action == "defer").sum()), int(completed.sum())
