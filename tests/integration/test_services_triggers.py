"""Campaign triggers: each family enrolls the right customers once, honours its options,
re-entry and the campaign's dates, and the exit conditions take enrollments out."""

import datetime as dt
import itertools
from decimal import Decimal

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.utils import timezone
from oscar.apps.catalogue.categories import create_from_breadcrumbs
from oscar.apps.partner.strategy import Default
from oscar.test.factories import create_order, create_product

from oscar_journeys.ml import schema
from oscar_journeys.models import Campaign, CampaignStep, Customer, CustomerIdentifier, DueStep, Enrollment
from oscar_journeys.services.customers import customer_for_user, customer_merge
from oscar_journeys.services.timeline import timeline_record_event
from oscar_journeys.services.triggers import enrollments_exit_due, triggers_scan
from oscar_journeys.services.triggers.calendar import latest_occurrence
from tests import storefront
from tests.integration.journeys_setup import assert_due_steps_follow_enrollments

pytestmark = pytest.mark.django_db

UTC = dt.timezone.utc
LONDON = timezone.get_default_timezone()
_names = itertools.count(1)


def make_campaign(trigger, *, delay=1, unit="hours", steps=1, created_at=None, **options):
    campaign = Campaign.objects.create(
        name=f"{trigger} {next(_names)}",
        trigger=trigger,
        created_at=created_at or timezone.now() - dt.timedelta(days=400),
        **options,
    )
    for position in range(1, steps + 1):
        CampaignStep.objects.create(
            campaign=campaign, position=position, delay_value=delay * position, delay_unit=unit
        )
    return campaign


def make_user(email):
    return get_user_model().objects.create_user(username=email, email=email, password="x")


def make_basket(product, *, owner=None, quantity=1, touched=None, holder=None):
    Basket = apps.get_model("basket", "Basket")
    basket = Basket.objects.create(owner=owner)
    basket.strategy = Default()
    basket.add_product(product, quantity)
    if touched is not None:
        basket.lines.update(date_updated=touched)
    if holder is not None:
        CustomerIdentifier.objects.create(customer=holder, kind="basket", value=str(basket.pk))
    return basket


def record(customer, type, at, **fields):
    event, _ = timeline_record_event(customer=customer, type=type, occurred_at=at, **fields)
    return event


def enrollments(campaign=None):
    rows = Enrollment.objects.order_by("customer_id", "triggered_at")
    return list(rows.filter(campaign=campaign) if campaign else rows)


# --- cart abandoned ---------------------------------------------------------------------------


@pytest.fixture
def now():
    return timezone.now().replace(microsecond=0)


@pytest.fixture
def shopper(db):
    user = make_user("ana@example.com")
    return user, customer_for_user(user)


def test_an_abandoned_basket_enrolls_its_owner_once(product, shopper, now):
    user, customer = shopper
    touched = now - dt.timedelta(hours=2)
    basket = make_basket(product, owner=user, quantity=2, touched=touched)
    campaign = make_campaign("cart_abandoned", delay=1, steps=2)

    assert triggers_scan(now=now) == {campaign.pk: 1}

    (enrollment,) = enrollments()
    assert enrollment.customer_id == customer.pk
    assert enrollment.trigger_key == f"basket:{basket.pk}:{int(touched.timestamp())}"
    assert enrollment.context == {"basket_id": basket.pk}
    assert enrollment.triggered_at == touched
    assert enrollment.next_due_at == touched + dt.timedelta(hours=1)
    assert (enrollment.status, enrollment.next_step, enrollment.created_at) == ("active", 1, now)
    # Idempotent: the same scan again, or a later one, creates nothing.
    assert triggers_scan(now=now) == {campaign.pk: 0}
    assert triggers_scan(now=now + dt.timedelta(hours=5)) == {campaign.pk: 0}
    assert Enrollment.objects.count() == 1
    assert_due_steps_follow_enrollments()


def test_bulk_enrolment_gives_each_new_enrollment_its_due_step_and_leaves_the_others(make_customer, now):
    import pandas as pd

    from oscar_journeys.services.triggers.base import insert_enrollments

    campaign = make_campaign("cart_abandoned")
    first, second = make_customer(), make_customer()
    rows = pd.DataFrame({"customer_id": [first.pk], "trigger_key": ["a"], "triggered_at": [pd.Timestamp(now)],
                         "context": ["{}"], "next_due_at": [pd.Timestamp(now)]})
    assert insert_enrollments(rows, campaign_id=campaign.pk, now=now) == 1
    moved = Enrollment.objects.get()
    moved.next_due_at = now + dt.timedelta(days=1)
    moved.save()
    both = pd.concat([rows, rows.assign(customer_id=second.pk, next_due_at=pd.Timestamp(now + dt.timedelta(hours=1)))])

    assert insert_enrollments(both, campaign_id=campaign.pk, now=now) == 1  # the first key is taken

    assert_due_steps_follow_enrollments()
    assert dict(DueStep.objects.values_list("customer_id", "due_at")) == {
        first.pk: now + dt.timedelta(days=1), second.pk: now + dt.timedelta(hours=1)
    }


def test_a_basket_touched_within_the_delay_waits(product, shopper, now):
    user, _ = shopper
    make_basket(product, owner=user, touched=now - dt.timedelta(minutes=30))
    campaign = make_campaign("cart_abandoned", delay=1)
    assert triggers_scan(now=now) == {campaign.pk: 0}
    assert triggers_scan(now=now + dt.timedelta(minutes=31)) == {campaign.pk: 1}


@pytest.mark.parametrize("minimum, enrolled", [(None, 1), ("90.00", 1), ("90.01", 0)])
def test_minimum_basket_value(product, shopper, now, minimum, enrolled):
    user, _ = shopper
    make_basket(product, owner=user, quantity=2, touched=now - dt.timedelta(hours=2))  # 2 x 45.00
    campaign = make_campaign("cart_abandoned", min_basket_value=minimum and Decimal(minimum))
    assert triggers_scan(now=now) == {campaign.pk: enrolled}


def test_guest_baskets_enroll_their_known_holder_and_never_an_anonymous_visitor(product, make_customer, now):
    guest = make_customer(email="guest@example.com")
    visitor = Customer.objects.create()  # no account, email or phone
    merged_visitor = Customer.objects.create()
    survivor = make_customer(email="survivor@example.com")
    customer_merge(survivor=survivor, merged=merged_visitor, reason="guest_checkout")
    touched = now - dt.timedelta(hours=3)
    make_basket(product, touched=touched, holder=guest)
    make_basket(product, touched=touched, holder=visitor)
    make_basket(product, touched=touched, holder=merged_visitor)
    make_basket(product, touched=touched)  # nobody known
    campaign = make_campaign("cart_abandoned")

    assert triggers_scan(now=now) == {campaign.pk: 2}
    assert sorted(e.customer_id for e in enrollments()) == sorted([guest.pk, survivor.pk])


def test_empty_submitted_and_stale_baskets_are_not_abandoned(product, shopper, now):
    user, _ = shopper
    Basket = apps.get_model("basket", "Basket")
    Basket.objects.create(owner=user)  # open, no lines
    submitted = make_basket(product, owner=user, touched=now - dt.timedelta(hours=2))
    submitted.submit()
    make_basket(product, owner=user, touched=now - dt.timedelta(days=31))  # beyond the 30-day look-back
    campaign = make_campaign("cart_abandoned")
    assert triggers_scan(now=now) == {campaign.pk: 0}


def test_a_new_campaign_does_not_replay_the_past(product, shopper, now):
    user, _ = shopper
    make_basket(product, owner=user, touched=now - dt.timedelta(hours=5))
    campaign = make_campaign("cart_abandoned", created_at=now - dt.timedelta(hours=4))
    assert triggers_scan(now=now) == {campaign.pk: 0}
    campaign.created_at = now - dt.timedelta(hours=6)
    campaign.save()
    assert triggers_scan(now=now) == {campaign.pk: 1}


def test_one_enrollment_per_customer_per_scan_the_latest(product, shopper, now):
    user, customer = shopper
    make_basket(product, owner=user, touched=now - dt.timedelta(hours=5))
    latest = make_basket(product, touched=now - dt.timedelta(hours=2), holder=customer)
    campaign = make_campaign("cart_abandoned")
    assert triggers_scan(now=now) == {campaign.pk: 1}
    assert enrollments()[0].context == {"basket_id": latest.pk}


def test_reentry(product, shopper, now):
    user, _ = shopper
    basket = make_basket(product, owner=user, touched=now - dt.timedelta(hours=2))
    campaign = make_campaign("cart_abandoned", reentry_days=7)
    assert triggers_scan(now=now) == {campaign.pk: 1}

    # Still active: a new abandonment of the same customer does not enter.
    later = now + dt.timedelta(days=10)
    basket.lines.update(date_updated=later - dt.timedelta(hours=2))
    assert triggers_scan(now=later) == {campaign.pk: 0}
    # Completed 10 days ago: it enters again.
    Enrollment.objects.update(status="completed", next_due_at=None)
    assert triggers_scan(now=later) == {campaign.pk: 1}
    # Another abandonment three days after that one: within the 7 days, so not again.
    Enrollment.objects.update(status="completed", next_due_at=None)
    sooner = later + dt.timedelta(days=3)
    basket.lines.update(date_updated=sooner - dt.timedelta(hours=2))
    assert triggers_scan(now=sooner) == {campaign.pk: 0}
    assert Enrollment.objects.count() == 2


def test_only_running_campaigns_with_steps_are_scanned(product, shopper, now):
    user, _ = shopper
    make_basket(product, owner=user, touched=now - dt.timedelta(hours=2))
    running = make_campaign("cart_abandoned")
    make_campaign("cart_abandoned", active=False)
    make_campaign("cart_abandoned", ends_at=now - dt.timedelta(minutes=1))
    make_campaign("cart_abandoned", starts_at=now + dt.timedelta(minutes=1))
    make_campaign("cart_abandoned", steps=0)
    other = make_campaign("cart_abandoned")
    assert triggers_scan(now=now) == {running.pk: 1, other.pk: 1}
    assert triggers_scan(now=now, campaign_ids=[other.pk]) == {other.pk: 0}


# --- after a purchase ----------------------------------------------------------------------------


def buy(user, *products, quantity=1):
    Basket = apps.get_model("basket", "Basket")
    basket = Basket.objects.create(owner=user)
    basket.strategy = Default()
    for product in products:
        basket.add_product(product, quantity)
    return create_order(user=user, basket=basket)


def test_an_order_enrolls_its_customer_at_order_time(product, shopper):
    user, customer = shopper
    order = buy(user, product)
    campaign = make_campaign("post_purchase", delay=3, unit="days", steps=2)
    now = timezone.now()

    assert triggers_scan(now=now) == {campaign.pk: 1}
    (enrollment,) = enrollments()
    assert enrollment.customer_id == customer.pk
    assert enrollment.trigger_key == f"order:{order.number}"
    assert enrollment.context == {"order_number": str(order.number), "order_id": order.pk}
    assert enrollment.triggered_at == order.date_placed
    assert enrollment.next_due_at == order.date_placed + dt.timedelta(days=3)
    assert triggers_scan(now=now + dt.timedelta(hours=1)) == {campaign.pk: 0}


def test_minimum_order_value(product, make_customer):
    small, large = make_customer(), make_customer()
    at = timezone.now() - dt.timedelta(hours=1)
    record(small, schema.ORDER_PLACED, at, value=Decimal("20.00"), idempotency_key="order:A1",
           payload={"order_number": "A1"})
    record(large, schema.ORDER_PLACED, at, value=Decimal("80.00"), idempotency_key="order:A2",
           payload={"order_number": "A2"})
    record(large, schema.ORDER_PLACED, at, value=Decimal("90.00"), idempotency_key="ext-7", source="pos")
    campaign = make_campaign("post_purchase", min_order_value=Decimal("50"), reentry_days=0)
    assert triggers_scan(now=timezone.now()) == {campaign.pk: 1}
    # One per customer per scan, and none while theirs is active; once it is over (re-entry
    # 0 days), the other order enters.
    assert triggers_scan(now=timezone.now()) == {campaign.pk: 0}
    Enrollment.objects.update(status="completed")
    assert triggers_scan(now=timezone.now()) == {campaign.pk: 1}
    keys = sorted(e.trigger_key for e in enrollments())
    assert keys[0] == "order:A2" and keys[1].startswith("order:event:")
    assert all(e.customer_id == large.pk for e in enrollments())
    assert {e.context["order_id"] for e in enrollments()} == {None}


def test_product_and_category_conditions(product, category):
    trail = create_from_breadcrumbs("Running shoes > Trail")
    boot = create_product(title="Fell boot", price="60.00", num_in_stock=10, upc="FB-1")
    apps.get_model("catalogue", "ProductCategory").objects.create(product=boot, category=trail)
    sock = create_product(title="Sock", price="5.00", num_in_stock=10, upc="SO-1")
    buyers = {name: make_user(f"{name}@example.com") for name in ("boot", "sock", "both")}
    buy(buyers["boot"], boot)
    buy(buyers["sock"], sock)
    buy(buyers["both"], sock, product)

    by_category = make_campaign("post_purchase")
    by_category.categories.add(category)  # the parent: its subcategories count too
    by_product = make_campaign("post_purchase")
    by_product.products.add(sock)
    everything = make_campaign("post_purchase")

    assert triggers_scan(now=timezone.now()) == {by_category.pk: 2, by_product.pk: 2, everything.pk: 3}
    customers = {name: customer_for_user(user).pk for name, user in buyers.items()}
    assert {e.customer_id for e in enrollments(by_category)} == {customers["boot"], customers["both"]}
    assert {e.customer_id for e in enrollments(by_product)} == {customers["sock"], customers["both"]}


def test_a_cancelled_order_exits_its_post_purchase_enrollment(product, shopper):
    user, customer = shopper
    order = buy(user, product)
    campaign = make_campaign("post_purchase", delay=0)
    now = timezone.now()
    triggers_scan(now=now)
    record(customer, schema.ORDER_CANCELLED, now, idempotency_key=f"cancel:{order.number}",
           payload={"order_number": order.number})
    assert enrollments_exit_due(now=now) == {"order_cancelled": 1}
    assert Enrollment.objects.get(campaign=campaign).exit_reason == "order_cancelled"


# --- birthday ----------------------------------------------------------------------------------------


def birthday_campaign(days_before):
    return make_campaign("birthday", delay=9, days_before_birthday=days_before,
                         created_at=dt.datetime(2020, 1, 1, tzinfo=UTC))


def test_birthday_days_before_with_the_shops_date(make_customer):
    ana = make_customer(date_of_birth=dt.date(1990, 3, 10))
    make_customer(date_of_birth=dt.date(1990, 3, 11))
    make_customer()  # no birthday known
    campaign = birthday_campaign(3)
    now = dt.datetime(2025, 3, 7, 0, 30, tzinfo=UTC)  # 7 March in London

    assert triggers_scan(now=now) == {campaign.pk: 1}
    (enrollment,) = enrollments()
    assert (enrollment.customer_id, enrollment.trigger_key) == (ana.pk, "birthday:2025")
    assert enrollment.triggered_at == dt.datetime(2025, 3, 7, tzinfo=LONDON)
    assert enrollment.next_due_at == enrollment.triggered_at + dt.timedelta(hours=9)
    assert triggers_scan(now=now + dt.timedelta(hours=12)) == {campaign.pk: 0}
    # A day missed is caught up, once.
    assert triggers_scan(now=now + dt.timedelta(days=1)) == {campaign.pk: 1}
    assert triggers_scan(now=now + dt.timedelta(days=2)) == {campaign.pk: 0}


def test_birthday_on_29_february(make_customer):
    leap = make_customer(date_of_birth=dt.date(2000, 2, 29))
    campaign = birthday_campaign(0)
    assert triggers_scan(now=dt.datetime(2025, 2, 28, 12, tzinfo=UTC)) == {campaign.pk: 1}
    assert enrollments()[0].trigger_key == "birthday:2025"
    Enrollment.objects.all().delete()
    # In a leap year, on the day itself and not the day before.
    assert triggers_scan(now=dt.datetime(2024, 2, 28, 12, tzinfo=UTC)) == {campaign.pk: 0}
    Campaign.objects.filter(pk=campaign.pk).update(created_at=dt.datetime(2024, 2, 29, tzinfo=UTC))
    assert triggers_scan(now=dt.datetime(2024, 2, 29, 12, tzinfo=UTC)) == {campaign.pk: 1}
    assert enrollments()[0].customer_id == leap.pk


def test_birthday_across_the_new_year(make_customer):
    make_customer(date_of_birth=dt.date(1985, 1, 2))
    campaign = birthday_campaign(5)
    assert triggers_scan(now=dt.datetime(2024, 12, 28, 12, tzinfo=UTC)) == {campaign.pk: 1}
    assert enrollments()[0].trigger_key == "birthday:2025"


# --- win-back ------------------------------------------------------------------------------------------


def orders_at(customer, *days_ago, now):
    for days in days_ago:
        at = now - dt.timedelta(days=days)
        number = f"{customer.pk}-{at.timestamp()}"
        record(customer, schema.ORDER_PLACED, at, value=Decimal("30"), idempotency_key=f"order:{number}",
               payload={"order_number": number})


def test_win_back(make_customer, now):
    lapsed, lapsed_once, recent, long_gone = (make_customer() for _ in range(4))
    orders_at(lapsed, 120, 95, now=now)
    orders_at(lapsed_once, 95, now=now)
    orders_at(recent, 100, 30, now=now)
    orders_at(long_gone, 300, 200, now=now)  # lapsed long ago: not replayed
    campaign = make_campaign("win_back", delay=0, days_without_order=90, min_past_orders=2)

    assert triggers_scan(now=now) == {campaign.pk: 1}
    (enrollment,) = enrollments()
    last_order = now - dt.timedelta(days=95)
    assert enrollment.customer_id == lapsed.pk
    assert enrollment.trigger_key == f"winback:{timezone.localdate(last_order, LONDON).isoformat()}"
    assert enrollment.triggered_at == last_order + dt.timedelta(days=90)
    assert triggers_scan(now=now) == {campaign.pk: 0}

    # They order again: the enrollment exits.
    orders_at(lapsed, 0, now=now + dt.timedelta(minutes=1))
    assert enrollments_exit_due(now=now + dt.timedelta(minutes=2)) == {"ordered": 1}


# --- browse abandoned ------------------------------------------------------------------------------------


def test_browse_abandoned(product, make_customer, now):
    other = create_product(title="Road shoe", price="50.00", num_in_stock=5, upc="RS-1")
    third = create_product(title="Hat", price="10.00", num_in_stock=5, upc="HA-1")
    fourth = create_product(title="Cap", price="10.00", num_in_stock=5, upc="CA-1")
    browser, buyer, adder, still_browsing = (make_customer() for _ in range(4))
    anonymous = Customer.objects.create()
    for customer in (browser, buyer, adder, still_browsing, anonymous):
        for minutes, item in ((300, fourth), (240, product), (200, other), (190, third), (180, product)):
            record(customer, schema.PRODUCT_VIEWED, now - dt.timedelta(minutes=minutes), product=item)
    record(buyer, schema.ORDER_PLACED, now - dt.timedelta(minutes=100))
    record(adder, schema.BASKET_ADDITION, now - dt.timedelta(minutes=170), product=product)
    record(still_browsing, schema.PRODUCT_VIEWED, now - dt.timedelta(minutes=10), product=other)
    campaign = make_campaign("browse_abandoned", delay=1)

    assert triggers_scan(now=now) == {campaign.pk: 1}
    (enrollment,) = enrollments()
    last_view = now - dt.timedelta(minutes=180)
    assert enrollment.customer_id == browser.pk
    assert enrollment.trigger_key == f"browse:{int(last_view.timestamp())}"
    assert enrollment.context == {"product_ids": [product.pk, third.pk, other.pk]}
    assert triggers_scan(now=now) == {campaign.pk: 0}

    # The exit: a basket addition after the last view.
    record(browser, schema.BASKET_ADDITION, now, product=product)
    assert enrollments_exit_due(now=now + dt.timedelta(seconds=1)) == {"added_to_basket": 1}


def test_browse_with_a_category_condition(product, category, make_customer, now):
    sock = create_product(title="Sock", price="5.00", num_in_stock=5, upc="SO-2")
    runner, sock_fan = make_customer(), make_customer()
    record(runner, schema.PRODUCT_VIEWED, now - dt.timedelta(hours=3), product=product, category=category.name)
    record(runner, schema.PRODUCT_VIEWED, now - dt.timedelta(hours=2), product=sock)
    record(sock_fan, schema.PRODUCT_VIEWED, now - dt.timedelta(hours=2), product=sock)
    campaign = make_campaign("browse_abandoned", delay=1)
    campaign.categories.add(category)
    assert triggers_scan(now=now) == {campaign.pk: 1}
    (enrollment,) = enrollments()
    assert enrollment.customer_id == runner.pk
    assert enrollment.context == {"product_ids": [product.pk]}  # only what matches
    # Views older than the 48-hour window are past interest.
    Enrollment.objects.all().delete()
    assert triggers_scan(now=now + dt.timedelta(hours=50)) == {campaign.pk: 0}


# --- scheduled ---------------------------------------------------------------------------------------------


def test_a_one_off_scheduled_send_enrolls_every_reachable_customer_once(make_customer, now):
    with_email, with_phone = make_customer(), make_customer(email="", phone="+447700900123")
    with_push = Customer.objects.create()
    CustomerIdentifier.objects.create(customer=with_push, kind="push", value="token-1")
    Customer.objects.create()  # nothing to write to
    merged = make_customer()
    customer_merge(survivor=with_email, merged=merged, reason="admin")
    send_at = now - dt.timedelta(minutes=5)
    campaign = make_campaign("scheduled", delay=0, send_at=send_at)

    assert triggers_scan(now=now - dt.timedelta(minutes=6)) == {campaign.pk: 0}
    assert triggers_scan(now=now) == {campaign.pk: 3}
    assert {e.customer_id for e in enrollments()} == {with_email.pk, with_phone.pk, with_push.pk}
    assert {e.trigger_key for e in enrollments()} == {f"scheduled:{send_at.astimezone(UTC).isoformat()}"}
    assert {e.next_due_at for e in enrollments()} == {send_at}
    assert triggers_scan(now=now + dt.timedelta(days=3)) == {campaign.pk: 0}


def test_a_daily_schedule_enrolls_the_latest_missed_occurrence_only(make_customer):
    customer = make_customer()
    first = dt.datetime(2025, 1, 1, 9, tzinfo=LONDON)
    campaign = make_campaign("scheduled", delay=0, send_at=first, recurrence="daily", reentry_days=0,
                             created_at=first - dt.timedelta(days=1))

    assert triggers_scan(now=dt.datetime(2025, 1, 3, 10, tzinfo=LONDON)) == {campaign.pk: 1}
    assert enrollments()[0].triggered_at == dt.datetime(2025, 1, 3, 9, tzinfo=LONDON)
    assert triggers_scan(now=dt.datetime(2025, 1, 3, 23, tzinfo=LONDON)) == {campaign.pk: 0}
    # The next day's occurrence enters once the first is over (an active one blocks it).
    assert triggers_scan(now=dt.datetime(2025, 1, 4, 9, tzinfo=LONDON)) == {campaign.pk: 0}
    Enrollment.objects.update(status="completed")
    assert triggers_scan(now=dt.datetime(2025, 1, 4, 9, tzinfo=LONDON)) == {campaign.pk: 1}
    assert [e.customer_id for e in enrollments()] == [customer.pk, customer.pk]


def test_reentry_applies_to_scheduled_sends(make_customer):
    make_customer()
    first = dt.datetime(2025, 1, 1, 9, tzinfo=LONDON)
    campaign = make_campaign("scheduled", send_at=first, recurrence="daily", reentry_days=7)
    assert triggers_scan(now=first) == {campaign.pk: 1}
    Enrollment.objects.update(status="completed")
    assert triggers_scan(now=first + dt.timedelta(days=1)) == {campaign.pk: 0}
    assert triggers_scan(now=first + dt.timedelta(days=7)) == {campaign.pk: 1}


@pytest.mark.parametrize(
    "send_at, recurrence, now, expected",
    [
        ("2025-01-01 09:00", "", "2024-12-31 09:00", None),
        ("2025-01-01 09:00", "", "2025-06-01 09:00", "2025-01-01 09:00"),
        ("2025-01-01 09:00", "daily", "2025-01-01 08:59", None),
        ("2025-01-01 09:00", "daily", "2025-01-01 09:00", "2025-01-01 09:00"),
        ("2025-01-01 09:00", "daily", "2025-01-05 08:59", "2025-01-04 09:00"),
        ("2025-03-29 09:00", "daily", "2025-03-31 12:00", "2025-03-31 09:00"),  # across the clock change
        ("2025-01-01 09:00", "weekly", "2025-01-14 12:00", "2025-01-08 09:00"),
        ("2025-01-01 09:00", "weekly", "2025-01-15 09:00", "2025-01-15 09:00"),
        ("2025-01-31 09:00", "monthly", "2025-02-28 09:00", "2025-02-28 09:00"),  # clamped
        ("2025-01-31 09:00", "monthly", "2025-03-30 12:00", "2025-02-28 09:00"),
        ("2025-01-31 09:00", "monthly", "2025-03-31 12:00", "2025-03-31 09:00"),  # the day comes back
        ("2024-12-15 09:00", "monthly", "2025-01-15 08:00", "2024-12-15 09:00"),
    ],
)
def test_latest_occurrence(send_at, recurrence, now, expected):
    local = lambda text: dt.datetime.fromisoformat(text).replace(tzinfo=LONDON)  # noqa: E731
    found = latest_occurrence(local(send_at), recurrence, local(now), LONDON)
    assert found == (local(expected) if expected else None)
    if found is not None:
        assert found.astimezone(LONDON).hour == 9


# --- exits ---------------------------------------------------------------------------------------------------


def test_cart_exits(product, make_customer, now):
    orderer, emptier, keeper, not_due = (make_customer() for _ in range(4))
    touched = now - dt.timedelta(hours=2)
    baskets = {c.pk: make_basket(product, touched=touched, holder=c) for c in (orderer, emptier, keeper, not_due)}
    campaign = make_campaign("cart_abandoned")
    assert triggers_scan(now=now) == {campaign.pk: 4}
    later = Enrollment.objects.get(customer=not_due)
    later.next_due_at = now + dt.timedelta(hours=1)
    later.save()  # and its due step
    record(orderer, schema.ORDER_PLACED, now - dt.timedelta(minutes=5))
    record(not_due, schema.ORDER_PLACED, now - dt.timedelta(minutes=5))
    baskets[emptier.pk].flush()

    assert enrollments_exit_due(now=now) == {"ordered": 1, "basket_emptied": 1}
    status = {e.customer_id: (e.status, e.exit_reason, e.next_due_at) for e in enrollments()}
    assert status[orderer.pk] == ("exited", "ordered", None)
    assert status[emptier.pk] == ("exited", "basket_emptied", None)
    assert status[keeper.pk][:2] == ("active", "")
    assert status[not_due.pk][:2] == ("active", "")  # not due yet: looked at when it is
    assert_due_steps_follow_enrollments()  # the exited have none left
    assert enrollments_exit_due(now=now) == {}


def test_exits_by_customer_range_and_on_a_stopped_campaign(product, make_customer, now):
    first, second = make_customer(), make_customer()
    for customer in (first, second):
        make_basket(product, touched=now - dt.timedelta(hours=2), holder=customer)
    campaign = make_campaign("cart_abandoned")
    triggers_scan(now=now)
    Campaign.objects.filter(pk=campaign.pk).update(active=False)
    assert enrollments_exit_due(now=now, customer_range=(second.pk, second.pk + 1)) == {"campaign_ended": 1}
    assert Enrollment.objects.get(customer=first).status == "active"
    assert enrollments_exit_due(now=now) == {"campaign_ended": 1}


def test_exits_follow_a_merged_customer(product, make_customer, now):
    guest = make_customer()
    make_basket(product, touched=now - dt.timedelta(hours=2), holder=guest)
    campaign = make_campaign("cart_abandoned")
    triggers_scan(now=now)
    account = make_customer()
    customer_merge(survivor=account, merged=guest, reason="login")
    record(account, schema.ORDER_PLACED, now - dt.timedelta(minutes=1))
    assert enrollments_exit_due(now=now) == {"ordered": 1}
    assert Enrollment.objects.get(campaign=campaign).status == "exited"


# --- through Oscar's storefront -----------------------------------------------------------------------------


def test_storefront_a_logged_in_shopper_leaves_a_basket(shop, product):
    storefront.register(shop, "runner@example.com")
    storefront.add_to_basket(shop, product, quantity=2)
    customer = Customer.objects.get(user__email="runner@example.com")
    basket = apps.get_model("basket", "Basket").objects.get(owner=customer.user)
    campaign = make_campaign("cart_abandoned", delay=1, min_basket_value=Decimal("50"))

    assert triggers_scan(now=timezone.now()) == {campaign.pk: 0}  # within the hour
    later = timezone.now() + dt.timedelta(hours=1, minutes=1)
    assert triggers_scan(now=later) == {campaign.pk: 1}
    (enrollment,) = enrollments()
    assert (enrollment.customer_id, enrollment.context) == (customer.pk, {"basket_id": basket.pk})
    assert triggers_scan(now=later + dt.timedelta(minutes=5)) == {campaign.pk: 0}
    assert enrollments_exit_due(now=later) == {}


def test_storefront_a_guest_who_gave_an_email_leaves_a_basket(shop, product):
    from django.urls import reverse

    storefront.add_to_basket(shop, product)
    response = shop.post(reverse("checkout:index"), {"username": "Guest@Example.com", "options": "anonymous"})
    assert response.status_code == 302
    campaign = make_campaign("cart_abandoned", delay=1)
    assert triggers_scan(now=timezone.now() + dt.timedelta(hours=2)) == {campaign.pk: 1}
    assert enrollments()[0].customer.email == "guest@example.com"


def test_storefront_ordering_before_the_delay_cancels(shop, product):
    storefront.register(shop, "quick@example.com")
    storefront.add_to_basket(shop, product)
    campaign = make_campaign("cart_abandoned", delay=1)
    storefront.user_checkout(shop)
    assert triggers_scan(now=timezone.now() + dt.timedelta(hours=2)) == {campaign.pk: 0}
    assert not Enrollment.objects.exists()


def test_storefront_ordering_after_enrollment_exits_it(shop, product):
    storefront.register(shop, "late@example.com")
    storefront.add_to_basket(shop, product)
    campaign = make_campaign("cart_abandoned", delay=0, unit="minutes")
    assert triggers_scan(now=timezone.now()) == {campaign.pk: 1}
    storefront.user_checkout(shop)
    assert enrollments_exit_due(now=timezone.now()) == {"ordered": 1}


# --- the audience rules on the campaign ------------------------------------------------------------------------


def test_campaign_validation_names_the_bad_audience_rule():
    campaign = Campaign(name="x", trigger="birthday", audience=[
        {"field": "frequency", "op": ">=", "value": 1},
        {"field": "frequency", "op": "contains", "value": "x"},
    ])
    with pytest.raises(ValidationError) as raised:
        campaign.full_clean()
    message = raised.value.message_dict["audience"][0]
    assert "Rule 2 (frequency contains)" in message and "does not apply to a int field" in message


def test_every_trigger_with_nothing_to_find(now):
    campaigns = [
        make_campaign("cart_abandoned"),
        make_campaign("post_purchase", min_order_value=Decimal("1")),
        make_campaign("birthday"),
        make_campaign("win_back", days_without_order=30),
        make_campaign("browse_abandoned"),
        make_campaign("scheduled", send_at=now - dt.timedelta(hours=1)),
    ]
    assert triggers_scan(now=now) == {campaign.pk: 0 for campaign in campaigns}
    assert enrollments_exit_due(now=now) == {}
