"""services.snapshots (and the snapshot tasks): building, replacing and sharding snapshots."""

import datetime as dt
from decimal import Decimal
from unittest import mock

import pytest
from django.test import override_settings

from oscar_journeys import tasks
from oscar_journeys.ml import schema
from oscar_journeys.models import Snapshot
from oscar_journeys.services.snapshots import (
    shop_day_end,
    shop_yesterday,
    snapshot_build,
    snapshot_shards,
)
from oscar_journeys.services.timeline import timeline_record_event

UTC = dt.timezone.utc
DAY = dt.date(2025, 7, 10)  # summer: London is UTC+1, the day ends at 23:00 UTC
END = dt.datetime(2025, 7, 10, 23, 0, tzinfo=UTC)
NOW = dt.datetime(2025, 7, 11, 2, 15, tzinfo=UTC)


def rows(**filters):
    """Stored snapshots as comparable tuples (without id and computed_at)."""
    fields = ("customer_id", "as_of", *schema.FEATURE_NAMES)
    return sorted(Snapshot.objects.filter(**filters).values_list(*fields))


@pytest.fixture
def shop(make_customer):
    ann, bob, eve = make_customer(), make_customer(), make_customer()
    record = timeline_record_event
    record(customer=ann, type="user_registered", occurred_at=END - dt.timedelta(days=40))
    record(customer=ann, type="product_viewed", occurred_at=END - dt.timedelta(days=3), category="Books")
    record(customer=ann, type="order_placed", occurred_at=END - dt.timedelta(days=2), value=Decimal("30.00"))
    record(customer=ann, type="product_ordered", occurred_at=END - dt.timedelta(days=2), category="Games")
    record(customer=ann, type="basket_addition", occurred_at=END - dt.timedelta(hours=1), value=Decimal("8.50"))
    # Bob's first event is in the last minute of the shop's day (22:59 UTC = 23:59 London).
    record(customer=bob, type="user_logged_in", occurred_at=END - dt.timedelta(minutes=1))
    # Eve's first event is right after the shop's midnight: not part of DAY.
    record(customer=eve, type="user_logged_in", occurred_at=END)
    return ann, bob, eve


def test_shop_day_end_is_midnight_after_the_day_in_the_shop_time_zone(settings):
    assert shop_day_end(DAY) == END
    assert shop_day_end(dt.date(2025, 1, 10)) == dt.datetime(2025, 1, 11, 0, 0, tzinfo=UTC)
    settings.TIME_ZONE = "America/Sao_Paulo"
    assert shop_day_end(DAY) == dt.datetime(2025, 7, 11, 3, 0, tzinfo=UTC)
    assert shop_yesterday(dt.datetime(2025, 7, 11, 2, 0, tzinfo=UTC)) == dt.date(2025, 7, 9)


def test_build_writes_the_features_as_of_the_end_of_the_day(shop):
    ann, bob, eve = shop
    result = snapshot_build(as_of=DAY, now=NOW)
    assert result.rows == 2 and result.days == [DAY] and result.shards >= 1
    assert set(Snapshot.objects.values_list("customer_id", flat=True)) == {ann.pk, bob.pk}
    snap = Snapshot.objects.get(customer=ann)
    assert snap.as_of == DAY and snap.computed_at == NOW
    assert snap.tenure_days == 40 and snap.frequency == 1 and snap.monetary == 30.0
    assert snap.recency_days == 2 and snap.avg_days_between_orders is None
    assert snap.open_basket_value == 8.5
    assert snap.product_views_30d == 1
    assert snap.favourite_category == "Games" and snap.favourite_categories == ["Games", "Books"]
    bob_snap = Snapshot.objects.get(customer=bob)
    assert bob_snap.logins_30d == 1 and bob_snap.frequency == 0 and bob_snap.recency_days is None
    assert bob_snap.favourite_category == "" and bob_snap.favourite_categories == []
    assert bob_snap.tenure_days == pytest.approx(1 / 1440)


def test_rerun_is_idempotent(shop):
    snapshot_build(as_of=DAY, now=NOW)
    first = rows()
    again = snapshot_build(as_of=DAY, now=NOW + dt.timedelta(hours=1))
    assert again.rows == 2 and rows() == first
    assert Snapshot.objects.count() == 2
    assert set(Snapshot.objects.values_list("computed_at", flat=True)) == {NOW + dt.timedelta(hours=1)}


def test_backfill_writes_one_row_per_customer_and_day_with_events(shop):
    ann, bob, eve = shop
    result = snapshot_build(as_of=DAY, backfill_days=3, now=NOW)
    days = [DAY - dt.timedelta(days=n) for n in (3, 2, 1, 0)]
    assert result.days == days and result.rows == 5
    assert sorted(Snapshot.objects.values_list("as_of", "customer_id")) == sorted(
        [(day, ann.pk) for day in days] + [(DAY, bob.pk)]
    )
    # Ann's order (2 days before the end of DAY) shows from DAY - 2 on.
    frequencies = dict(Snapshot.objects.filter(customer=ann).values_list("as_of", "frequency"))
    assert frequencies == {days[0]: 0, days[1]: 0, days[2]: 1, days[3]: 1}
    # A second backfill over the same days replaces rather than adds.
    snapshot_build(as_of=DAY, backfill_days=3, now=NOW)
    assert Snapshot.objects.count() == 5


def test_a_backfill_stored_in_small_batches_gives_the_same_rows(shop, monkeypatch, make_customer):
    from oscar_journeys.services import snapshots

    snapshot_build(as_of=DAY, backfill_days=3, now=NOW)
    expected = rows()
    stale = Snapshot.objects.create(customer=make_customer(), as_of=DAY - dt.timedelta(days=2))
    monkeypatch.setattr(snapshots, "WRITE_ROWS", 1)  # one transaction per day
    result = snapshot_build(as_of=DAY, backfill_days=3, now=NOW)
    assert result.rows == 5 and rows() == expected
    assert not Snapshot.objects.filter(pk=stale.pk).exists()


def test_build_replaces_stale_rows_of_those_days_only(shop, make_customer):
    ann, bob, eve = shop
    gone = make_customer()  # e.g. a customer whose events moved away in a merge
    Snapshot.objects.create(customer=gone, as_of=DAY, frequency=9)
    Snapshot.objects.create(customer=ann, as_of=DAY, frequency=9)
    kept = Snapshot.objects.create(customer=ann, as_of=DAY - dt.timedelta(days=1), frequency=9)
    snapshot_build(as_of=DAY, now=NOW)
    assert not Snapshot.objects.filter(customer=gone).exists()
    assert Snapshot.objects.get(customer=ann, as_of=DAY).frequency == 1
    assert Snapshot.objects.get(pk=kept.pk).frequency == 9


def test_customer_range_builds_and_replaces_that_range_only(shop):
    ann, bob, eve = shop
    snapshot_build(as_of=DAY, now=NOW)
    Snapshot.objects.filter(customer=ann).update(frequency=7)
    result = snapshot_build(as_of=DAY, customer_range=(bob.pk, bob.pk + 1), now=NOW)
    assert result.rows == 1 and result.shards == 1
    assert Snapshot.objects.get(customer=ann).frequency == 7  # outside the range: untouched
    assert Snapshot.objects.filter(customer=bob).count() == 1


def test_build_goes_shard_by_shard(shop):
    ann, bob, eve = shop
    seen = []
    with override_settings(OSCAR_JOURNEYS_SNAPSHOT_SHARD_SIZE=1):
        result = snapshot_build(as_of=DAY, backfill_days=1, now=NOW, progress=seen.append)
    assert result.shards == bob.pk - ann.pk + 1 == len(seen)
    assert [step.customer_range for step in seen] == [(k, k + 1) for k in range(ann.pk, bob.pk + 1)]
    assert seen[0].rows_per_day == {DAY - dt.timedelta(days=1): 1, DAY: 1}
    assert seen[-1].rows_per_day == {DAY - dt.timedelta(days=1): 0, DAY: 1}
    assert result.rows == 3 and Snapshot.objects.count() == 3


def test_build_without_events_writes_nothing(db):
    result = snapshot_build(as_of=DAY, now=NOW)
    assert result.rows == 0 and result.shards == 0 and not Snapshot.objects.exists()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"as_of": dt.datetime(2025, 7, 10, 12, 0)}, "as_of must be a date"),
        ({"as_of": "2025-07-10"}, "as_of must be a date"),
        ({"as_of": DAY, "backfill_days": -1}, "backfill_days"),
        ({"as_of": DAY, "customer_range": (10, 10)}, "customer_range"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_written(shop, kwargs, message):
    snapshot_build(as_of=DAY, now=NOW)
    before = rows()
    with pytest.raises(ValueError, match=message):
        snapshot_build(now=NOW, **kwargs)
    assert rows() == before


def test_snapshot_shards_cover_customers_with_events_up_to_the_day(shop):
    ann, bob, eve = shop
    assert snapshot_shards(as_of=DAY, shard_size=1) == [(k, k + 1) for k in range(ann.pk, bob.pk + 1)]


# --- tasks (called directly, the service mocked) -----------------------------------------------


def test_snapshot_build_shard_task_calls_the_service_with_its_range():
    from oscar_journeys.services.snapshots import LATEST

    with mock.patch("oscar_journeys.services.snapshots.snapshot_build") as build:
        build.return_value.rows, build.return_value.seconds, build.return_value.stage_changes = 3, 0.1, 0
        tasks.snapshot_build_shard("2025-07-10", 100, 200)
        build.assert_called_once_with(as_of=DAY, customer_range=(100, 200), models=LATEST)
        build.reset_mock()
        with mock.patch("oscar_journeys.services.nightly.models_of") as models_of:
            tasks.snapshot_build_shard("2025-07-10", 100, 200, 7)
        models_of.assert_called_once_with(7)
        build.assert_called_once_with(as_of=DAY, customer_range=(100, 200), models=models_of.return_value)


def test_snapshot_build_all_queues_one_shard_task_per_range():
    shards = [(0, 50000), (50000, 100000)]
    with (
        mock.patch("oscar_journeys.services.snapshots.snapshot_shards", return_value=shards) as find,
        mock.patch("celery.group") as group,
    ):
        tasks.snapshot_build_all("2025-07-10")
    find.assert_called_once_with(as_of=DAY)
    signatures = list(group.call_args.args[0])
    assert [s.task for s in signatures] == ["oscar_journeys.tasks.snapshot_build_shard"] * 2
    assert [s.args for s in signatures] == [("2025-07-10", 0, 50000, None), ("2025-07-10", 50000, 100000, None)]
    group.return_value.apply_async.assert_called_once_with()


def test_snapshot_build_all_defaults_to_yesterday_in_shop_time():
    # 00:30 on 11 July in London is still 10 July in UTC: "yesterday" is the 10th.
    with (
        mock.patch("django.utils.timezone.now", return_value=dt.datetime(2025, 7, 10, 23, 30, tzinfo=UTC)),
        mock.patch("oscar_journeys.services.snapshots.snapshot_shards", return_value=[]) as find,
        mock.patch("celery.group") as group,
    ):
        tasks.snapshot_build_all()
    find.assert_called_once_with(as_of=DAY)
    group.assert_not_called()
