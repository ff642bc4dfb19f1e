"""Bulk inserts without model instances: conflicting rows are skipped, defaults applied."""

import datetime as dt

import pytest
from django.db import connection

from oscar_journeys.models import Decision
from oscar_journeys.services import bulk

from .journeys_setup import BACKENDS, enroll, make_campaign, make_channel

NOW = dt.datetime(2025, 6, 2, 12, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def enrollments(db, settings, make_customer):
    settings.OSCAR_JOURNEYS_CHANNEL_BACKENDS = BACKENDS
    campaign = make_campaign("Cart", channels=[make_channel("Email")])
    return [enroll(campaign, make_customer(), due=NOW) for _ in range(3)]


def decisions(enrollments, *, steps):
    return {
        "customer_id": [e.customer_id for e in enrollments], "campaign_id": [e.campaign_id for e in enrollments],
        "enrollment_id": [e.pk for e in enrollments], "step": steps, "decided_at": NOW,
        "outcome": ["send", "holdout", "skipped"][: len(enrollments)], "reason": "",
        "expected_value": [None, 2.5, None][: len(enrollments)],
    }


def test_rows_are_inserted_with_defaults_and_conflicts_skipped(enrollments):
    first = bulk.insert_rows(
        Decision, decisions(enrollments[:2], steps=[1, 1]), returning=("enrollment", "step", "id")
    )
    rows = {(d.enrollment_id, d.step): d for d in Decision.objects.all()}
    assert set(rows) == {(enrollments[0].pk, 1), (enrollments[1].pk, 1)}
    held = rows[(enrollments[1].pk, 1)]
    assert (held.outcome, held.expected_value, held.decided_at) == ("holdout", 2.5, NOW)
    assert (held.policy, held.attribution_closed, held.converted_at, held.attributed_orders) == ("manual", False, None, 0)
    assert rows[(enrollments[0].pk, 1)].expected_value is None

    # Again, with one row already there: it is skipped, the other two go in.
    again = bulk.insert_rows(
        Decision, decisions(enrollments, steps=[1, 2, 1]), returning=("enrollment", "step", "id")
    )
    assert Decision.objects.count() == 4
    if connection.vendor == "postgresql":  # the ids of what this call inserted, and only those
        assert sorted(first) == sorted((e, s, d.pk) for (e, s), d in rows.items())
        inserted = {(e, s) for e, s, _pk in again}
        assert inserted == {(enrollments[1].pk, 2), (enrollments[2].pk, 1)}
        assert {pk for _e, _s, pk in again} == set(
            Decision.objects.exclude(pk__in=[d.pk for d in rows.values()]).values_list("pk", flat=True)
        )
    else:
        assert first is None and again is None


def test_nothing_to_insert(db):
    empty = bulk.insert_rows(Decision, {"customer_id": [], "step": []})
    assert empty == ([] if connection.vendor == "postgresql" else None)
