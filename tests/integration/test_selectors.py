"""selectors: the events and snapshot frames read from the database, on SQLite and PostgreSQL."""

import datetime as dt
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from oscar_journeys.ml import schema
from oscar_journeys.models import Snapshot
from oscar_journeys.selectors import customer_id_ranges, events_frame, snapshots_frame
from oscar_journeys.services.timeline import timeline_record_event

UTC = dt.timezone.utc
T0 = dt.datetime(2025, 7, 1, 12, 0, tzinfo=UTC)  # summer: the shop (London) is at UTC+1


@pytest.fixture
def timeline(make_customer):
    ann, bob, cat = make_customer(), make_customer(), make_customer()
    record = timeline_record_event
    record(customer=ann, type="product_viewed", occurred_at=T0 - dt.timedelta(days=2), category="Books")
    record(customer=ann, type="order_placed", occurred_at=T0 - dt.timedelta(microseconds=1), value=Decimal("12.34"))
    record(customer=ann, type="user_logged_in", occurred_at=T0 - dt.timedelta(days=5, microseconds=250))
    record(customer=ann, type="order_cancelled", occurred_at=T0)  # not before T0
    record(customer=bob, type="basket_addition", occurred_at=T0 - dt.timedelta(hours=1), value=Decimal("5"))
    record(customer=cat, type="user_logged_in", occurred_at=T0 + dt.timedelta(days=1))
    return ann, bob, cat


def test_events_frame_columns_dtypes_and_values(timeline):
    ann, bob, cat = timeline
    frame = events_frame(until=T0)
    assert list(frame.columns) == list(schema.EVENT_COLUMNS)
    assert frame["customer_id"].dtype == np.int64
    assert isinstance(frame["type"].dtype, pd.CategoricalDtype)
    assert frame["occurred_at"].dtype == "datetime64[ns, UTC]"
    assert frame["value"].dtype == np.float64
    assert frame["category"].dtype == object
    # Ordered by customer then time; the event at T0 and the later one are left out.
    assert frame["customer_id"].tolist() == [ann.pk, ann.pk, ann.pk, bob.pk]
    assert frame["type"].astype(str).tolist() == ["user_logged_in", "product_viewed", "order_placed", "basket_addition"]
    assert frame["occurred_at"].tolist() == [
        pd.Timestamp(T0 - dt.timedelta(days=5, microseconds=250)),
        pd.Timestamp(T0 - dt.timedelta(days=2)),
        pd.Timestamp(T0 - dt.timedelta(microseconds=1)),
        pd.Timestamp(T0 - dt.timedelta(hours=1)),
    ]
    assert frame["value"].iloc[2] == pytest.approx(12.34) and frame["value"].iloc[3] == 5.0
    assert np.isnan(frame["value"].iloc[0])
    assert frame["category"].tolist() == [None, "Books", None, None]


def test_events_frame_by_customer_range(timeline):
    ann, bob, cat = timeline
    later = T0 + dt.timedelta(days=2)
    assert set(events_frame(until=later, customer_ids=(bob.pk, cat.pk + 1))["customer_id"]) == {bob.pk, cat.pk}
    # hi is not included
    assert set(events_frame(until=later, customer_ids=(ann.pk, bob.pk))["customer_id"]) == {ann.pk}


def test_events_frame_without_events(db):
    frame = events_frame(until=T0)
    assert len(frame) == 0 and list(frame.columns) == list(schema.EVENT_COLUMNS)
    assert frame["occurred_at"].dtype == "datetime64[ns, UTC]"


def test_events_frame_follows_merges(timeline, make_customer):
    from oscar_journeys.services.customers import customer_merge

    ann, bob, cat = timeline
    customer_merge(survivor=ann, merged=bob, reason="admin")
    assert set(events_frame(until=T0)["customer_id"]) == {ann.pk}


def test_customer_id_ranges_are_aligned_and_cover_every_customer(timeline):
    ann, bob, cat = timeline
    ranges = customer_id_ranges(2)
    assert ranges[0][0] <= ann.pk and ranges[-1][1] > cat.pk
    assert all(lo % 2 == 0 and hi - lo == 2 for lo, hi in ranges)
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    # cat's only event is after T0
    assert customer_id_ranges(1, until=T0) == [(k, k + 1) for k in range(ann.pk, bob.pk + 1)]
    with pytest.raises(ValueError, match="shard_size"):
        customer_id_ranges(0)


def test_customer_id_ranges_include_customers_with_snapshots_on_the_days(make_customer):
    lonely = make_customer()
    Snapshot.objects.create(customer=lonely, as_of=dt.date(2025, 1, 1))
    assert customer_id_ranges(10) == []
    assert customer_id_ranges(10, snapshot_days=[dt.date(2025, 1, 2)]) == []
    lo = lonely.pk // 10 * 10
    assert customer_id_ranges(10, snapshot_days=[dt.date(2025, 1, 1)]) == [(lo, lo + 10)]


def test_snapshots_frame(make_customer):
    one, two = make_customer(), make_customer()
    day = dt.date(2025, 1, 1)
    Snapshot.objects.create(customer=one, as_of=day, frequency=2, favourite_categories=["Books"])
    Snapshot.objects.create(customer=two, as_of=day, recency_days=3.5)
    Snapshot.objects.create(customer=two, as_of=day + dt.timedelta(days=1))
    frame = snapshots_frame(as_of=day)
    assert list(frame.columns) == list(schema.SNAPSHOT_COLUMNS)
    assert frame["customer_id"].tolist() == [one.pk, two.pk]
    assert frame["frequency"].dtype == np.int64 and frame["frequency"].tolist() == [2, 0]
    assert np.isnan(frame["recency_days"].iloc[0]) and frame["recency_days"].iloc[1] == 3.5
    assert frame["favourite_categories"].tolist() == [["Books"], []]
    assert len(snapshots_frame(as_of=(day, day + dt.timedelta(days=1)))) == 3
    assert snapshots_frame(as_of=day, customer_ids=(two.pk, two.pk + 1))["customer_id"].tolist() == [two.pk]


@pytest.mark.skipif("connection.vendor != 'sqlite'", reason="SQLite's full-scan read")
def test_sqlite_full_scan_and_index_reads_agree(timeline, monkeypatch):
    from oscar_journeys import selectors

    ann, bob, cat = timeline
    later = T0 + dt.timedelta(days=2)
    frames = []
    for share, expected_plan in ((0.0, "NOT INDEXED"), (1.1, None)):
        monkeypatch.setattr(selectors, "SQLITE_SCAN_SHARE", share)
        with CaptureQueriesContext(connection) as queries:
            frames.append(events_frame(until=later, customer_ids=(ann.pk, cat.pk)))
        scans = [q["sql"] for q in queries.captured_queries if "NOT INDEXED" in q["sql"]]
        assert bool(scans) == bool(expected_plan)
    pd.testing.assert_frame_equal(frames[0], frames[1])
    assert set(frames[0]["customer_id"]) == {ann.pk, bob.pk}
