"""Building daily feature snapshots (the timeline approach): one row per customer and day.

``snapshot_build`` reads the events of a range of customers, computes their features as of
the end of each requested day (``ml.features``), scores them with the latest nightly models
when there are some (segments and predictions, ``services.nightly``) and replaces that
range's rows for those days in one transaction, so running it twice leaves the same rows.
Celery shards the work by customer-id range (``tasks.snapshot_build_all``); each shard is
one call with ``customer_range``.
"""

import datetime as dt
import io
import json
import logging
import time
from dataclasses import dataclass, field

import pandas as pd
from django.db import connection, transaction
from django.utils import timezone

from .. import app_settings
from ..ml import schema
from ..ml.features import iter_snapshots
from ..models import Snapshot
from ..models.snapshots import STORED_AS
from ..selectors import customer_id_ranges, events_frame
from .timeline import timeline_repair

logger = logging.getLogger(__name__)

WRITE_ROWS = 200_000  # snapshot rows stored per transaction, at most (about)


# --- the shop's days ---------------------------------------------------------------------


def shop_day_end(as_of):
    """The instant the shop's day ``as_of`` ends: midnight after it in settings.TIME_ZONE.

    A snapshot "as of" a day holds the events that occurred strictly before this instant."""
    tz = timezone.get_default_timezone()
    return dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time.min, tzinfo=tz)


def shop_today(now=None):
    """Today's date in the shop's time zone (settings.TIME_ZONE)."""
    return timezone.localdate(now or timezone.now(), timezone.get_default_timezone())


def shop_yesterday(now=None):
    """The last full day in the shop's time zone: what the nightly build snapshots."""
    return shop_today(now) - dt.timedelta(days=1)


def snapshot_days(as_of, backfill_days=0):
    """``as_of`` and the ``backfill_days`` days before it, oldest first."""
    _check_day(as_of, backfill_days)
    return [as_of - dt.timedelta(days=n) for n in range(backfill_days, -1, -1)]


def snapshot_shards(*, as_of, backfill_days=0, shard_size=None):
    """The customer-id ranges a build of those days covers (see ``customer_id_ranges``)."""
    days = snapshot_days(as_of, backfill_days)
    return customer_id_ranges(
        shard_size or app_settings.SNAPSHOT_SHARD_SIZE, until=shop_day_end(as_of), snapshot_days=days
    )


def _check_day(as_of, backfill_days):
    if isinstance(as_of, dt.datetime) or not isinstance(as_of, dt.date):
        raise ValueError(f"as_of must be a date, not {as_of!r}")
    if not isinstance(backfill_days, int) or backfill_days < 0:
        raise ValueError(f"backfill_days must be a whole number of days, 0 or more, not {backfill_days!r}")


# --- building -------------------------------------------------------------------------------


@dataclass
class SnapshotBuildResult:
    """What one ``snapshot_build`` did; the seconds split into read / compute (features) /
    score (segments and predictions) / write."""

    rows: int = 0
    stage_changes: int = 0
    training_run: int | None = None  # version of the models that scored the rows
    days: list = field(default_factory=list)
    shards: int = 0
    seconds: float = 0.0
    read_seconds: float = 0.0
    compute_seconds: float = 0.0
    score_seconds: float = 0.0
    write_seconds: float = 0.0


@dataclass
class SnapshotProgress:
    """Passed to ``snapshot_build(progress=...)`` after each shard is written."""

    shard: int  # 1-based
    shards: int
    customer_range: tuple
    rows_per_day: dict  # {as_of: rows written}


LATEST = object()  # snapshot_build(models=LATEST): the models of the latest successful training run


def snapshot_build(*, as_of, customer_range=None, backfill_days=0, now=None, progress=None, models=LATEST):
    """Compute and store the snapshots of ``as_of`` and the ``backfill_days`` days before.

    ``customer_range``: a half-open ``(lo, hi)`` customer-id range (one shard), or None
    for every customer, in ranges of ``OSCAR_JOURNEYS_SNAPSHOT_SHARD_SIZE`` ids. For each
    range, the rows of those days are deleted and the new ones inserted in one transaction
    (a long backfill: one per batch of whole days, see WRITE_ROWS); a customer without
    events before the end of a day gets no row that day.
    ``models``: the nightly models that score the rows (``ml.nightly.NightlyModels``):
    by default those of the latest successful training run; None, or no run yet, leaves
    the score columns empty. Stage changes since the day before become events.
    ``now`` is stored as ``computed_at``. ``progress(SnapshotProgress)`` is called after
    each range. Returns a ``SnapshotBuildResult``."""
    from .nightly import latest_models

    if models is LATEST:
        models = latest_models()
    started = time.perf_counter()
    now = now or timezone.now()
    days = snapshot_days(as_of, backfill_days)
    timeline_repair()  # events a stale session recorded for a since-merged customer
    if customer_range is None:
        ranges = snapshot_shards(as_of=as_of, backfill_days=backfill_days)
    else:
        lo, hi = customer_range
        if not lo < hi:
            raise ValueError(f"customer_range must be (lo, hi) with lo < hi, not {customer_range!r}")
        ranges = [(lo, hi)]
    cutoffs = {day: pd.Timestamp(shop_day_end(day)) for day in days}
    result = SnapshotBuildResult(days=days, shards=len(ranges), training_run=getattr(models, "version", None))
    for number, (lo, hi) in enumerate(ranges, start=1):
        clock = time.perf_counter()
        events = events_frame(until=shop_day_end(as_of), customer_ids=(lo, hi))
        result.read_seconds += time.perf_counter() - clock

        rows_per_day = _build_range(events, cutoffs, (lo, hi), now, result, models)
        del events
        if progress is not None:
            progress(SnapshotProgress(number, len(ranges), (lo, hi), rows_per_day))
    result.seconds = time.perf_counter() - started
    logger.info(
        "Snapshots %s..%s: %d rows in %d shards, %.1fs", days[0], days[-1], result.rows, result.shards, result.seconds
    )
    return result


def _build_range(events, cutoffs, customer_range, now, result, models=None):
    """Compute (and score) each day and store the days in batches of about WRITE_ROWS rows,
    so a long backfill never holds every day in memory; each batch replaces its days, and
    records their stage changes, at once."""
    from .nightly import record_stage_changes, score_day, stored_stages

    rows_per_day, pending, changes = {}, [], []
    previous = None
    if models is not None:
        previous = stored_stages(min(cutoffs) - dt.timedelta(days=1), customer_range)

    def store():
        clock = time.perf_counter()
        batch = pd.concat([frame for _, frame in pending], ignore_index=True)
        with transaction.atomic():
            snapshot_replace(
                batch, days=[day for day, _ in pending], customer_range=customer_range, now=now,
                training_run=getattr(models, "version", None),
            )
            for day, day_changes in changes:
                result.stage_changes += record_stage_changes(day_changes, day=day, now=now)
        result.write_seconds += time.perf_counter() - clock
        result.rows += len(batch)
        pending.clear()
        changes.clear()

    computed = iter_snapshots(events, cutoffs)
    while True:
        clock = time.perf_counter()
        item = next(computed, None)
        if item is None:
            result.compute_seconds += time.perf_counter() - clock
            break
        day, frame = item
        result.compute_seconds += time.perf_counter() - clock
        if models is not None:
            clock = time.perf_counter()
            scored = score_day(frame, models, previous)
            frame, previous = scored.frame, scored.stages
            changes.append((day, scored.changes))
            result.score_seconds += time.perf_counter() - clock
        rows_per_day[day] = len(frame)
        pending.append((day, frame))
        if sum(len(frame) for _, frame in pending) >= WRITE_ROWS:
            store()
    if pending:
        store()
    return rows_per_day


# --- writing --------------------------------------------------------------------------------


def snapshot_replace(frame, *, days, customer_range, now, training_run=None):
    """Replace the rows of ``days`` for customers ``lo <= id < hi`` by the snapshot frame
    ``frame`` (``schema.SNAPSHOT_COLUMNS``, and the ``schema.SCORES`` columns of
    ``training_run`` when it has them), in one transaction."""
    lo, hi = customer_range
    with transaction.atomic():
        stale = Snapshot.objects.filter(as_of__in=days, customer_id__gte=lo, customer_id__lt=hi)
        # One DELETE statement: snapshots are derived rows with nothing pointing at them, and
        # QuerySet.delete() would load every row to send delete signals when any project
        # receiver listens to all models (haystack does).
        stale._raw_delete(stale.db)
        if len(frame):
            if connection.vendor == "postgresql":
                _copy_in(frame, now, training_run)
            else:
                _insert_many(frame, now, training_run)


# The score columns as stored: next_order_days becomes the date next_order_date.
STORED_SCORES = tuple(STORED_AS.get(name, name) for name in schema.SCORE_NAMES)
TEXT_COLUMNS = ("favourite_category", *(name for name, (kind, _) in schema.SCORES.items() if kind == "str"))


def _columns(scored=False):
    """(frame column, database column) pairs of the Snapshot fields we write."""
    names = ["customer_id", "as_of", "computed_at", *schema.FEATURE_NAMES]
    if scored:
        names += [*STORED_SCORES, "training_run"]
    fields = {f.attname: f.column for f in Snapshot._meta.concrete_fields}
    return [(name, fields[name]) for name in names]


def _prepare(frame, now, training_run=None):
    out = frame.copy()
    out["computed_at"] = now
    out["favourite_categories"] = out["favourite_categories"].map(json.dumps)
    scored = "lifecycle_stage" in out.columns
    if scored:
        days = pd.to_timedelta(out.pop("next_order_days").round(), unit="D")
        out["next_order_date"] = (pd.to_datetime(out["as_of"]) + days).dt.strftime("%Y-%m-%d")
        out["training_run"] = training_run
    return out[[name for name, _ in _columns(scored)]], _columns(scored)


def _copy_in(frame, now, training_run=None):
    out, columns = _prepare(frame, now, training_run)
    out["as_of"] = out["as_of"].map(dt.date.isoformat)
    out["computed_at"] = now.isoformat()
    buffer = io.StringIO()
    out.to_csv(buffer, header=False, index=False)
    qn = connection.ops.quote_name
    names = ", ".join(qn(column) for _, column in columns)
    not_null = ", ".join(qn(column) for name, column in columns if name in TEXT_COLUMNS)
    sql = (
        f"COPY {qn(Snapshot._meta.db_table)} ({names}) FROM STDIN "
        f"WITH (FORMAT csv, FORCE_NOT_NULL ({not_null}))"
    )
    with connection.cursor() as cursor:
        with cursor.cursor.copy(sql) as copy:
            copy.write(buffer.getvalue())


def _insert_many(frame, now, training_run=None):
    out, columns = _prepare(frame, now, training_run)
    ops = connection.ops
    days = {day: ops.adapt_datefield_value(day) for day in out["as_of"].unique()}
    out["as_of"] = out["as_of"].map(days)
    out["computed_at"] = ops.adapt_datetimefield_value(now)
    out = out.astype(object)
    rows = out.where(out.notna(), None).itertuples(index=False, name=None)
    qn = ops.quote_name
    names = ", ".join(qn(column) for _, column in columns)
    marks = ", ".join(["%s"] * len(columns))
    sql = f"INSERT INTO {qn(Snapshot._meta.db_table)} ({names}) VALUES ({marks})"
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)
