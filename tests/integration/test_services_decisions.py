"""The decision round on enrollments made directly: what each due step gets, and why."""

import datetime as dt
import threading
from unittest import mock

import pytest
from django.db import connection
from django.urls import reverse

from oscar_journeys import app_settings
from oscar_journeys.ml import rules
from oscar_journeys.models import Customer, Decision, DueStep, Enrollment, Event, ExclusionRule, FrequencyCap, Message, Snapshot
from oscar_journeys.models import campaigns as c
from oscar_journeys.models.delivery import message_idempotency_key
from oscar_journeys.services import decision_data
from oscar_journeys.services.consent import suppress
from oscar_journeys.services.decisions import decision_round

from .journeys_setup import (
    BACKENDS,
    LOCMEM_SMS,
    assert_due_steps_follow_enrollments,
    consent,
    enroll,
    enroll_all,
    make_campaign,
    make_channel,
)

NOW = dt.datetime(2025, 6, 2, 12, 0, tzinfo=dt.timezone.utc)  # 13:00 in London


@pytest.fixture(autouse=True)
def _settings(settings):
    settings.OSCAR_JOURNEYS_CHANNEL_BACKENDS = BACKENDS
    settings.OSCAR_JOURNEYS_GLOBAL_CONTROL_PERCENT = 0


@pytest.fixture
def email(db):
    return make_channel("Email")


@pytest.fixture
def sms(db):
    return make_channel("SMS", kind="sms", backend=LOCMEM_SMS)


@pytest.fixture
def birthday(email):
    return make_campaign("Birthday", channels=[email], trigger=c.BIRTHDAY, steps=((0, "hours"), (2, "days")))


@pytest.fixture
def person(make_customer):
    return consent(make_customer(first_name="Ana", phone="+447700900123"))


def outcome(enrollment, step=1):
    decision = Decision.objects.get(enrollment=enrollment, step=step)
    return decision.outcome, decision.reason


def test_a_due_step_is_decided_with_its_message_in_the_outbox(birthday, email, person):
    enrollment = enroll(birthday, person, due=NOW - dt.timedelta(minutes=5), triggered_at=NOW - dt.timedelta(hours=1))

    result = decision_round(now=NOW)

    assert (result.due, result.decisions, result.messages) == (1, 1, 1)
    decision = Decision.objects.get()
    assert (decision.outcome, decision.channel, decision.step, decision.decided_at) == ("send", email, 1, NOW)
    assert decision.policy == "manual" and decision.propensity == 1.0
    message = Message.objects.get()
    assert message.decision == decision and message.status == Message.QUEUED
    assert (message.recipient, message.send_after, message.step) == (person.email, NOW, 1)
    assert message.template.step.position == 1 and message.channel == email
    assert message.idempotency_key == message_idempotency_key(
        customer_id=person.pk, campaign_id=birthday.pk, step=1, trigger_key=enrollment.trigger_key
    )
    assert result.message_ids == [message.pk]
    enrollment.refresh_from_db()
    # Step 2 is due two days after the trigger, and no sooner than two days after step 1
    # went out (step 1 was decided an hour after the trigger here).
    assert (enrollment.status, enrollment.next_step) == ("active", 2)
    assert enrollment.next_due_at == NOW + dt.timedelta(days=2)
    assert enrollment.held_out is False


def test_the_last_step_completes_the_enrollment(birthday, person):
    enrollment = enroll(birthday, person, due=NOW, step=2)
    decision_round(now=NOW)
    enrollment.refresh_from_db()
    assert (enrollment.status, enrollment.next_due_at) == ("completed", None)
    assert_due_steps_follow_enrollments()


def test_an_enrollment_saved_keeps_its_due_step_in_step(birthday, person):
    enrollment = enroll(birthday, person, due=NOW)
    assert DueStep.objects.get().due_at == NOW
    enrollment.next_due_at = NOW + dt.timedelta(hours=2)
    enrollment.save()
    assert_due_steps_follow_enrollments()
    assert decision_round(now=NOW + dt.timedelta(hours=1)).due == 0
    enrollment.status = Enrollment.EXITED
    enrollment.save(update_fields=["status"])
    assert not DueStep.objects.exists()
    enrollment.delete()
    assert not DueStep.objects.exists()


def test_nothing_due_nothing_written(birthday, person):
    enroll(birthday, person, due=NOW + dt.timedelta(minutes=1))
    result = decision_round(now=NOW)
    assert result.due == 0 and not Decision.objects.exists()


def test_running_the_round_twice_writes_nothing_new(birthday, person, make_customer):
    enroll(birthday, person, due=NOW)
    enroll(birthday, consent(make_customer()), due=NOW)
    decision_round(now=NOW)
    counts = (Decision.objects.count(), Message.objects.count())
    second = decision_round(now=NOW)
    assert second.due == 0
    assert (Decision.objects.count(), Message.objects.count()) == counts == (2, 2)


def test_highest_priority_wins_and_the_others_are_outranked(email, person):
    low = make_campaign("Low", channels=[email], trigger=c.BIRTHDAY, priority=10)
    high = make_campaign("High", channels=[email], trigger=c.BIRTHDAY, priority=90)
    e_low, e_high = enroll(low, person, due=NOW), enroll(high, person, due=NOW)

    result = decision_round(now=NOW)

    assert outcome(e_high) == ("send", "")
    # One decision for the customer, listing both campaigns; the outranked step has no row.
    assert Decision.objects.get().candidates == sorted([low.pk, high.pk])
    assert not Decision.objects.filter(enrollment=e_low).exists()
    assert (result.decisions, result.reasons["outranked"]) == (1, 1)
    assert Message.objects.get().campaign == high
    e_low.refresh_from_db()
    assert e_low.status == "completed"  # outranked steps move on, they are not retried


def test_the_decision_page_names_the_campaigns_chosen_among(email, person, admin_client):
    low = make_campaign("Low", channels=[email], trigger=c.BIRTHDAY, priority=10)
    high = make_campaign("High", channels=[email], trigger=c.BIRTHDAY, priority=90)
    enroll(low, person, due=NOW), enroll(high, person, due=NOW)
    decision_round(now=NOW)
    page = admin_client.get(reverse("admin:oscar_journeys_decision_change", args=[Decision.objects.get().pk]))
    assert page.status_code == 200 and "Chosen among" in page.text
    assert '<div class="readonly">Low, High</div>' in page.text  # by id: Low was created first


def test_first_usable_channel_in_order(email, sms, make_customer):
    campaign = make_campaign("Both", channels=[email, sms], trigger=c.BIRTHDAY)
    both = consent(consent(make_customer(phone="+447700900001")), "sms")
    sms_only = consent(make_customer(phone="+447700900002", email="nope@example.com"), "sms")
    consent(sms_only, "email", granted=False)
    e_both, e_sms = enroll(campaign, both, due=NOW), enroll(campaign, sms_only, due=NOW)

    decision_round(now=NOW)

    assert Message.objects.get(enrollment=e_both).channel == email
    message = Message.objects.get(enrollment=e_sms)
    assert (message.channel, message.recipient) == (sms, "+447700900002")


@pytest.mark.parametrize("case, reason", [("no_consent", "no_consent"), ("suppressed", "suppressed"),
                                          ("no_email", "unreachable"), ("disabled", "unreachable")])
def test_steps_nobody_can_be_reached_for_are_skipped_with_the_reason(birthday, email, make_customer, case, reason):
    customer = make_customer(email="" if case == "no_email" else "someone@example.com")
    if case != "no_consent":
        consent(customer)
    if case == "suppressed":
        suppress(kind="email", address="Someone@Example.com", reason="unsubscribed")
    if case == "disabled":
        email.enabled = False
        email.save()
    enrollment = enroll(birthday, customer, due=NOW)

    decision_round(now=NOW)

    assert outcome(enrollment) == ("skipped", reason)
    assert not Message.objects.exists()


def test_a_step_without_a_template_for_the_channel_cannot_use_it(email, person):
    campaign = make_campaign("Bare", channels=[email], trigger=c.BIRTHDAY, templates=False)
    enrollment = enroll(campaign, person, due=NOW)
    decision_round(now=NOW)
    assert outcome(enrollment) == ("skipped", "unreachable")


def test_frequency_caps_skip_and_move_on(birthday, email, person, make_customer):
    FrequencyCap.objects.create(max_messages=1, period_days=1)
    FrequencyCap.objects.create(channel_kind="sms", max_messages=1, period_days=30)
    other = make_campaign("Other", channels=[email], trigger=c.BIRTHDAY)
    earlier = enroll(other, person, due=NOW - dt.timedelta(hours=12), key="earlier")
    decision_round(now=NOW - dt.timedelta(hours=12))
    assert Message.objects.filter(enrollment=earlier).exists()
    fresh = consent(make_customer())
    capped, free = enroll(birthday, person, due=NOW), enroll(birthday, fresh, due=NOW)

    decision_round(now=NOW)

    assert outcome(capped) == ("skipped", "capped")
    assert outcome(free) == ("send", "")  # the sms cap does not apply to email
    capped.refresh_from_db()
    assert (capped.status, capped.next_step) == ("active", 2)  # not rescheduled: on to step 2
    # A day and a half later the daily cap has room again.
    later = enroll(other, person, due=NOW + dt.timedelta(hours=36), key="later")
    decision_round(now=NOW + dt.timedelta(hours=36))
    assert outcome(later) == ("send", "")


def test_a_message_chosen_earlier_in_the_window_counts_for_the_cap(email, person):
    FrequencyCap.objects.create(max_messages=2, period_days=7)
    campaigns = [make_campaign(f"C{i}", channels=[email], trigger=c.BIRTHDAY) for i in range(3)]
    for day, campaign in enumerate(campaigns):
        enroll(campaign, person, due=NOW + dt.timedelta(days=day))
        decision_round(now=NOW + dt.timedelta(days=day))
    outcomes = [Decision.objects.get(campaign=campaign).outcome for campaign in campaigns]
    assert outcomes == ["send", "send", "skipped"]


def test_exclusion_rules(birthday, email, person, make_customer):
    from oscar_journeys.services.timeline import timeline_record_event

    rule = ExclusionRule.objects.create(name="No promo after a return", event_type="order_line_returned", within_days=14)
    returned_lately = person
    returned_long_ago = consent(make_customer())
    timeline_record_event(customer=returned_lately, type="order_line_returned", occurred_at=NOW - dt.timedelta(days=3))
    timeline_record_event(customer=returned_long_ago, type="order_line_returned", occurred_at=NOW - dt.timedelta(days=20))
    a, b = enroll(birthday, returned_lately, due=NOW), enroll(birthday, returned_long_ago, due=NOW)

    decision_round(now=NOW)
    assert outcome(a) == ("skipped", "excluded")
    assert outcome(b) == ("send", "")

    # A rule limited to other campaigns leaves this one alone.
    rule.campaigns.add(make_campaign("Promo", channels=[email], trigger=c.BIRTHDAY))
    again = enroll(birthday, returned_lately, due=NOW, key="again")
    decision_round(now=NOW)
    assert outcome(again) == ("send", "")


def test_audience_on_the_latest_snapshot(email, make_customer):
    campaign = make_campaign(
        "Loyal", channels=[email], trigger=c.BIRTHDAY, audience=[{"field": "frequency", "op": ">=", "value": 2}]
    )
    loyal, new, unknown = (consent(make_customer()) for _ in range(3))
    Snapshot.objects.create(customer=loyal, as_of=NOW.date() - dt.timedelta(days=1), frequency=3)
    Snapshot.objects.create(customer=new, as_of=NOW.date() - dt.timedelta(days=1), frequency=1)
    Snapshot.objects.create(customer=new, as_of=NOW.date() - dt.timedelta(days=9), frequency=5)  # older: ignored
    enrollments = [enroll(campaign, customer, due=NOW) for customer in (loyal, new, unknown)]

    decision_round(now=NOW)

    assert [outcome(e) for e in enrollments] == [
        ("send", ""), ("skipped", "not_in_audience"), ("skipped", "not_in_audience")
    ]


def test_global_control_group_share_and_stability(birthday, settings):
    settings.OSCAR_JOURNEYS_GLOBAL_CONTROL_PERCENT = 20
    settings.OSCAR_JOURNEYS_CONSENT_REQUIRED = {"email": "none", "sms": "opt_in", "push": "opt_in", "webhook": "none"}
    n = 1500
    Customer.objects.bulk_create([Customer(email=f"c{i}@example.com") for i in range(n)])
    customers = list(Customer.objects.order_by("pk"))
    enroll_all(birthday, customers, due=NOW)

    result = decision_round(now=NOW)

    control = set(Decision.objects.filter(outcome="control").values_list("customer_id", flat=True))
    assert abs(len(control) / n - 0.20) < 0.035
    expected = rules.in_group([cu.pk for cu in customers], seed=app_settings.RANDOMIZATION_SEED, salt="control",
                              percent=20)
    assert control == {cu.pk for cu, inside in zip(customers, expected) if inside}
    assert result.outcomes["control"] == len(control)
    assert not Message.objects.filter(customer_id__in=control).exists()
    assert Message.objects.count() == n - len(control)


def test_campaign_holdout_is_drawn_once_and_followed_through_every_step(email, settings):
    settings.OSCAR_JOURNEYS_CONSENT_REQUIRED = {"email": "none", "sms": "opt_in", "push": "opt_in", "webhook": "none"}
    campaign = make_campaign("Series", channels=[email], trigger=c.BIRTHDAY, steps=((0, "hours"), (1, "days")),
                             holdout_percent=30)
    Customer.objects.bulk_create([Customer(email=f"h{i}@example.com") for i in range(600)])
    enroll_all(campaign, Customer.objects.all(), due=NOW)
    ids = list(Enrollment.objects.order_by("pk").values_list("pk", flat=True))
    expected = dict(zip(ids, rules.in_group(ids, seed=app_settings.RANDOMIZATION_SEED, salt=f"holdout:{campaign.pk}", percent=30)))

    decision_round(now=NOW)
    assert Enrollment.objects.filter(next_step=2, status="active").count() == 600
    assert_due_steps_follow_enrollments()  # 600 due steps moved a day on
    decision_round(now=NOW + dt.timedelta(days=1))
    assert_due_steps_follow_enrollments()  # and deleted: every enrollment completed

    stored = dict(Enrollment.objects.values_list("pk", "held_out"))
    assert stored == {pk: bool(v) for pk, v in expected.items()}
    assert 0.24 < sum(stored.values()) / len(stored) < 0.36
    for step in (1, 2):
        held = set(Decision.objects.filter(step=step, outcome="holdout").values_list("enrollment_id", flat=True))
        assert held == {pk for pk, v in stored.items() if v}
    assert not Message.objects.filter(enrollment__held_out=True).exists()
    assert Message.objects.count() == 2 * (600 - sum(stored.values()))


def test_quiet_hours_defer_without_a_decision(email, person, birthday):
    email.quiet_hours_start, email.quiet_hours_end = dt.time(21), dt.time(8)
    email.save()
    person.time_zone = "Europe/Madrid"
    person.save()
    night = dt.datetime(2025, 6, 2, 20, 30, tzinfo=dt.timezone.utc)  # 22:30 in Madrid
    enrollment = enroll(birthday, person, due=night - dt.timedelta(minutes=1))

    result = decision_round(now=night)

    assert result.deferred == 1 and not Decision.objects.exists()
    enrollment.refresh_from_db()
    morning = dt.datetime(2025, 6, 3, 6, 0, tzinfo=dt.timezone.utc)  # 08:00 in Madrid
    assert (enrollment.next_due_at, enrollment.next_step) == (morning, 1)
    assert_due_steps_follow_enrollments()  # the due step moved too
    assert decision_round(now=morning - dt.timedelta(minutes=1)).due == 0
    decision_round(now=morning)
    assert outcome(enrollment) == ("send", "")


def test_send_window_in_the_shop_zone_for_customers_without_one(email, person, settings):
    settings.TIME_ZONE = "America/New_York"
    campaign = make_campaign("Windowed", channels=[email], trigger=c.BIRTHDAY,
                             send_window_start=dt.time(9), send_window_end=dt.time(11))
    enrollment = enroll(campaign, person, due=NOW)  # 08:00 in New York

    decision_round(now=NOW)

    enrollment.refresh_from_db()
    assert enrollment.next_due_at == dt.datetime(2025, 6, 2, 13, 0, tzinfo=dt.timezone.utc)


def test_a_deferred_step_pushes_the_next_one_by_the_same_spacing(email, person):
    email.quiet_hours_start, email.quiet_hours_end = dt.time(0), dt.time(12)
    email.save()
    person.time_zone = "UTC"
    person.save()
    campaign = make_campaign("Two", channels=[email], trigger=c.BIRTHDAY, steps=((1, "hours"), (3, "hours")))
    trigger = dt.datetime(2025, 6, 2, 0, 0, tzinfo=dt.timezone.utc)
    enrollment = enroll(campaign, person, due=trigger + dt.timedelta(hours=1), triggered_at=trigger)
    decision_round(now=trigger + dt.timedelta(hours=1))  # quiet: deferred to 12:00
    decision_round(now=trigger + dt.timedelta(hours=12))  # sent
    enrollment.refresh_from_db()
    assert enrollment.next_step == 2
    assert enrollment.next_due_at == trigger + dt.timedelta(hours=14)  # 2 h after, not at 03:00
    assert_due_steps_follow_enrollments()


def test_send_tasks_are_queued_after_commit_in_batches(birthday, settings, django_capture_on_commit_callbacks):
    settings.OSCAR_JOURNEYS_SEND_BATCH_SIZE = 2
    settings.OSCAR_JOURNEYS_CONSENT_REQUIRED = {"email": "none", "sms": "opt_in", "push": "opt_in", "webhook": "none"}
    for i in range(5):
        enroll(birthday, Customer.objects.create(email=f"q{i}@example.com"), due=NOW)
    with mock.patch("oscar_journeys.tasks.messages_send.apply_async") as publish:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            result = decision_round(now=NOW)
        assert not publish.called  # nothing before the commit
        for callback in callbacks:
            callback()
    batches = [call.args[0][0] for call in publish.call_args_list]
    assert [len(b) for b in batches] == [2, 2, 1]
    assert sorted(sum(batches, [])) == sorted(result.message_ids)


def test_no_enqueue_when_asked(birthday, person, django_capture_on_commit_callbacks):
    enroll(birthday, person, due=NOW)
    with django_capture_on_commit_callbacks() as callbacks:
        decision_round(now=NOW, enqueue=False)
    assert callbacks == []


def test_a_shard_only_touches_its_customers(birthday, person, make_customer):
    other = consent(make_customer())
    mine, theirs = enroll(birthday, person, due=NOW), enroll(birthday, other, due=NOW)
    lo = min(person.pk, other.pk)
    decision_round(now=NOW, customer_range=(lo, lo + 1))
    decided = set(Decision.objects.values_list("enrollment_id", flat=True))
    assert decided == {(mine if person.pk == lo else theirs).pk}


def test_due_customer_ranges_cover_the_due_customers(birthday, person, make_customer):
    enroll(birthday, person, due=NOW)
    assert decision_data.due_customer_ranges(now=NOW, shard_size=10) == [(person.pk // 10 * 10, person.pk // 10 * 10 + 10)]
    assert decision_data.due_customer_ranges(now=NOW - dt.timedelta(days=1), shard_size=10) == []


def test_an_event_of_the_rule_type_after_now_does_not_exclude(birthday, person):
    from oscar_journeys.services.timeline import timeline_record_event

    ExclusionRule.objects.create(name="r", event_type="order_line_returned", within_days=14)
    timeline_record_event(customer=person, type="order_line_returned", occurred_at=NOW + dt.timedelta(hours=1))
    enrollment = enroll(birthday, person, due=NOW)
    decision_round(now=NOW)
    assert outcome(enrollment) == ("send", "")
    assert Event.objects.count() == 1


# --- PostgreSQL: two rounds at once ------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_round_leaves_alone_the_shards_another_round_is_deciding(settings, make_customer):
    if connection.vendor != "postgresql":
        pytest.skip("advisory locks: PostgreSQL only")
    settings.OSCAR_JOURNEYS_CONSENT_REQUIRED = {"email": "none", "sms": "opt_in", "push": "opt_in", "webhook": "none"}
    email = make_channel("Email")
    campaign = make_campaign("Birthday", channels=[email], trigger=c.BIRTHDAY)
    people = [make_customer() for _ in range(40)]
    for person in people:
        enroll(campaign, person, due=NOW)
    settings.OSCAR_JOURNEYS_DECISION_SHARD_SIZE = people[20].pk  # two shards: [0, p20) and [p20, 2*p20)
    claim = decision_data.claim_due
    claimed, release = threading.Event(), threading.Event()

    def claim_then_wait(**kwargs):
        frame = claim(**kwargs)
        if threading.current_thread().name == "first":
            claimed.set()
            assert release.wait(20)  # its shard stays locked until this round commits
        return frame

    first, errors = [], []

    def run_first():
        try:
            first.append(decision_round(now=NOW, customer_range=(0, people[20].pk), enqueue=False))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    patch = mock.patch.object(decision_data, "claim_due", claim_then_wait)
    patch.start()
    thread = threading.Thread(target=run_first, name="first")
    thread.start()
    try:
        assert claimed.wait(20)
        # Meanwhile a round over everything: the first shard is busy, the second is decided.
        second = decision_round(now=NOW, enqueue=False)
        assert (second.busy, second.due) == (1, 20)
        assert set(Decision.objects.values_list("customer_id", flat=True)) == {p.pk for p in people[20:]}
    finally:
        release.set()
        thread.join(30)
        patch.stop()
    assert not errors, errors
    assert (first[0].busy, first[0].due, first[0].messages) == (0, 20, 20)
    assert Decision.objects.count() == 40 and Message.objects.count() == 40
    assert len(set(Decision.objects.values_list("enrollment_id", flat=True))) == 40
    assert set(Enrollment.objects.values_list("status", flat=True)) == {"completed"}
    # Nothing left: a third round finds nothing due and no shard busy.
    third = decision_round(now=NOW, enqueue=False)
    assert (third.busy, third.due) == (0, 0)


def test_the_tick_queues_one_decision_shard_per_range(birthday, person, make_customer, settings):
    from oscar_journeys import tasks

    settings.OSCAR_JOURNEYS_DECISION_SHARD_SIZE = 1
    other = consent(make_customer())
    enroll(birthday, person, due=NOW)
    enroll(birthday, other, due=NOW)
    with mock.patch("celery.group.apply_async") as publish, \
            mock.patch.object(tasks.decision_round_shard, "s", side_effect=lambda *a: a) as signature:
        tasks.journeys_tick.run(NOW.isoformat())
    assert publish.call_count == 1
    assert sorted(call.args for call in signature.call_args_list) == sorted(
        (NOW.isoformat(), pk, pk + 1) for pk in (person.pk, other.pk)
    )
    # A shard decides its range at the tick's time.
    tasks.decision_round_shard.run(NOW.isoformat(), person.pk, person.pk + 1)
    assert set(Decision.objects.values_list("customer_id", flat=True)) == {person.pk}


def test_another_policy_plugs_in_with_its_propensities_hold_outs_and_nothing(birthday, person, make_customer):
    import pandas as pd

    held, skipped_by_policy = consent(make_customer()), consent(make_customer())

    class Policy:
        name = "journey"

        def decide(self, features, eligible, now, seed=None):
            rows = []
            for customer_id, campaign_id in eligible[["customer_id", "campaign_id"]].itertuples(index=False):
                if customer_id == skipped_by_policy.pk:
                    rows.append((customer_id, None, 0.6, 0.0, False))
                else:
                    rows.append((customer_id, campaign_id, 0.3, 12.5, customer_id == held.pk))
            return pd.DataFrame(rows, columns=["customer_id", "campaign_id", "propensity", "expected_value", "control"])

    sent, holdout, nothing = (enroll(birthday, c, due=NOW) for c in (person, held, skipped_by_policy))
    decision_round(now=NOW, policy=Policy())

    assert [outcome(e)[0] for e in (sent, holdout, nothing)] == ["send", "holdout", "nothing"]
    decision = Decision.objects.get(enrollment=sent)
    assert (decision.policy, decision.propensity, decision.expected_value) == ("journey", 0.3, 12.5)
    assert Message.objects.get().enrollment == sent


# --- the journey tables keep their integrity without database constraints ----------------------


def test_deleting_a_customer_or_campaign_takes_their_journey_rows_along(birthday, email, make_customer):
    people = [consent(make_customer(first_name=name)) for name in ("Ana", "Bea")]
    for person in people:
        enroll(birthday, person, due=NOW - dt.timedelta(minutes=5))
    decision_round(now=NOW)
    assert (Enrollment.objects.count(), Decision.objects.count(), Message.objects.count()) == (2, 2, 2)

    people[0].delete()
    assert set(Message.objects.values_list("customer_id", flat=True)) == {people[1].pk}
    assert set(Decision.objects.values_list("customer_id", flat=True)) == {people[1].pk}
    assert set(Enrollment.objects.values_list("customer_id", flat=True)) == {people[1].pk}

    birthday.delete()
    assert (Enrollment.objects.count(), Decision.objects.count(), Message.objects.count()) == (0, 0, 0)


def test_a_channel_with_messages_is_protected_and_a_deleted_template_is_let_go(birthday, email, person):
    from django.db.models import ProtectedError

    enroll(birthday, person, due=NOW - dt.timedelta(minutes=5))
    decision_round(now=NOW)
    message = Message.objects.get()
    with pytest.raises(ProtectedError):
        email.delete()
    message.template.delete()
    message.refresh_from_db()
    assert message.template_id is None and message.channel_id == email.pk


def test_an_enrollment_whose_customer_vanished_exits_and_is_never_decided(birthday, person):
    enrollment = enroll(birthday, person, due=NOW - dt.timedelta(minutes=5))
    # As if the customer were deleted while a scan was enrolling them: the row stays behind.
    Enrollment.objects.filter(pk=enrollment.pk).update(customer_id=person.pk + 10_000)

    assert decision_round(now=NOW).decisions == 0  # the claim finds no customer to decide for
    result = decision_round(now=NOW + dt.timedelta(days=1))

    assert result.exited == {"customer_gone": 1} and result.decisions == 0
    enrollment.refresh_from_db()
    assert (enrollment.status, enrollment.exit_reason) == ("exited", "customer_gone")
    assert_due_steps_follow_enrollments()


def test_the_vanished_customer_check_runs_only_when_the_claim_comes_up_short(birthday, person, make_customer):
    from oscar_journeys.services.triggers import exits

    enroll(birthday, person, due=NOW - dt.timedelta(days=2))
    orphan = enroll(birthday, consent(make_customer()), due=NOW - dt.timedelta(days=2))
    with mock.patch.object(exits, "enrollments_exit_vanished", wraps=exits.enrollments_exit_vanished) as check:
        assert decision_round(now=NOW).decisions == 2
        assert not check.called  # every due step was claimed
        orphan.next_due_at, orphan.status = NOW + dt.timedelta(days=1), "active"
        orphan.save()
        Enrollment.objects.filter(pk=orphan.pk).update(customer_id=orphan.customer_id + 10_000)
        result = decision_round(now=NOW + dt.timedelta(days=3))
    assert check.call_count == 1 and result.exited == {"customer_gone": 1}


def test_candidate_lists_are_the_distinct_campaigns_sorted_as_json():
    from oscar_journeys.services.decision_plan import candidate_lists

    lists = candidate_lists([5, 3, 5, 5, 3, 9], [7, 12, 7, 1, 8, 4])
    assert lists.to_dict() == {3: "[8,12]", 5: "[1,7]", 9: "[4]"}
    assert list(lists.index) == [3, 5, 9]
    assert candidate_lists([], []).empty
