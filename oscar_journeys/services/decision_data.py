"""The decision round's reads and its enrollment update: the ORM on one side, frames on
the other (inserts: ``bulk.py``).

Every read here is one query (or one per chunk of ids) whatever the number of customers;
``services/decisions.py`` holds the logic."""

import datetime as dt
import functools
import operator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from django.db import connection
from django.db.models import BigIntegerField, Max, Min, Q
from django.db.models.functions import Cast, Extract

from .. import app_settings
from ..models import (
    CampaignChannel,
    CampaignStep,
    Decision,
    DueStep,
    Enrollment,
    Event,
    ExclusionRule,
    FrequencyCap,
    Message,
    MessageTemplate,
    TargetGroup,
)
from ..models.campaigns import Campaign
from . import bulk, consent, target_groups

UNITS = {"minutes": "min", "hours": "h", "days": "D"}
COUNTED_STATUSES = (Message.QUEUED, Message.SENDING, Message.SENT)


def _range_filter(queryset, ids, field="customer_id"):
    """Restrict to the id range spanning ``ids`` (one indexable condition, no IN list);
    callers drop the rows outside ``ids`` in memory."""
    ids = np.asarray(ids, dtype="int64")
    return queryset.filter(**{f"{field}__gte": int(ids.min()), f"{field}__lte": int(ids.max())})


# --- claiming --------------------------------------------------------------------------------


CLAIM_COLUMNS = ["enrollment_id", "campaign_id", "customer_id", "trigger_key", "step", "held_out", "triggered_at",
                 "time_zone"]
CLAIM_DTYPES = {"enrollment_id": "int64", "campaign_id": "int64", "customer_id": "int64", "step": "int64",
                "triggered_at": "datetime64[ns, UTC]"}


# The decision rounds' advisory locks: (this number, shard index) on PostgreSQL.
LOCK_NAMESPACE = 0x4A4E


def lock_shards(*, now, customer_range=None):
    """Take, for the current transaction, the lock of every customer-id shard (ranges of
    DECISION_SHARD_SIZE ids, aligned on its multiples) the round covers: those overlapping
    ``customer_range``, or, for None, every shard with a step due. Two rounds then never
    decide for one customer at once: the second sees what the first wrote, so a frequency
    cap counts it. A shard another round holds is skipped, not waited for (its steps stay
    due for the next round). Returns ``(ranges, busy)``: the half-open customer-id ranges to
    claim (None: everything, on databases without advisory locks, where the writers queue
    anyway) and how many shards were skipped."""
    if connection.vendor != "postgresql":
        return (None if customer_range is None else [tuple(customer_range)]), 0
    size = max(1, int(app_settings.DECISION_SHARD_SIZE))
    if customer_range is None:
        shards = [lo // size for lo, _hi in due_customer_ranges(now=now, shard_size=size)]
    else:
        lo, hi = customer_range
        shards = list(range(lo // size, (hi - 1) // size + 1)) if hi > lo else []
    if not shards:
        return [], 0
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT k FROM unnest(%s::int[]) AS k WHERE pg_try_advisory_xact_lock(%s, k) ORDER BY k",
            [shards, LOCK_NAMESPACE],
        )
        held = [k for (k,) in cursor.fetchall()]
    ranges = [(k * size, (k + 1) * size) for k in held]
    if customer_range is not None:
        ranges = [(max(start, customer_range[0]), min(end, customer_range[1])) for start, end in ranges]
    return ranges, len(shards) - len(held)


def claim_due(*, now, ranges=None):
    """The active enrollments due at ``now`` (of customers in ``ranges``, half-open
    customer-id ranges; None for all) as a frame (``CLAIM_COLUMNS``). The caller holds the
    shards' locks (``lock_shards``)."""
    due = Enrollment.objects.filter(status=Enrollment.ACTIVE, due__due_at__lte=now)
    if ranges is not None:
        if not ranges:
            return pd.DataFrame({name: pd.Series(dtype=CLAIM_DTYPES.get(name, object)) for name in CLAIM_COLUMNS})
        # The range on both tables (one customer): a shard reads its own enrollments by the
        # customer index, not every enrollment of the table.
        due = due.filter(functools.reduce(operator.or_, (
            Q(due__customer_id__gte=lo, due__customer_id__lt=hi, customer_id__gte=lo, customer_id__lt=hi)
            for lo, hi in ranges
        )))
    postgresql = connection.vendor == "postgresql"
    if postgresql:  # microseconds since the epoch: a number per row, not a datetime to build
        due = due.annotate(
            at=Cast(Extract("triggered_at", "epoch", tzinfo=dt.timezone.utc) * 1_000_000, BigIntegerField())
        )
    rows = due.order_by("id").values_list(
        "id", "campaign_id", "customer_id", "trigger_key", "next_step", "held_out",
        "at" if postgresql else "triggered_at", "customer__time_zone",
    )
    # Straight from the database (no per-row converters); the frame parses the times in bulk.
    frame = bulk.read_frame(rows, CLAIM_COLUMNS, text=("trigger_key", "time_zone"), flags=("held_out",))
    if postgresql:
        frame["triggered_at"] = pd.to_datetime(frame["triggered_at"].astype("int64"), unit="us", utc=True)
    else:  # SQLite: text in UTC
        frame["triggered_at"] = pd.to_datetime(frame["triggered_at"], utc=True, format="ISO8601")
    return frame.astype({name: dtype for name, dtype in CLAIM_DTYPES.items() if name != "triggered_at"})


# --- configuration (small tables) ------------------------------------------------------------------


@dataclass
class Config:
    campaigns: pd.DataFrame  # campaign_id, active, running_from, running_until, priority, holdout_percent,
    #                          audience, window_start, window_end, target_group_id (NaN: none)
    steps: pd.DataFrame  # campaign_id, step, delay (Timedelta)
    channels: pd.DataFrame  # campaign_id, channel_id, kind, order, cc_id (enabled channels only)
    templates: pd.DataFrame  # campaign_id, step, channel_id, template_id
    channel_quiet: pd.DataFrame  # index channel_id: quiet_start, quiet_end
    caps: pd.DataFrame  # channel_kind, max_messages, period_days
    exclusions: list  # [(event_type, within_days, set of campaign ids or None)]
    target_groups: dict = field(default_factory=dict)  # {id: rules of the campaigns' groups; None: inactive}


def load_config():
    campaigns = pd.DataFrame.from_records(
        list(
            Campaign.objects.values_list(
                "id", "active", "starts_at", "ends_at", "priority", "holdout_percent", "audience",
                "send_window_start", "send_window_end", "target_group_id",
            )
        ),
        columns=["campaign_id", "active", "running_from", "running_until", "priority", "holdout_percent", "audience",
                 "window_start", "window_end", "target_group_id"],
    )
    campaigns["target_group_id"] = campaigns["target_group_id"].astype("float64")
    campaigns["running_from"] = pd.to_datetime(campaigns["running_from"], utc=True)
    campaigns["running_until"] = pd.to_datetime(campaigns["running_until"], utc=True)
    campaigns["holdout_percent"] = campaigns["holdout_percent"].astype("float64")
    for name in ("window_start", "window_end", "audience"):
        campaigns[name] = campaigns[name].astype(object)
    steps = pd.DataFrame.from_records(
        list(CampaignStep.objects.values_list("campaign_id", "position", "delay_value", "delay_unit")),
        columns=["campaign_id", "step", "value", "unit"],
    )
    steps["delay"] = pd.Series(
        [pd.Timedelta(int(v), unit=UNITS[u]) for v, u in zip(steps["value"], steps["unit"])], dtype="timedelta64[ns]"
    )
    links = CampaignChannel.objects.filter(channel__enabled=True).values_list(
        "campaign_id", "channel_id", "channel__kind", "order", "id", "channel__quiet_hours_start",
        "channel__quiet_hours_end",
    )
    links = pd.DataFrame.from_records(
        list(links), columns=["campaign_id", "channel_id", "kind", "order", "cc_id", "quiet_start", "quiet_end"]
    )
    templates = pd.DataFrame.from_records(
        list(MessageTemplate.objects.values_list("step__campaign_id", "step__position", "channel_id", "id")),
        columns=["campaign_id", "step", "channel_id", "template_id"],
    )
    caps = pd.DataFrame.from_records(
        list(FrequencyCap.objects.filter(active=True).values_list("channel_kind", "max_messages", "period_days")),
        columns=["channel_kind", "max_messages", "period_days"],
    )
    exclusions = []
    for rule in ExclusionRule.objects.filter(active=True).prefetch_related("campaigns"):
        ids = {c.pk for c in rule.campaigns.all()}
        exclusions.append((rule.event_type, rule.within_days, ids or None))
    quiet = links.drop_duplicates("channel_id").set_index("channel_id")[["quiet_start", "quiet_end"]].astype(object)
    group_ids = [int(g) for g in campaigns["target_group_id"].dropna().unique()]
    groups = TargetGroup.objects.filter(pk__in=group_ids).values_list("pk", "rules", "active")
    return Config(
        target_groups={pk: rules if active else None for pk, rules, active in groups},
        campaigns=campaigns,
        steps=steps[["campaign_id", "step", "delay"]].astype({"campaign_id": "int64", "step": "int64"}),
        channels=links[["campaign_id", "channel_id", "kind", "order", "cc_id"]],
        templates=templates,
        channel_quiet=quiet,
        caps=caps,
        exclusions=exclusions,
    )


# --- per-customer reads ----------------------------------------------------------------------------


def audience_mask(plan, config, *, now):
    """True where the row's customer is in its campaign's audience (no rules: everyone)
    and, for a campaign limited to a target group, a member of it (an inactive group has
    none); judged on the latest snapshot, the customer fields and the event counts
    (``target_groups.rule_set_masks``, one read for every campaign)."""
    result = np.ones(len(plan), dtype=bool)
    campaign_of = plan["campaign_id"].to_numpy()
    rule_sets, checks = {}, {}  # {key: (kind, rules)}, {campaign id: [key, ...]}
    campaigns = config.campaigns
    for cid, rule_set, group_id in zip(campaigns["campaign_id"], campaigns["audience"], campaigns["target_group_id"]):
        keys = []
        if rule_set:
            keys.append(("campaign", cid))
            rule_sets[keys[-1]] = (target_groups.AUDIENCE, rule_set)
        if not pd.isna(group_id):
            keys.append(("group", int(group_id)))
            rule_sets[keys[-1]] = (target_groups.TARGET, config.target_groups.get(int(group_id)))
        if keys:
            checks[cid] = keys
    wanted = plan["open"].to_numpy() & np.isin(campaign_of, list(checks))
    if not wanted.any():
        return result
    customers = np.unique(plan.loc[wanted, "customer_id"].to_numpy(dtype="int64"))
    masks = target_groups.rule_set_masks(rule_sets, customers, now=now)
    positions = np.searchsorted(customers, plan["customer_id"].to_numpy(dtype="int64"))
    for cid, keys in checks.items():
        rows = np.flatnonzero(wanted & (campaign_of == cid))
        for key in keys:
            result[rows] &= masks[key][positions[rows]]
    return result


def excluded_mask(plan, config, *, now):
    """True where an exclusion rule holds: the customer had an event of the rule's type
    within its days before ``now`` and the rule covers the campaign."""
    result = np.zeros(len(plan), dtype=bool)
    open_rows = plan["open"].to_numpy()
    if not config.exclusions or not open_rows.any():
        return result
    customers = plan.loc[open_rows, "customer_id"].to_numpy()
    since = now - dt.timedelta(days=max(days for _, days, _ in config.exclusions))
    events = _range_filter(
        Event.objects.filter(type__in={t for t, _, _ in config.exclusions}, occurred_at__gte=since, occurred_at__lte=now),
        customers,
    ).values_list("customer_id", "type", "occurred_at")
    events = pd.DataFrame.from_records(list(events), columns=["customer_id", "type", "occurred_at"])
    if not len(events):
        return result
    events["occurred_at"] = pd.to_datetime(events["occurred_at"], utc=True)
    for event_type, days, campaign_ids in config.exclusions:
        recent = events[(events["type"] == event_type) & (events["occurred_at"] >= pd.Timestamp(now) - pd.Timedelta(days=days))]
        hit = plan["customer_id"].isin(recent["customer_id"].unique()).to_numpy() & open_rows
        if campaign_ids is not None:
            hit &= plan["campaign_id"].isin(list(campaign_ids)).to_numpy()
        result |= hit
    return result


def reachability(customer_ids, kinds):
    return consent.reachability(customer_ids=[int(c) for c in customer_ids], kinds=[str(k) for k in kinds])


def recent_messages(customer_ids, caps, *, now):
    """Messages (queued, sending, sent) of these customers within the longest cap period:
    ``customer_id``, ``channel_kind``, ``at``."""
    since = now - dt.timedelta(days=int(caps["period_days"].max()))
    rows = _range_filter(
        Message.objects.filter(status__in=COUNTED_STATUSES, created_at__gte=since, created_at__lte=now), customer_ids
    ).values_list("customer_id", "channel__kind", "created_at")
    frame = pd.DataFrame.from_records(list(rows), columns=["customer_id", "channel_kind", "at"])
    frame = frame[frame["customer_id"].isin(np.unique(customer_ids))]
    frame["at"] = pd.to_datetime(frame["at"], utc=True)
    return frame


# --- writing ---------------------------------------------------------------------------------------


def decision_ids(enrollment_ids, steps, *, decided_at):
    """{(enrollment id, step): decision id} of the decisions written at ``decided_at`` for
    these (enrollment, step) pairs: one query on the decided_at index."""
    wanted = set(zip(np.asarray(enrollment_ids).tolist(), np.asarray(steps).tolist()))
    rows = _range_filter(Decision.objects.filter(decided_at=decided_at), [e for e, _ in wanted], "enrollment_id")
    return {
        (enrollment, step): pk
        for enrollment, step, pk in rows.values_list("enrollment_id", "step", "id")
        if (enrollment, step) in wanted
    }


def queued_message_ids(keys, *, send_after):
    """Ids of the queued messages with these idempotency keys, created to go at ``send_after``."""
    keys = set(keys)
    rows = Message.objects.filter(status=Message.QUEUED, send_after=send_after).values_list("idempotency_key", "id")
    return sorted(pk for key, pk in rows if key in keys)


def update_enrollments(frame, *, now):
    """Write ``status``, ``next_step``, ``next_due_at`` (NaT: none), ``exit_reason`` (""
    keeps the current one) and ``held_out`` of the enrollments in ``frame`` (column ``id``),
    and ``updated_at``; and their ``DueStep``: moved to the new due time, or deleted when
    the enrollment is no longer active or has no next step. On PostgreSQL one ``UPDATE ...
    FROM`` a ``COPY``'d temporary table per table (the enrollments' in place: no index covers
    what changes); elsewhere an ``executemany`` of one statement per row."""
    if not len(frame):
        return
    qn = connection.ops.quote_name
    table, due_table = qn(Enrollment._meta.db_table), qn(DueStep._meta.db_table)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            columns = ("id", "status", "next_step", "next_due_at", "exit_reason", "held_out")
            temp = bulk.copy_to_temp(cursor, Enrollment, {name: frame[name] for name in columns})
            with bulk.keyed_join(cursor):  # a shard's rows, not the whole table
                cursor.execute(
                    f"UPDATE {table} AS e SET status = v.status, next_step = v.next_step, "
                    "next_due_at = v.next_due_at, "
                    "exit_reason = CASE WHEN v.exit_reason = '' THEN e.exit_reason ELSE v.exit_reason END, "
                    f"held_out = v.held_out, updated_at = %s FROM {temp} AS v WHERE e.id = v.id",
                    [now],
                )
                cursor.execute(
                    f"DELETE FROM {due_table} AS d USING {temp} AS v WHERE d.enrollment_id = v.id "
                    "AND (v.status <> %s OR v.next_due_at IS NULL)",
                    [Enrollment.ACTIVE],
                )
                cursor.execute(
                    f"UPDATE {due_table} AS d SET due_at = v.next_due_at FROM {temp} AS v "
                    "WHERE d.enrollment_id = v.id AND v.status = %s AND v.next_due_at IS NOT NULL "
                    "AND d.due_at <> v.next_due_at",
                    [Enrollment.ACTIVE],
                )
            cursor.execute(f"DROP TABLE {temp}")
            return
        adapt = connection.ops.adapt_datetimefield_value
        due = [None if pd.isna(t) else adapt(t.to_pydatetime()) for t in frame["next_due_at"]]
        ids, statuses = frame["id"].tolist(), frame["status"].tolist()
        cursor.executemany(
            f"UPDATE {table} SET status = %s, next_step = %s, next_due_at = %s, "
            "exit_reason = CASE WHEN %s = '' THEN exit_reason ELSE %s END, held_out = %s, updated_at = %s "
            "WHERE id = %s",
            [
                (status, step, at, reason, reason, held, adapt(now), pk)
                for status, step, at, reason, held, pk in zip(
                    statuses, frame["next_step"].tolist(), due, frame["exit_reason"].tolist(),
                    frame["held_out"].tolist(), ids,
                )
            ],
        )
        scheduled = [status == Enrollment.ACTIVE and at is not None for status, at in zip(statuses, due)]
        cursor.executemany(
            f"DELETE FROM {due_table} WHERE enrollment_id = %s",
            [(pk,) for pk, keep in zip(ids, scheduled) if not keep],
        )
        cursor.executemany(
            f"UPDATE {due_table} SET due_at = %s WHERE enrollment_id = %s",
            [(at, pk) for pk, at, keep in zip(ids, due, scheduled) if keep],
        )


def due_steps(*, now, ranges=None):
    """The ``DueStep`` rows due at ``now``, of customers in ``ranges`` (half-open customer-id
    ranges; None: every customer)."""
    steps = DueStep.objects.filter(due_at__lte=now)
    if ranges is None:
        return steps
    return steps.filter(
        functools.reduce(operator.or_, (Q(customer_id__gte=lo, customer_id__lt=hi) for lo, hi in ranges), Q(pk__in=[]))
    )


def due_customer_ranges(*, now, shard_size):
    """Half-open customer-id ranges of ``shard_size`` (aligned on its multiples) covering
    every customer with an active enrollment due at ``now``."""
    due = due_steps(now=now).aggregate(lowest=Min("customer_id"), highest=Max("customer_id"))
    lowest, highest = due["lowest"], due["highest"]
    if lowest is None:
        return []
    return [(k * shard_size, (k + 1) * shard_size) for k in range(lowest // shard_size, highest // shard_size + 1)]

