"""Order attribution: orders within (decided_at, decided_at + window], for sends, holdouts
and control alike."""

import datetime as dt
from decimal import Decimal

import pytest

from oscar_journeys.models import Decision
from oscar_journeys.models import campaigns as c
from oscar_journeys.services.attribution import outcomes_attribute
from oscar_journeys.services.customers import customer_merge
from oscar_journeys.services.timeline import timeline_record_event

from .journeys_setup import BACKENDS, make_campaign, make_channel

NOW = dt.datetime(2025, 6, 2, 12, 0, tzinfo=dt.timezone.utc)
DAY = dt.timedelta(days=1)


@pytest.fixture(autouse=True)
def _settings(settings):
    settings.OSCAR_JOURNEYS_CHANNEL_BACKENDS = BACKENDS
    settings.OSCAR_JOURNEYS_ATTRIBUTION_DAYS = 5


@pytest.fixture
def campaign(db):
    return make_campaign("Birthday", channels=[make_channel()], trigger=c.BIRTHDAY)


def decide(campaign, customer, outcome="send", at=NOW, step=1):
    return Decision.objects.create(customer=customer, campaign=campaign, step=step, decided_at=at, outcome=outcome)


def order(customer, at, value):
    timeline_record_event(customer=customer, type="order_placed", occurred_at=at, value=value)


def test_orders_in_the_window_count(campaign, make_customer):
    customer = make_customer()
    decision = decide(campaign, customer)
    order(customer, NOW - dt.timedelta(minutes=1), 99)  # before: not this decision's
    order(customer, NOW + dt.timedelta(hours=3), "20.50")
    order(customer, NOW + 2 * DAY, "10.00")
    order(customer, NOW + 6 * DAY, 500)  # after the window

    counts = outcomes_attribute(now=NOW + 7 * DAY)

    decision.refresh_from_db()
    assert (decision.attributed_orders, decision.attributed_value) == (2, Decimal("30.50"))
    assert decision.converted_at == NOW + dt.timedelta(hours=3)
    assert decision.attribution_closed
    assert counts == {"open": 1, "updated": 1, "closed": 1}


def test_the_window_fills_in_as_time_passes_then_closes(campaign, make_customer):
    customer = make_customer()
    decision = decide(campaign, customer)
    order(customer, NOW + DAY, 10)
    order(customer, NOW + 3 * DAY, 5)

    outcomes_attribute(now=NOW + 2 * DAY)
    decision.refresh_from_db()
    assert (decision.attributed_orders, decision.attribution_closed) == (1, False)

    outcomes_attribute(now=NOW + 4 * DAY)
    decision.refresh_from_db()
    assert (decision.attributed_orders, decision.attributed_value) == (2, Decimal("15.00"))

    outcomes_attribute(now=NOW + 5 * DAY)
    decision.refresh_from_db()
    assert decision.attribution_closed
    # Closed decisions are not read again.
    assert outcomes_attribute(now=NOW + 9 * DAY)["open"] == 0


def test_holdout_and_control_are_attributed_like_sends_skipped_are_not(campaign, make_customer):
    customers = [make_customer() for _ in range(4)]
    decisions = [decide(campaign, cu, outcome) for cu, outcome in zip(customers, ["send", "holdout", "control", "skipped"])]
    for customer in customers:
        order(customer, NOW + DAY, 40)

    outcomes_attribute(now=NOW + 2 * DAY)

    values = [Decision.objects.get(pk=d.pk).attributed_value for d in decisions]
    assert values == [Decimal("40.00")] * 3 + [Decimal("0.00")]


def test_a_campaign_window_overrides_the_default(make_customer):
    campaign = make_campaign("Short", channels=[make_channel()], trigger=c.BIRTHDAY, attribution_days=1)
    customer = make_customer()
    decision = decide(campaign, customer)
    order(customer, NOW + 2 * DAY, 10)
    outcomes_attribute(now=NOW + 3 * DAY)
    decision.refresh_from_db()
    assert (decision.attributed_orders, decision.attribution_closed) == (0, True)


def test_each_decision_counts_its_own_window(campaign, make_customer):
    customer = make_customer()
    first, second = decide(campaign, customer, at=NOW), decide(campaign, customer, at=NOW + 2 * DAY, step=2)
    order(customer, NOW + DAY, 10)
    order(customer, NOW + 3 * DAY, 20)
    outcomes_attribute(now=NOW + 3 * DAY)
    first.refresh_from_db(), second.refresh_from_db()
    assert (first.attributed_orders, first.attributed_value) == (2, Decimal("30.00"))
    assert (second.attributed_orders, second.attributed_value) == (1, Decimal("20.00"))


def test_orders_of_a_merged_customer_count_for_the_decision(campaign, make_customer):
    visitor, account = make_customer(email=""), make_customer()
    decision = decide(campaign, visitor)
    customer_merge(survivor=account, merged=visitor, reason="admin")
    order(account, NOW + DAY, 12)
    outcomes_attribute(now=NOW + 2 * DAY)
    decision.refresh_from_db()
    assert decision.attributed_orders == 1


def test_many_customers_in_chunks(campaign, make_customer, monkeypatch):
    from oscar_journeys.services import attribution

    monkeypatch.setattr(attribution, "CHUNK", 3)
    customers = [make_customer() for _ in range(8)]
    decisions = [decide(campaign, cu) for cu in customers]
    for i, customer in enumerate(customers):
        if i % 2:
            order(customer, NOW + DAY, i)
    outcomes_attribute(now=NOW + 2 * DAY)
    got = [Decision.objects.get(pk=d.pk).attributed_orders for d in decisions]
    assert got == [i % 2 for i in range(8)]
