"""Target groups: who meets a group's rules as of a moment, how many they are, a preview,
and the check the decision rounds apply to campaigns limited to a group.

The rules (``ml.audience`` with ``TARGET_FIELDS`` and event conditions) read one row per
customer (``RuleFrames``):

- the snapshot columns (features, segments and predictions) of the customer's latest
  snapshot: the latest day with snapshots up to ``now``, or, for a customer missing on that
  day (a shard the nightly chain has not reached yet), their newest of the
  ``SNAPSHOT_LOOKBACK_DAYS`` days before it;
- the customer fields (``audience.derive_customer_fields``);
- one count per event condition, from one aggregated query over the events (0 without).

Only the columns the rules read are loaded, and every customer is read in chunks of
``CHUNK_CUSTOMERS`` ids, so memory stays bounded however big the shop. Merged customers
are left out (their events and snapshots belong to the survivor).
"""

import datetime as dt
import json
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from django.db.models import Count, Exists, Max, OuterRef, Q
from django.utils import timezone

from ..events import event_types
from ..ml import audience
from ..models import Customer, Event, Snapshot, TargetGroup
from ..models.snapshots import STORED_AS
from . import bulk

logger = logging.getLogger(__name__)

CHUNK_CUSTOMERS = 50_000  # customers whose rows are read and judged at once
SNAPSHOT_LOOKBACK_DAYS = 7  # how old a customer's latest snapshot may be, before the latest day
PREVIEW_ROWS = 20

_STORED = STORED_AS  # ``next_order_days`` is stored as the date ``next_order_date``


def target_fields(rules):
    """The fields (``audience.Field``, by name) a target group's rules read; raises
    ``audience.AudienceError`` when they are not valid."""
    return audience.rule_fields(rules, fields=audience.TARGET_FIELDS, events=event_types())


# --- the frame the rules read ---------------------------------------------------------------


class RuleFrames:
    """Builds, for one moment and one set of fields, the frames the rules read: one row
    per customer id asked for, indexed by it, with one column per field."""

    def __init__(self, fields, *, now, snapshot_day=None):
        self.fields = list(fields.values())
        self.now = now
        self.snapshot_fields = [
            f for f in self.fields if f.event is None and f.name not in audience.CUSTOMER_FIELDS
        ]
        self.customer_fields = [f for f in self.fields if f.name in audience.CUSTOMER_FIELDS]
        self.events = list({f.event.column: f.event for f in self.fields if f.event is not None}.values())
        self.day = None
        if self.snapshot_fields:
            last = snapshot_day or now.date()
            self.day = Snapshot.objects.filter(as_of__lte=last).aggregate(day=Max("as_of"))["day"]

    def frame(self, customer_ids):
        ids = np.unique(np.asarray(customer_ids, dtype="int64"))
        frame = pd.DataFrame(index=pd.Index(ids, name="customer_id"))
        if len(ids):
            lo, hi = int(ids[0]), int(ids[-1])
            if self.snapshot_fields and self.day is not None:
                frame = frame.join(self._snapshots(lo, hi))
            if self.customer_fields:
                rows = Customer.objects.filter(pk__gte=lo, pk__lte=hi).values_list("pk", *audience.CUSTOMER_COLUMNS)
                people = pd.DataFrame.from_records(list(rows), columns=["customer_id", *audience.CUSTOMER_COLUMNS])
                people = people.set_index("customer_id").reindex(frame.index)
                derived = audience.derive_customer_fields(people, now=self.now)
                frame = frame.join(derived[[f.column for f in self.customer_fields]])
            if self.events:
                frame = frame.join(self._event_counts(lo, hi))
        for field in self.snapshot_fields + self.customer_fields:
            if field.column not in frame:
                frame[field.column] = pd.Series(np.nan, index=frame.index, dtype=object if field.kind in (
                    "str", "list") else "float64")
        for counted in self.events:
            frame[counted.column] = frame[counted.column].fillna(0).astype("int64") if counted.column in frame else 0
        return frame

    def _snapshots(self, lo, hi):
        """The snapshot columns of each customer in ``lo..hi``: their row of the latest day,
        else their newest within the lookback before it."""
        names = [f.column for f in self.snapshot_fields]
        stored = [_STORED.get(name, name) for name in names]
        in_range = Snapshot.objects.filter(customer_id__gte=lo, customer_id__lte=hi)
        latest = in_range.filter(as_of=self.day).order_by()
        older = (
            in_range.filter(as_of__gte=self.day - dt.timedelta(days=SNAPSHOT_LOOKBACK_DAYS), as_of__lt=self.day)
            .filter(~Exists(Snapshot.objects.filter(customer_id=OuterRef("customer_id"), as_of=self.day)))
            .order_by("customer_id", "as_of")
        )
        columns = ["customer_id", "as_of", *stored]
        kinds = {name: Snapshot._meta.get_field(name).get_internal_type() for name in stored}
        text = [name for name, kind in kinds.items() if kind in ("CharField", "JSONField")]
        # Straight from the database (``bulk.read_frame``): no Python object per value.
        parts = [bulk.read_frame(rows.values_list(*columns), columns, text=text) for rows in (latest, older)]
        parts = [part for part in parts if len(part)] or parts[:1]
        frame = pd.concat(parts, ignore_index=True).drop_duplicates("customer_id", keep="last")
        frame["customer_id"] = frame["customer_id"].astype("int64")
        for name in (name for name, kind in kinds.items() if kind == "JSONField"):
            frame[name] = frame[name].map(lambda value: json.loads(value) if value else [])
        if "next_order_days" in names:
            days = pd.to_datetime(frame["next_order_date"]) - pd.to_datetime(frame["as_of"])
            frame["next_order_days"] = days.dt.days.astype("float64")
        return frame.set_index("customer_id")[names]

    def _event_counts(self, lo, hi):
        """One column per event condition: the customer's events it counts (missing: none)."""
        longest = max(counted.within_days for counted in self.events)
        events = Event.objects.filter(
            customer_id__gte=lo,
            customer_id__lte=hi,
            type__in=sorted({counted.type for counted in self.events}),
            occurred_at__gte=self.now - dt.timedelta(days=longest),
            occurred_at__lte=self.now,
        )
        counts = {f"n{i}": Count("pk", filter=self._counted(c)) for i, c in enumerate(self.events)}
        rows = events.order_by().values("customer_id").annotate(**counts).values_list("customer_id", *counts)
        frame = pd.DataFrame.from_records(list(rows), columns=["customer_id", *(c.column for c in self.events)])
        return frame.set_index("customer_id")

    def _counted(self, counted):
        condition = Q(type=counted.type, occurred_at__gte=self.now - dt.timedelta(days=counted.within_days))
        if counted.category:
            condition &= Q(category__iexact=counted.category)
        return condition


def rule_frame(customer_ids, fields, *, now, snapshot_day=None):
    """The frame ``fields`` (``audience.Field`` by name) read for these customers; snapshot
    fields from the latest snapshot day up to ``snapshot_day`` (default: ``now``'s date)."""
    return RuleFrames(fields, now=now, snapshot_day=snapshot_day).frame(customer_ids)


# --- members, count, preview ----------------------------------------------------------------


def _customer_chunks():
    ids = np.fromiter(Customer.objects.canonical().order_by("pk").values_list("pk", flat=True), dtype="int64")
    for start in range(0, len(ids), CHUNK_CUSTOMERS):
        yield ids[start:start + CHUNK_CUSTOMERS]


def _member_frames(rules, *, now):
    """Yield, chunk by chunk, the frame of the members (the columns the rules read)."""
    fields = target_fields(rules)
    frames = RuleFrames(fields, now=now)
    for chunk in _customer_chunks():
        frame = frames.frame(chunk)
        yield frame[audience.evaluate(rules, frame, fields=audience.TARGET_FIELDS, events=event_types())], frames


def target_group_members(*, rules, now=None):
    """The ids (sorted numpy array) of the customers meeting ``rules`` at ``now``."""
    now = now or timezone.now()
    found = [frame.index.to_numpy() for frame, _ in _member_frames(rules, now=now)]
    return np.concatenate(found) if found else np.zeros(0, dtype="int64")


def target_group_count(*, rules=None, group=None, now=None):
    """How many customers meet ``rules`` (or ``group``'s rules) at ``now``. With ``group``,
    the count is kept on it (``last_count``, ``last_counted_at``)."""
    now = now or timezone.now()
    count = sum(len(frame) for frame, _ in _member_frames(group.rules if rules is None else rules, now=now))
    if group is not None:
        _record_count(group, count, now)
    return count


@dataclass
class Preview:
    count: int  # every member
    frame: pd.DataFrame  # the first members by id: the columns the rules read, by field name
    snapshot_day: dt.date = None  # the latest snapshot day read (None: no snapshot column read)


def target_group_preview(*, rules, now=None, limit=PREVIEW_ROWS, group=None):
    """The number of customers meeting ``rules`` at ``now`` and the first ``limit`` of
    them (by id) with the values the rules read. With ``group`` (whose rules these are),
    the count is kept on it."""
    now = now or timezone.now()
    fields = target_fields(rules)
    count, first, day = 0, [], None
    for frame, frames in _member_frames(rules, now=now):
        count += len(frame)
        day = frames.day
        if sum(len(f) for f in first) < limit and len(frame):
            first.append(frame.iloc[:limit])
    columns = {field.column: name for name, field in fields.items()}
    head = pd.concat(first).iloc[:limit] if first else pd.DataFrame(index=pd.Index([], name="customer_id"))
    head = head.reindex(columns=list(columns)).rename(columns=columns)
    if group is not None:
        _record_count(group, count, now)
    return Preview(count=count, frame=head, snapshot_day=day)


def _record_count(group, count, now):
    TargetGroup.objects.filter(pk=group.pk).update(last_count=count, last_counted_at=now)
    group.last_count, group.last_counted_at = count, now


# --- the decision rounds --------------------------------------------------------------------


AUDIENCE, TARGET = "audience", "target"


def rule_set_masks(rule_sets, customer_ids, *, now):
    """{key: boolean array over ``customer_ids``} for ``rule_sets`` ({key: (kind, rules)}):
    kind ``AUDIENCE`` for a campaign audience (``audience.FIELDS``), ``TARGET`` for a
    target group's rules; rules None: nobody (an inactive group). The frame is read once
    for all of them. A stored rule set that is no longer valid (a field or event type
    since removed) is logged and matches nobody, so it cannot stop a round."""
    types = event_types()
    options = {AUDIENCE: {}, TARGET: {"fields": audience.TARGET_FIELDS, "events": types}}
    needed, valid = {}, {}
    for key, (kind, rules) in rule_sets.items():
        if rules is None:
            continue
        try:
            needed.update(audience.rule_fields(rules, **options[kind]))
        except audience.AudienceError as error:
            logger.error("Skipping the %s rules %r, no longer valid: %s", kind, key, error)
            continue
        valid[key] = (kind, rules)
    nobody = np.zeros(len(customer_ids), dtype=bool)
    masks = {key: nobody for key in rule_sets}
    if valid:
        frame = rule_frame(customer_ids, needed, now=now).reindex(np.asarray(customer_ids, dtype="int64"))
        for key, (kind, rules) in valid.items():
            masks[key] = audience.evaluate(rules, frame, **options[kind])
    return masks
