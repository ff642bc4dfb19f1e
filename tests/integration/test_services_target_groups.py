"""Target groups on stored rows: members, count and preview from the latest snapshots
(with scores), the customer fields and the event counts, and the decision rounds' check."""

import datetime as dt
import logging

import numpy as np
import pytest

from oscar_journeys.ml import schema
from oscar_journeys.ml.audience import AudienceError
from oscar_journeys.models import Decision, Snapshot, TargetGroup
from oscar_journeys.models import campaigns as c
from oscar_journeys.services import target_groups
from oscar_journeys.services.customers import customer_merge
from oscar_journeys.services.decisions import decision_round
from oscar_journeys.services.target_groups import (
    rule_set_masks,
    target_group_count,
    target_group_members,
    target_group_preview,
)
from oscar_journeys.services.timeline import timeline_record_event

from .journeys_setup import BACKENDS, consent, enroll, make_campaign, make_channel

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2025, 6, 2, 12, 0, tzinfo=dt.timezone.utc)
DAY = NOW.date() - dt.timedelta(days=1)  # the latest snapshot day
SHOES_LATELY = {"event": schema.PRODUCT_ORDERED, "category": "Shoes", "within_days": 30, "op": ">=", "value": 1}
AT_RISK = {"field": "churn_probability", "op": ">", "value": 0.6}


def snapshot(customer, day=DAY, **fields):
    return Snapshot.objects.create(customer=customer, as_of=day, **fields)


def bought(customer, days_ago, category="Shoes", at=NOW):
    timeline_record_event(
        customer=customer, type=schema.PRODUCT_ORDERED, occurred_at=at - dt.timedelta(days=days_ago), category=category
    )


@pytest.fixture
def people(make_customer):
    """ann, bob, cat, dan, eve: who bought shoes when, and their churn risk."""
    ann, bob, cat, dan, eve = (make_customer(first_name=name) for name in ("Ann", "Bob", "Cat", "Dan", "Eve"))
    snapshot(ann, frequency=3, churn_probability=0.8, lifecycle_stage="at_risk", micro_segment=2,
             next_order_date=DAY + dt.timedelta(days=12))  # fmt: skip
    snapshot(ann, day=DAY - dt.timedelta(days=1), churn_probability=0.1)  # older: ignored
    bought(ann, 10)
    snapshot(bob, frequency=1, churn_probability=0.9, lifecycle_stage="at_risk")
    bought(bob, 40)  # outside the window
    bought(bob, -1)  # after now
    snapshot(cat, frequency=5, churn_probability=0.2, lifecycle_stage="active")
    bought(cat, 5, category="shoes")
    # dan's shard has not been snapshotted on the latest day yet: his newest row counts.
    snapshot(dan, day=DAY - dt.timedelta(days=3), frequency=2, churn_probability=0.95)
    bought(dan, 2)
    bought(dan, 3, category="Socks")
    # eve's newest snapshot is older than the lookback: no snapshot values.
    snapshot(eve, day=DAY - dt.timedelta(days=30), churn_probability=0.99)
    bought(eve, 1)
    return {"ann": ann, "bob": bob, "cat": cat, "dan": dan, "eve": eve}


def names(ids, people):
    by_id = {customer.pk: name for name, customer in people.items()}
    return [by_id.get(int(pk), pk) for pk in ids]


def test_members_from_latest_snapshots_and_event_counts(people):
    members = target_group_members(rules=[SHOES_LATELY, AT_RISK], now=NOW)
    assert names(members, people) == ["ann", "dan"]
    assert names(target_group_members(rules=[SHOES_LATELY], now=NOW), people) == ["ann", "cat", "dan", "eve"]
    # The events counted are those of the window, up to now: two days later, bob's order of
    # tomorrow counts, and cat's of five days ago does not count twice.
    later = NOW + dt.timedelta(days=2)
    assert names(target_group_members(rules=[SHOES_LATELY], now=later), people) == ["ann", "bob", "cat", "dan", "eve"]
    twice = dict(SHOES_LATELY, value=2)
    assert names(target_group_members(rules=[twice], now=later), people) == []
    # Any category, and "did not" (a count of 0).
    any_order = {"event": schema.PRODUCT_ORDERED, "within_days": 3, "op": ">=", "value": 2}
    assert names(target_group_members(rules=[any_order], now=NOW), people) == ["dan"]
    none_lately = dict(SHOES_LATELY, op="==", value=0)
    assert names(target_group_members(rules=[none_lately, AT_RISK], now=NOW), people) == ["bob"]


def test_scores_and_customer_fields(people, make_customer):
    assert names(target_group_members(rules=[{"field": "lifecycle_stage", "op": "==", "value": "at_risk"}], now=NOW),
                 people) == ["ann", "bob"]  # fmt: skip
    soon = {"field": "next_order_days", "op": "<=", "value": 12}
    assert names(target_group_members(rules=[soon], now=NOW), people) == ["ann"]
    assert names(target_group_members(rules=[{"field": "micro_segment", "op": "==", "value": 2}], now=NOW),
                 people) == ["ann"]  # fmt: skip
    make_customer(email="", phone="+447700900123")  # no email, no snapshot, no event
    with_email = [{"field": "has_email", "op": "==", "value": True}]
    assert len(target_group_members(rules=with_email, now=NOW)) == 5
    assert len(target_group_members(rules=[], now=NOW)) == 6  # no rules: everyone


def test_merged_customers_are_left_out(people, make_customer):
    twin = make_customer(first_name="Twin")
    snapshot(twin, churn_probability=0.9)
    bought(twin, 1)
    assert len(target_group_members(rules=[SHOES_LATELY, AT_RISK], now=NOW)) == 3
    customer_merge(survivor=people["ann"], merged=twin, reason="test")
    members = target_group_members(rules=[SHOES_LATELY, AT_RISK], now=NOW)
    assert names(members, people) == ["ann", "dan"]


def test_chunks_give_the_same_members(people, monkeypatch):
    whole = target_group_members(rules=[SHOES_LATELY], now=NOW)
    soon = [{"field": "next_order_days", "op": "<=", "value": 12}]
    monkeypatch.setattr(target_groups, "CHUNK_CUSTOMERS", 2)
    assert target_group_members(rules=[SHOES_LATELY], now=NOW).tolist() == whole.tolist()
    monkeypatch.setattr(target_groups, "CHUNK_CUSTOMERS", 1)  # some chunks without a snapshot row
    assert names(target_group_members(rules=soon, now=NOW), people) == ["ann"]
    assert target_group_preview(rules=[SHOES_LATELY], now=NOW, limit=3).count == 4


def test_count_is_kept_on_the_group(people):
    group = TargetGroup.objects.create(name="Shoes at risk", rules=[SHOES_LATELY, AT_RISK])
    assert target_group_count(group=group, now=NOW) == 2
    group.refresh_from_db()
    assert (group.last_count, group.last_counted_at) == (2, NOW)
    assert target_group_count(rules=[AT_RISK], now=NOW) == 3  # ann, bob, dan; not recorded
    group.refresh_from_db()
    assert group.last_count == 2


def test_preview_shows_the_first_members_with_what_the_rules_read(people):
    preview = target_group_preview(rules=[SHOES_LATELY, AT_RISK, {"field": "has_email", "op": "==", "value": True}],
                                   now=NOW, limit=1)  # fmt: skip
    assert preview.count == 2
    assert preview.snapshot_day == DAY
    frame = preview.frame
    assert names(frame.index, people) == ["ann"]
    column = "events:product_ordered:30:Shoes"
    assert list(frame.columns) == [column, "churn_probability", "has_email"]
    assert frame.loc[people["ann"].pk].tolist() == [1, 0.8, True]
    empty = target_group_preview(rules=[{"field": "frequency", "op": ">", "value": 100}], now=NOW)
    assert (empty.count, len(empty.frame), list(empty.frame.columns)) == (0, 0, ["frequency"])


def test_no_snapshot_yet_reads_missing_values(make_customer):
    ann = make_customer()
    bought(ann, 1)
    assert target_group_members(rules=[AT_RISK], now=NOW).tolist() == []
    assert target_group_members(rules=[{"field": "churn_probability", "op": "is_null"}, SHOES_LATELY],
                                now=NOW).tolist() == [ann.pk]  # fmt: skip
    assert target_group_preview(rules=[AT_RISK], now=NOW).snapshot_day is None


def test_bad_rules_raise_the_audience_error(people):
    with pytest.raises(AudienceError, match="unknown event type"):
        target_group_count(rules=[dict(SHOES_LATELY, event="bought")], now=NOW)


# --- the decision rounds --------------------------------------------------------------------


def test_rule_set_masks_read_once_and_skip_stale_rules(people, caplog, django_assert_max_num_queries):
    ids = np.array(sorted(c.pk for c in people.values()), dtype="int64")
    rule_sets = {
        "group": (target_groups.TARGET, [SHOES_LATELY, AT_RISK]),
        "audience": (target_groups.AUDIENCE, [{"field": "frequency", "op": ">=", "value": 2}]),
        "inactive": (target_groups.TARGET, None),
        "stale": (target_groups.TARGET, [{"field": "gone", "op": "==", "value": 1}]),
    }
    with caplog.at_level(logging.ERROR), django_assert_max_num_queries(5):
        masks = rule_set_masks(rule_sets, ids, now=NOW)
    assert names(ids[masks["group"]], people) == ["ann", "dan"]
    assert names(ids[masks["audience"]], people) == ["ann", "cat", "dan"]
    assert not masks["inactive"].any() and not masks["stale"].any()
    assert "no longer valid" in caplog.text and "unknown field" in caplog.text


@pytest.fixture
def email(db, settings):
    settings.OSCAR_JOURNEYS_CHANNEL_BACKENDS = BACKENDS
    settings.OSCAR_JOURNEYS_GLOBAL_CONTROL_PERCENT = 0
    return make_channel("Email")


def outcome(enrollment):
    """(outcome, reason) of the enrollment's first step; (None, "outranked") when another
    campaign's decision covered it (no row of its own)."""
    decision = Decision.objects.filter(enrollment=enrollment, step=1).first()
    return (decision.outcome, decision.reason) if decision else (None, Decision.OUTRANKED)


def test_a_campaign_with_a_target_group_reaches_only_its_members(people, email):
    group = TargetGroup.objects.create(name="Shoes at risk", rules=[SHOES_LATELY, AT_RISK])
    limited = make_campaign("Limited", channels=[email], trigger=c.BIRTHDAY, target_group=group)
    both = make_campaign("Both", channels=[email], trigger=c.BIRTHDAY, target_group=group,
                         audience=[{"field": "frequency", "op": ">=", "value": 3}])  # fmt: skip
    everyone = make_campaign("Everyone", channels=[email], trigger=c.BIRTHDAY)
    for customer in people.values():
        consent(customer)
    enrolled = {
        (campaign.name, name): enroll(campaign, customer, due=NOW - dt.timedelta(minutes=1))
        for campaign in (limited, both, everyone)
        for name, customer in people.items()
    }

    decision_round(now=NOW)

    # Reached: not skipped as outside the audience (the campaigns then compete by priority).
    reached = {key for key, enrollment in enrolled.items() if outcome(enrollment)[1] != Decision.NOT_IN_AUDIENCE}
    assert {name for campaign, name in reached if campaign == "Limited"} == {"ann", "dan"}
    assert {name for campaign, name in reached if campaign == "Both"} == {"ann"}
    assert {name for campaign, name in reached if campaign == "Everyone"} == set(people)
    assert outcome(enrolled[("Limited", "cat")]) == (Decision.SKIPPED, Decision.NOT_IN_AUDIENCE)


def test_an_inactive_target_group_reaches_nobody(people, email):
    group = TargetGroup.objects.create(name="Everyone", rules=[], active=False)
    campaign = make_campaign("Limited", channels=[email], trigger=c.BIRTHDAY, target_group=group)
    enrollment = enroll(campaign, consent(people["ann"]), due=NOW - dt.timedelta(minutes=1))
    decision_round(now=NOW)
    assert outcome(enrollment) == (Decision.SKIPPED, Decision.NOT_IN_AUDIENCE)
