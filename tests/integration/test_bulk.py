"""Bulk inserts without model instances: conflicting rows are skipped, defaults applied."""

import datetime as dt
import json

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


@pytest.mark.skipif(connection.vendor != "postgresql", reason="one statement for both tables: PostgreSQL only")
def test_parents_and_their_children_in_one_statement(enrollments):
    from oscar_journeys.models import Message

    def write(rows, steps, has_child):
        return bulk.insert_rows_with_children(
            Decision, decisions(rows, steps=steps), key=("enrollment_id", "step"), child=Message,
            child_data={
                "decision_id": bulk.Parent("pk"), "customer_id": bulk.Parent("customer_id"),
                "campaign_id": bulk.Parent("campaign_id"), "enrollment_id": bulk.Parent("enrollment_id"),
                "step": bulk.Parent("step"), "channel_id": 7,
                "idempotency_key": [f"k{e.pk}:{s}" for e, s in zip(rows, steps)],
                "recipient": [f"c{e.customer_id}@example.com" if c else None for e, c in zip(rows, has_child)],
                "send_after": NOW,
            },
            has_child=has_child,
        )

    first = write(enrollments[:2], [1, 1], [True, False])
    message = Message.objects.get()
    assert [pk for (pk,) in first] == [message.pk]
    decision = Decision.objects.get(enrollment=enrollments[0], step=1)
    assert (message.decision_id, message.customer_id, message.campaign_id, message.enrollment_id, message.step) == (
        decision.pk, enrollments[0].customer_id, enrollments[0].campaign_id, enrollments[0].pk, 1
    )
    assert (message.channel_id, message.recipient, message.status, message.send_after, message.links) == (
        7, f"c{enrollments[0].customer_id}@example.com", "queued", NOW, []
    )

    # The first row's decision is there already: neither it nor its message is written again;
    # the new rows get theirs.
    again = write(enrollments, [1, 2, 1], [True, True, True])
    assert Decision.objects.count() == 4 and Message.objects.count() == 3
    new = set(Message.objects.exclude(pk=message.pk).values_list("pk", flat=True))
    assert {pk for (pk,) in again} == new
    assert {(m.decision.enrollment_id, m.decision.step) for m in Message.objects.filter(pk__in=new)} == {
        (enrollments[1].pk, 2), (enrollments[2].pk, 1)
    }


def test_copy_text_writes_nulls_quotes_and_timestamps_as_postgresql_reads_them():
    import pandas as pd

    due = pd.Series([pd.Timestamp("2025-06-02 12:00", tz="UTC"), pd.NaT, pd.Timestamp("2025-06-02 12:00:00.5", tz="UTC")])
    text = bulk._csv({
        "id": [1, None, 3], "label": ['say "hi", then go', "", None], "p": [0.25, float("nan"), 1.0],
        "due": due, "n": pd.Series([1, None, 2], dtype="Int64"), "flag": [True, False, True], "candidates": ["[1,2]"] * 3,
    })  # fmt: skip
    assert text.splitlines() == [
        '1,"say ""hi"", then go",0.25,2025-06-02 12:00:00+00:00,1,True,"[1,2]"',
        "\\N,,\\N,\\N,\\N,False,\"[1,2]\"",  # NULL is \N; an empty string stays empty
        "3,\\N,1.0,2025-06-02 12:00:00.500000+00:00,2,True,\"[1,2]\"",
    ]


def test_read_frame_reads_numbers_text_flags_and_nothing(enrollments):
    from oscar_journeys.models import Enrollment

    first, second, third = enrollments
    Enrollment.objects.filter(pk=first.pk).update(held_out=True, exit_reason="ordered", next_due_at=None)
    Enrollment.objects.filter(pk=second.pk).update(held_out=False, exit_reason="NA")  # text, not a missing value
    rows = Enrollment.objects.order_by("id").values_list("id", "customer_id", "held_out", "exit_reason", "next_step",
                                                         "trigger_key", "context")
    frame = bulk.read_frame(rows, ["id", "customer", "held", "reason", "step", "key", "context"],
                            text=("reason", "key"), flags=("held",))
    assert frame["id"].tolist() == [e.pk for e in enrollments]
    assert frame["customer"].tolist() == [e.customer_id for e in enrollments]
    assert frame["held"].tolist() == [True, False, None]
    assert frame["reason"].tolist() == ["ordered", "NA", ""]
    assert frame["key"].tolist() == [e.trigger_key for e in enrollments]
    assert [json.loads(v) for v in frame["context"]] == [e.context for e in enrollments]  # JSON as text
    empty = bulk.read_frame(rows.filter(pk__lt=0), ["id", "customer", "held", "reason", "step", "key", "context"])
    assert len(empty) == 0 and list(empty.columns)[:2] == ["id", "customer"]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="planner settings: PostgreSQL only")
def test_a_keyed_join_looks_rows_up_by_key_and_restores_the_planner_settings(enrollments):
    """Inside ``keyed_join`` a temporary table is joined to a big table by look-ups in its
    key index (a nested loop), not by reading the big table into a hash; on the way out,
    even through an error, the transaction's planner settings are what they were (here one
    of them was already off)."""
    from oscar_journeys.models import Enrollment

    def settings():
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('enable_hashjoin'), current_setting('enable_mergejoin')")
            return cursor.fetchone()

    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_mergejoin = off")
        temp = bulk.copy_to_temp(cursor, Enrollment, {"id": [enrollments[0].pk], "status": ["completed"]})
        with pytest.raises(ZeroDivisionError), bulk.keyed_join(cursor):
            assert settings() == ("off", "off")
            cursor.execute(
                f"EXPLAIN UPDATE oscar_journeys_enrollment AS e SET status = v.status FROM {temp} AS v WHERE e.id = v.id"
            )
            plan = "\n".join(row[0] for row in cursor.fetchall())
            1 / 0
    assert "Nested Loop" in plan and "Index Scan using oscar_journeys_enrollment_pkey" in plan, plan
    assert "Hash" not in plan and "Merge" not in plan, plan
    assert settings() == ("on", "off")


@pytest.mark.skipif(connection.vendor != "postgresql", reason="planner settings: PostgreSQL only")
def test_a_database_error_in_a_keyed_join_is_not_hidden_and_its_rollback_restores_the_settings(enrollments):
    from django.db import DatabaseError, transaction

    with connection.cursor() as cursor:
        with pytest.raises(DatabaseError, match="no_such_table"), transaction.atomic(), bulk.keyed_join(cursor):
            cursor.execute("SELECT * FROM no_such_table")
        cursor.execute("SELECT current_setting('enable_hashjoin'), current_setting('enable_mergejoin')")
        assert cursor.fetchone() == ("on", "on")
