"""The read side: querysets and the one bridge from the ORM to pandas frames.

Frames use the column names and dtypes documented in :mod:`oscar_journeys.ml.schema`.
Reads are built from Django querysets (their compiled SQL and parameters), then fetched in
bulk: ``COPY (SELECT ...) TO STDOUT`` on PostgreSQL, a raw cursor elsewhere. Large reads go
by customer-id range (see ``customer_id_ranges``) so memory stays bounded.
"""

import datetime as dt
import io

import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals
from django.db import connection
from django.db.models import BigIntegerField, CharField, FloatField
from django.db.models.functions import Cast, Extract

from .ml import schema
from .models import Event, Snapshot
from .models.snapshots import STORED_AS

# --- customer-id ranges -------------------------------------------------------------------


def _id_bounds(queryset):
    """(lowest, highest) customer_id in the queryset, or None. Two ``ORDER BY ... LIMIT 1``
    queries, which follow an index; MIN and MAX together make SQLite scan the table."""
    ids = queryset.order_by("customer_id").values_list("customer_id", flat=True)
    lowest = ids.first()
    return None if lowest is None else (lowest, ids.last())


def customer_id_ranges(shard_size, *, until=None, snapshot_days=None):
    """Half-open ``(lo, hi)`` customer-id ranges of ``shard_size`` ids that together cover
    every customer with events (before ``until`` when given) and, with ``snapshot_days``,
    every customer holding a snapshot on one of those days. Ranges are aligned on multiples
    of ``shard_size``, so a customer always falls in the same range."""
    if shard_size < 1:
        raise ValueError(f"shard_size must be at least 1, not {shard_size!r}")
    events = Event.objects.all()
    if until is not None:
        events = events.filter(occurred_at__lt=until)
    bounds = [_id_bounds(events)]
    if snapshot_days:
        bounds.append(_id_bounds(Snapshot.objects.filter(as_of__in=list(snapshot_days))))
    bounds = [b for b in bounds if b is not None]
    if not bounds:
        return []
    first = min(lo for lo, _ in bounds) // shard_size
    last = max(hi for _, hi in bounds) // shard_size
    return [(k * shard_size, (k + 1) * shard_size) for k in range(first, last + 1)]


# --- rows by id ------------------------------------------------------------------------------

# A run of ids is read by range when the range holds at most this many ids per id wanted.
DENSE_SPAN = 4
ID_WINDOW = 50_000


def in_chunk_size():
    """Ids per ``IN (...)`` list: SQLite takes at most 999 parameters a statement."""
    limit = connection.features.max_query_params
    return 10_000 if limit is None else max(1, limit - 20)


def chunks(values):
    """``values`` in lists that fit an ``IN (...)``."""
    values = list(values)
    size = in_chunk_size()
    for start in range(0, len(values), size):
        yield values[start : start + size]


def values_for_ids(queryset, field, ids, *columns):
    """Rows ``(field value, *columns)`` of ``queryset`` whose integer ``field`` is one of
    ``ids``, in a few queries whatever the number of ids. Sorted ids go in windows; a
    window whose ids are dense (the usual case: customers with something due) is read by
    range, one indexable condition, and the rows outside it are dropped here; a sparse one
    by ``IN`` lists that fit the database's parameter limit."""
    ids = np.unique(np.asarray(list(ids), dtype="int64"))
    wanted = set(ids.tolist())
    rows = []
    for start in range(0, len(ids), ID_WINDOW):
        window = ids[start : start + ID_WINDOW]
        lo, hi = int(window[0]), int(window[-1])
        if hi - lo + 1 <= DENSE_SPAN * len(window):
            found = queryset.filter(**{f"{field}__gte": lo, f"{field}__lte": hi}).values_list(field, *columns)
            rows.extend(row for row in found.iterator(chunk_size=10_000) if row[0] in wanted)
        else:
            for chunk in chunks(window.tolist()):
                rows.extend(queryset.filter(**{f"{field}__in": chunk}).values_list(field, *columns))
    return rows


# --- events ---------------------------------------------------------------------------------


def events_queryset(*, until, customer_ids=None):
    """Events with ``occurred_at < until``, for customers ``lo <= id < hi`` when
    ``customer_ids=(lo, hi)``, ordered by customer then time."""
    events = Event.objects.filter(occurred_at__lt=until)
    if customer_ids is not None:
        lo, hi = customer_ids
        events = events.filter(customer_id__gte=lo, customer_id__lt=hi)
    return events.order_by("customer_id", "occurred_at")


def events_frame(*, until, customer_ids=None):
    """The events frame (``schema.EVENT_COLUMNS``) of the events before ``until``.

    ``customer_ids``: None for every customer, or a half-open ``(lo, hi)`` id range.
    Rows come ordered by customer then time. Dtypes: customer_id int64, type category,
    occurred_at datetime64[ns, UTC], value float64 (NaN when none), category object
    (None when none)."""
    # Sorted in memory, not by the database: an ORDER BY makes both PostgreSQL and SQLite
    # follow the (customer, occurred_at) index and fetch the rows one random page at a
    # time, several times slower than a bitmap or full scan plus a numpy sort.
    events = events_queryset(until=until, customer_ids=customer_ids).order_by()
    if connection.vendor == "postgresql":
        frame = _read_postgresql(events)
    else:
        frame = _read_cursor(events, full_scan=_sqlite_scan_is_cheaper(customer_ids))
    if not len(frame):
        return _empty_events()
    order = np.lexsort((frame["occurred_at"].to_numpy(), frame["customer_id"].to_numpy()))
    frame = frame.take(order).reset_index(drop=True)
    category = frame["category"]
    if "" in category.cat.categories:
        category = category.cat.remove_categories([""])
    category = category.astype(object)  # the string objects are shared between rows
    return pd.DataFrame(
        {
            "customer_id": frame["customer_id"],
            "type": frame["type"],
            "occurred_at": frame["occurred_at"].dt.tz_localize("UTC"),
            "value": frame["value"],
            "category": category.where(category.notna(), None),
        },
        columns=list(schema.EVENT_COLUMNS),
    )


def _empty_events():
    return pd.DataFrame(
        {
            "customer_id": pd.Series(dtype="int64"),
            "type": pd.Series(dtype="category"),
            "occurred_at": pd.Series(dtype="datetime64[ns, UTC]"),
            "value": pd.Series(dtype="float64"),
            "category": pd.Series(dtype=object),
        }
    )


# The readers return customer_id int64, type and category as category, occurred_at as
# naive datetime64[ns] in UTC, value float64; in any order.
_READ_NAMES = ["customer_id", "type", "occurred_at", "value", "category"]


def _read_postgresql(events):
    # COPY (SELECT ...) TO STDOUT: one stream of CSV, parsed in C by pandas. Timestamps
    # travel as integer microseconds since the epoch: exact and quick to parse.
    events = events.annotate(
        at=Cast(Extract("occurred_at", "epoch", tzinfo=dt.timezone.utc) * 1_000_000, BigIntegerField()),
        amount=Cast("value", FloatField()),
    ).values_list("customer_id", "type", "at", "amount", "category")
    sql, params = events.query.sql_with_params()
    buffer = io.BytesIO()
    with connection.cursor() as cursor:
        with cursor.cursor.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)", params) as copy:
            for chunk in copy:
                buffer.write(chunk)
    if not buffer.getbuffer().nbytes:
        return _empty_events()
    buffer.seek(0)
    frame = pd.read_csv(
        buffer,
        header=None,
        names=_READ_NAMES,
        dtype={"customer_id": "int64", "type": "category", "occurred_at": "int64", "value": "float64",
               "category": "category"},
        keep_default_na=False,  # a category called "NA" stays one
        na_values={"value": [""]},
    )
    frame["occurred_at"] = frame["occurred_at"].to_numpy().astype("datetime64[us]").astype("datetime64[ns]")
    return frame


# On SQLite each row found through the (customer, occurred_at) index costs a b-tree seek
# into the table, about five times what a full scan costs per row (measured: 2.5 vs
# 0.45 us). A range holding more than this share of the customers is read with a full scan.
SQLITE_SCAN_SHARE = 0.2
FETCH_ROWS = 100_000  # rows turned into arrays at a time: Python tuples are large


def _sqlite_scan_is_cheaper(customer_ids):
    if connection.vendor != "sqlite":
        return False
    if customer_ids is None:
        return True
    bounds = _id_bounds(Event.objects.all())
    if bounds is None:
        return False
    lo, hi = max(customer_ids[0], bounds[0]), min(customer_ids[1], bounds[1] + 1)
    return (hi - lo) / (bounds[1] + 1 - bounds[0]) >= SQLITE_SCAN_SHARE


def _read_cursor(events, *, full_scan=False):
    # Casting the timestamp to text and the value to a float keeps the database driver
    # from building a Python datetime and Decimal per row.
    events = events.annotate(
        at=Cast("occurred_at", CharField()), amount=Cast("value", FloatField())
    ).values_list("customer_id", "type", "at", "amount", "category")
    sql, params = events.query.sql_with_params()
    if full_scan:  # SQLite only
        table = connection.ops.quote_name(Event._meta.db_table)
        sql = sql.replace(f"FROM {table}", f"FROM {table} NOT INDEXED", 1)
    chunks = []
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(FETCH_ROWS):
            chunks.append(_rows_to_frame(rows))
    if not chunks:
        return _empty_events()
    return pd.DataFrame(
        {
            name: union_categoricals([c[name] for c in chunks])
            if name in ("type", "category")
            else np.concatenate([c[name].to_numpy() for c in chunks])
            for name in _READ_NAMES
        }
    )


def _rows_to_frame(rows):
    frame = pd.DataFrame.from_records(rows, columns=_READ_NAMES, coerce_float=True)
    return pd.DataFrame(
        {
            "customer_id": frame["customer_id"].astype("int64"),
            "type": frame["type"].astype("category"),
            "occurred_at": pd.to_datetime(frame["occurred_at"], format="ISO8601").astype("datetime64[ns]"),
            "value": pd.to_numeric(frame["value"]).astype("float64"),
            "category": frame["category"].astype("category"),
        }
    )


# --- snapshots -----------------------------------------------------------------------------


def snapshots_frame(*, as_of, customer_ids=None, scores=False):
    """The snapshot frame (``schema.SNAPSHOT_COLUMNS``) of day ``as_of`` (a date, or a
    ``(first, last)`` pair of dates, both included), for customers ``lo <= id < hi`` when
    ``customer_ids=(lo, hi)``. ``scores=True`` adds the segment and prediction columns
    (``schema.SCORES``; ``next_order_days`` counted from the row's day)."""
    snapshots = Snapshot.objects.order_by("as_of", "customer_id")
    if isinstance(as_of, tuple):
        snapshots = snapshots.filter(as_of__gte=as_of[0], as_of__lte=as_of[1])
    else:
        snapshots = snapshots.filter(as_of=as_of)
    if customer_ids is not None:
        snapshots = snapshots.filter(customer_id__gte=customer_ids[0], customer_id__lt=customer_ids[1])
    stored_scores = [STORED_AS.get(name, name) for name in schema.SCORE_NAMES]
    columns = [*schema.SNAPSHOT_COLUMNS, *(stored_scores if scores else ())]
    rows = snapshots.values_list("customer_id", "as_of", *columns[2:])
    frame = pd.DataFrame.from_records(list(rows), columns=columns)
    kinds = {"int": "int64", "float": "float64", "str": object, "list": object, "Int64": "Int64"}
    frame["customer_id"] = frame["customer_id"].astype("int64")
    frame["as_of"] = frame["as_of"].astype(object)
    for name, (kind, _) in schema.FEATURES.items():
        frame[name] = frame[name].astype(kinds[kind])
    if scores:
        next_order = pd.to_datetime(frame.pop("next_order_date"))
        frame["next_order_days"] = (next_order - pd.to_datetime(frame["as_of"])).dt.days.astype("float64")
        for name, (kind, _) in schema.SCORES.items():
            frame[name] = frame[name].astype(kinds[kind])
        frame = frame[[*schema.SNAPSHOT_COLUMNS, *schema.SCORE_NAMES]]
    return frame
