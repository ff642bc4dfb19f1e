"""manage.py journeys_snapshot."""

import datetime as dt
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from oscar_journeys.models import Snapshot
from oscar_journeys.services.snapshots import shop_today
from oscar_journeys.services.timeline import timeline_record_event

UTC = dt.timezone.utc


def run(*args):
    out = StringIO()
    call_command("journeys_snapshot", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def customers(make_customer):
    one, two = make_customer(), make_customer()
    timeline_record_event(customer=one, type="user_logged_in", occurred_at=dt.datetime(2025, 1, 8, 9, tzinfo=UTC))
    timeline_record_event(customer=two, type="user_logged_in", occurred_at=dt.datetime(2025, 1, 10, 9, tzinfo=UTC))
    return one, two


def test_builds_the_day_and_reports_progress(customers):
    one, two = customers
    output = run("--as-of", "2025-01-10")
    assert sorted(Snapshot.objects.values_list("customer_id", "as_of")) == [
        (one.pk, dt.date(2025, 1, 10)),
        (two.pk, dt.date(2025, 1, 10)),
    ]
    assert "Shard 1/1" in output and "2025-01-10: 2 rows" in output
    assert "Wrote 2 snapshot rows for 1 days" in output


def test_backfill_and_one_progress_line_per_shard_and_day(customers):
    one, two = customers
    with override_settings(OSCAR_JOURNEYS_SNAPSHOT_SHARD_SIZE=1):
        output = run("--as-of", "2025-01-10", "--backfill", "2")
    # one: 8, 9, 10 January; two: 10 January only.
    assert Snapshot.objects.filter(customer=one).count() == 3
    assert Snapshot.objects.filter(customer=two).count() == 1
    shards = two.pk - one.pk + 1
    assert f"Shard 1/{shards}" in output and f"Shard {shards}/{shards}" in output
    assert output.count("2025-01-08:") == shards
    assert "Wrote 4 snapshot rows for 3 days" in output


@pytest.mark.parametrize("value", ["2025-13-01", "yesterday", "10/01/2025", ""])
def test_a_bad_date_is_named_in_the_error(db, value):
    with pytest.raises(CommandError, match="--as-of") as error:
        run("--as-of", value)
    assert repr(value) in str(error.value) and "YYYY-MM-DD" in str(error.value)
    assert not Snapshot.objects.exists()


def test_a_future_date_is_refused(db):
    later = shop_today() + dt.timedelta(days=2)  # two days: safe across midnight
    with pytest.raises(CommandError, match="in the future"):
        run("--as-of", later.isoformat())


@pytest.mark.parametrize("value", ["-1", "two"])
def test_a_bad_backfill_is_named_in_the_error(db, value):
    with pytest.raises(CommandError, match="--backfill") as error:
        run("--as-of", "2025-01-10", "--backfill", value)
    assert repr(value) in str(error.value)


def test_nothing_to_build(db):
    output = run("--as-of", "2025-01-10")
    assert "nothing to build" in output and not Snapshot.objects.exists()
