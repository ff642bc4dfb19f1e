"""Journeys in the shop: follow-ups entered after a campaign was received, decision rounds
of self-optimizing journeys (the policy, its propensities, caps and consent as in manual
mode), learning new policy versions, and the sample journey of the starter set."""

import datetime as dt

import numpy as np
import pytest

from oscar_journeys.models import Decision, Enrollment, FollowUp, Journey, Message, PolicyVersion, Snapshot
from oscar_journeys.models import campaigns as c
from oscar_journeys.services import optimizing
from oscar_journeys.services.decisions import decision_round
from oscar_journeys.services.triggers import triggers_scan

from .journeys_setup import BACKENDS, consent, enroll, make_campaign, make_channel

NOW = dt.datetime(2025, 6, 2, 12, 0, tzinfo=dt.timezone.utc)


@pytest.fixture(autouse=True)
def _settings(settings):
    settings.OSCAR_JOURNEYS_CHANNEL_BACKENDS = BACKENDS
    settings.OSCAR_JOURNEYS_GLOBAL_CONTROL_PERCENT = 0
    optimizing.policy_of.cache_clear()


@pytest.fixture
def email(db):
    return make_channel("Email")


@pytest.fixture
def series(email):
    first = make_campaign("Series", channels=[email], trigger=c.POST_PURCHASE, steps=((0, "hours"),))
    then = make_campaign("Collection out", channels=[email], trigger=c.FOLLOW_UP, steps=((0, "hours"),),
                         created_at=NOW - dt.timedelta(days=60))
    return first, then


def journey_of(*campaigns, mode=Journey.OPTIMIZED, follow_ups=()):
    journey = Journey.objects.create(name=f"J{Journey.objects.count()}", mode=mode)
    journey.campaigns.set(campaigns)
    for first, then, days, *condition in follow_ups:
        FollowUp.objects.create(journey=journey, campaign=first, follow_up=then, delay_days=days,
                                condition=condition[0] if condition else FollowUp.ANY)
    return journey


def sent_message(campaign, customer, *, at, clicked_at=None, status=Message.SENT, outcome=Decision.SEND):
    decision = Decision.objects.create(customer=customer, campaign=campaign, decided_at=at, outcome=outcome)
    if outcome != Decision.SEND:
        return None
    return Message.objects.create(
        decision=decision, customer=customer, campaign=campaign, step=1, channel=campaign.channels.first(),
        idempotency_key=f"k{decision.pk}", recipient=customer.email, status=status, send_after=at, sent_at=at,
        clicked_at=clicked_at, created_at=at,
    )


# --- follow-ups ---------------------------------------------------------------------------------


def test_a_follow_up_enters_delay_days_after_the_campaign_was_received(series, make_customer):
    first, then = series
    journey_of(first, follow_ups=[(first, then, 14)])
    ana, ben, eva = (consent(make_customer()) for _ in range(3))
    message = sent_message(first, ana, at=NOW - dt.timedelta(days=14, hours=1))
    sent_message(first, ben, at=NOW - dt.timedelta(days=13))  # not due yet
    sent_message(first, eva, at=NOW - dt.timedelta(days=15), outcome=Decision.HOLDOUT)  # received nothing

    triggers_scan(now=NOW, campaign_ids=[then.pk])

    enrolled = Enrollment.objects.get(campaign=then)
    assert enrolled.customer == ana and enrolled.trigger_key == f"after:{message.pk}"
    assert enrolled.triggered_at == message.sent_at + dt.timedelta(days=14)
    assert enrolled.context == {"after_campaign": first.pk, "message_id": message.pk}
    triggers_scan(now=NOW + dt.timedelta(hours=1), campaign_ids=[then.pk])
    assert Enrollment.objects.filter(campaign=then).count() == 1  # idempotent
    triggers_scan(now=NOW + dt.timedelta(days=1, hours=1), campaign_ids=[then.pk])
    assert set(Enrollment.objects.filter(campaign=then).values_list("customer", flat=True)) == {ana.pk, ben.pk}


@pytest.mark.parametrize("condition, expected", [(FollowUp.RESPONDED, "clicked"), (FollowUp.NOT_RESPONDED, "ignored")])
def test_a_follow_up_can_wait_for_a_response_or_its_absence(series, make_customer, condition, expected):
    first, then = series
    journey_of(first, follow_ups=[(first, then, 7, condition)])
    clicked, ignored = consent(make_customer()), consent(make_customer())
    at = NOW - dt.timedelta(days=8)
    sent_message(first, clicked, at=at, clicked_at=at + dt.timedelta(days=1))
    sent_message(first, ignored, at=at)

    triggers_scan(now=NOW, campaign_ids=[then.pk])

    assert list(Enrollment.objects.filter(campaign=then).values_list("customer", flat=True)) == [
        {"clicked": clicked, "ignored": ignored}[expected].pk
    ]


def test_an_inactive_journey_makes_no_follow_up(series, make_customer):
    first, then = series
    journey = journey_of(first, follow_ups=[(first, then, 1)])
    journey.active = False
    journey.save()
    sent_message(first, consent(make_customer()), at=NOW - dt.timedelta(days=2))
    triggers_scan(now=NOW, campaign_ids=[then.pk])
    assert not Enrollment.objects.filter(campaign=then).exists()


def test_a_campaign_cannot_follow_itself_and_a_follow_up_needs_the_follow_up_trigger(series):
    from django.core.exceptions import ValidationError

    first, then = series
    journey = journey_of(first)
    with pytest.raises(ValidationError, match="own follow-up"):
        FollowUp(journey=journey, campaign=then, follow_up=then).clean()
    with pytest.raises(ValidationError, match="not a follow-up campaign"):
        FollowUp(journey=journey, campaign=then, follow_up=first).clean()


# --- decision rounds ----------------------------------------------------------------------------


def _two_campaigns(email, customers, *, holdout=0):
    a = make_campaign("A", channels=[email], trigger=c.BIRTHDAY, steps=((0, "hours"),), priority=80,
                      holdout_percent=holdout)
    b = make_campaign("B", channels=[email], trigger=c.BIRTHDAY, steps=((0, "hours"),), priority=20,
                      holdout_percent=holdout)
    for person in customers:
        enroll(a, person, due=NOW - dt.timedelta(minutes=1))
        enroll(b, person, due=NOW - dt.timedelta(minutes=1))
    return a, b


def test_a_self_optimizing_journey_decides_with_the_policy_and_logs_true_propensities(email, make_customer):
    people = [consent(make_customer()) for _ in range(60)]
    a, b = _two_campaigns(email, people)
    journey_of(a, b)

    result = decision_round(now=NOW, enqueue=False)

    chosen = Decision.objects.exclude(outcome=Decision.SKIPPED)
    # One decision per customer (a send, a hold-out or nothing), listing both campaigns; the
    # step not chosen is outranked, with no row of its own.
    assert result.decisions == chosen.count() == 60 and result.reasons["outranked"] == 60
    assert chosen.values("customer").distinct().count() == 60
    assert {tuple(c) for c in chosen.values_list("candidates", flat=True)} == {tuple(sorted([a.pk, b.pk]))}
    assert set(chosen.values_list("policy", flat=True)) == {"journey"}
    assert set(chosen.values_list("model_version", flat=True)) == {"0"}  # priors only: nothing learned yet
    outcomes = set(chosen.values_list("outcome", flat=True))
    assert Decision.SEND in outcomes and outcomes <= {Decision.SEND, Decision.NOTHING, Decision.HOLDOUT}
    # With no data the policy explores: both campaigns are sent, and every logged
    # probability is a real one, strictly between 0 and 1.
    sent = set(chosen.filter(outcome=Decision.SEND).values_list("campaign_id", flat=True))
    assert sent == {a.pk, b.pk}
    assert all(0 < p < 1 for p in chosen.values_list("propensity", flat=True))
    assert Message.objects.count() == chosen.filter(outcome=Decision.SEND).count()


def test_the_journeys_hold_out_share_reaches_the_policy(email, make_customer, monkeypatch):
    given = []
    set_options = optimizing.JourneyPolicy.set_options

    def spy(self, **options):
        given.append(options)
        return set_options(self, **options)

    monkeypatch.setattr(optimizing.JourneyPolicy, "set_options", spy)
    people = [consent(make_customer()) for _ in range(200)]
    a, b = _two_campaigns(email, people)
    journey = journey_of(a, b)
    assert (journey.exploration, journey.holdout) == (0.02, 0.02)  # the defaults
    journey.holdout = 0.5
    journey.save()

    decision_round(now=NOW, enqueue=False)

    assert given[-1]["holdout"] == 0.5  # the journey's options, set on the learned policy
    chosen = Decision.objects.exclude(outcome=Decision.SKIPPED)
    sends = list(chosen.filter(outcome=Decision.SEND).values_list("propensity", flat=True))
    held = list(chosen.filter(outcome=Decision.HOLDOUT).values_list("propensity", flat=True))
    # Half the customers given a campaign are held out at random (about 140 of them here).
    assert len(sends) + len(held) > 100
    assert len(held) / (len(sends) + len(held)) == pytest.approx(0.5, abs=0.12)
    # A send was drawn, then kept with probability 1 - 0.5; a held-out customer receives
    # nothing with probability p(nothing) + 0.5 * (1 - p(nothing)), at least 0.5.
    assert all(0 < p <= 0.5 for p in sends)
    assert all(0.5 <= p < 1 for p in held)


def test_outside_a_self_optimizing_journey_manual_priority_decides(email, make_customer):
    people = [consent(make_customer()) for _ in range(5)]
    a, b = _two_campaigns(email, people)
    journey_of(a, b, mode=Journey.MANUAL)

    decision_round(now=NOW, enqueue=False)

    chosen = Decision.objects.exclude(outcome=Decision.SKIPPED)
    assert set(chosen.values_list("policy", "campaign_id", "outcome")) == {("manual", a.pk, Decision.SEND)}


def test_manual_propensities_count_the_control_group_and_the_holdout(email, make_customer, settings):
    settings.OSCAR_JOURNEYS_GLOBAL_CONTROL_PERCENT = 10
    people = [consent(make_customer()) for _ in range(300)]
    _two_campaigns(email, people, holdout=20)

    decision_round(now=NOW, enqueue=False)

    chosen = Decision.objects.exclude(outcome=Decision.SKIPPED)
    by_outcome = {o: list(chosen.filter(outcome=o).values_list("propensity", flat=True)) for o in ("send", "holdout", "control")}
    assert all(len(values) > 5 for values in by_outcome.values())  # each draw happened
    assert by_outcome["send"] == pytest.approx([0.9 * 0.8] * len(by_outcome["send"]))
    nothing = by_outcome["holdout"] + by_outcome["control"]
    assert nothing == pytest.approx([0.1 + 0.9 * 0.2] * len(nothing))


def test_consent_and_caps_hold_for_the_policy_as_in_manual_mode(email, make_customer):
    from oscar_journeys.models import FrequencyCap

    allowed = [consent(make_customer()) for _ in range(10)]
    refused = [consent(make_customer(), granted=False) for _ in range(10)]
    capped = [consent(make_customer()) for _ in range(10)]
    a, b = _two_campaigns(email, allowed + refused + capped)
    journey_of(a, b)
    FrequencyCap.objects.create(channel_kind="email", max_messages=1, period_days=1)
    for person in capped:
        sent_message(a, person, at=NOW - dt.timedelta(hours=2))

    decision_round(now=NOW, enqueue=False)

    new = Decision.objects.filter(decided_at=NOW)
    assert set(new.filter(customer__in=refused).values_list("reason", flat=True)) == {Decision.NO_CONSENT}
    assert set(new.filter(customer__in=capped).values_list("reason", flat=True)) == {Decision.CAPPED}
    assert not Message.objects.filter(decision__decided_at=NOW).exclude(customer__in=allowed).exists()


# --- learning -----------------------------------------------------------------------------------


def test_learning_makes_a_version_from_closed_decisions_and_rounds_use_it(email, make_customer):
    people = [consent(make_customer()) for _ in range(80)]
    a, b = _two_campaigns(email, people)
    journey_of(a, b)
    for person in people[:40]:
        Snapshot.objects.create(customer=person, as_of=(NOW - dt.timedelta(days=1)).date(), frequency=3, monetary=90.0)
    decision_round(now=NOW, enqueue=False)
    chosen = Decision.objects.exclude(outcome=Decision.SKIPPED)
    chosen.filter(campaign=a, outcome=Decision.SEND).update(attributed_value=50)
    Decision.objects.update(attribution_closed=True)

    first = optimizing.policy_learn(now=NOW + dt.timedelta(days=8))

    assert first.status == PolicyVersion.SUCCEEDED, first.error
    assert first.version == 1 and first.outcomes == 80 and first.learned_until == NOW
    summary = {row["campaign_id"]: row for row in first.summary}
    assert summary[a.pk]["uplift"] > summary[b.pk]["uplift"]
    assert summary[a.pk]["n_treated"] == chosen.filter(campaign=a, outcome=Decision.SEND).count()

    again = optimizing.policy_learn(now=NOW + dt.timedelta(days=9))
    assert (again.version, again.outcomes, again.learned_until) == (2, 0, NOW)

    later = NOW + dt.timedelta(days=10)
    for person in people:
        enroll(a, person, due=later, key=f"again:{person.pk}")
    decision_round(now=later, enqueue=False)
    assert set(Decision.objects.filter(decided_at=later).values_list("model_version", flat=True)) == {"2"}


def test_a_failed_fit_is_recorded_and_rounds_keep_the_last_good_version(email, make_customer, monkeypatch):
    optimizing.policy_learn(now=NOW)
    monkeypatch.setattr(optimizing, "_outcomes", lambda since, until: 1 / 0)
    failed = optimizing.policy_learn(now=NOW)
    assert failed.status == PolicyVersion.FAILED and "ZeroDivisionError" in failed.error
    assert optimizing.latest_version() == 1


def test_policy_features_read_the_latest_snapshot_before_the_decision(make_customer):
    person = make_customer()
    Snapshot.objects.create(customer=person, as_of=dt.date(2025, 5, 30), frequency=2, monetary=40.0)
    Snapshot.objects.create(customer=person, as_of=dt.date(2025, 6, 1), frequency=3, monetary=70.0)
    features = optimizing.policy_features([person.pk], now=NOW)
    assert features.loc[person.pk, "frequency"] == 3 and features.loc[person.pk, "monetary"] == 70.0
    earlier = optimizing.policy_features([person.pk], now=dt.datetime(2025, 5, 31, tzinfo=dt.timezone.utc))
    assert earlier.loc[person.pk, "frequency"] == 2
    assert np.isnan(optimizing.policy_features([person.pk + 1000], now=NOW).iloc[0]["frequency"])


def test_a_decision_never_reads_the_snapshot_of_its_own_day(make_customer):
    # The snapshot of 2 June is built once 2 June is over: it holds what followed a decision
    # made at noon that day (here, the order it led to). Neither the round at noon nor the
    # learning afterwards may read it.
    person = make_customer()
    Snapshot.objects.create(customer=person, as_of=dt.date(2025, 6, 1), frequency=3, monetary=70.0)
    Snapshot.objects.create(customer=person, as_of=dt.date(2025, 6, 2), frequency=4, monetary=120.0)
    assert optimizing.policy_features([person.pk], now=NOW).loc[person.pk, "frequency"] == 3
    learned = optimizing.features_at_decisions(
        [person.pk, person.pk], [NOW, NOW + dt.timedelta(days=1)]
    )
    assert learned["frequency"].tolist() == [3, 4]
    assert learned["monetary"].tolist() == [70.0, 120.0]


# --- the starter set ----------------------------------------------------------------------------


def test_the_starter_set_ships_the_sample_self_optimizing_journey(db, settings):
    from oscar_journeys.defaults import EMAIL_BACKEND, setup_defaults

    settings.OSCAR_JOURNEYS_CHANNEL_BACKENDS = [EMAIL_BACKEND]

    created = setup_defaults(now=NOW)
    journey = Journey.objects.get()
    assert created["journeys"] == [journey.name] and journey.mode == Journey.OPTIMIZED
    triggers = sorted(journey.campaigns.values_list("trigger", flat=True))
    assert triggers == sorted([c.POST_PURCHASE, c.POST_PURCHASE, c.BIRTHDAY])
    link = FollowUp.objects.get(journey=journey)
    assert link.follow_up.trigger == c.FOLLOW_UP and link.delay_days == 14
    assert setup_defaults(now=NOW)["journeys"] == [] and Journey.objects.count() == 1
