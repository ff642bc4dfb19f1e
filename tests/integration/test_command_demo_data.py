"""``manage.py journeys_demo_data``: catalogue, customers, real Oscar orders, history."""

import collections
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.utils import timezone
from oscar.core.loading import get_model

from oscar_journeys.demo.catalogue import catalogue_ensure, catalogue_spec
from oscar_journeys.demo.history import status_path
from oscar_journeys.demo.plan import plan_history
from oscar_journeys.management.commands.journeys_demo_data import parse_now
from oscar_journeys.ml import schema
from oscar_journeys.models import Customer, Event

NOW = "2025-06-30T18:00"
SEED = 16  # with 15 customers over 60 days this plan has guests, open baskets, a cancellation and a return
DAYS = 60

Order = get_model("order", "Order")
OrderLine = get_model("order", "Line")
Basket = get_model("basket", "Basket")
Product = get_model("catalogue", "Product")
Category = get_model("catalogue", "Category")
StockRecord = get_model("partner", "StockRecord")


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()  # product -> category names are cached by product id
    yield
    cache.clear()


def run(*args, seed=SEED, customers=15, days=DAYS, now=NOW):
    out = StringIO()
    call_command(
        "journeys_demo_data", "--customers", str(customers), "--days", str(days), "--seed", str(seed),
        "--now", now, *args, stdout=out,
    )
    return out.getvalue()


def expected_plan(seed=SEED, customers=15):
    products, created = catalogue_ensure()
    assert created == 0
    return list(
        plan_history(
            seed=seed, customers=customers, days=DAYS, now=parse_now(NOW), products=products,
            tz=timezone.get_current_timezone(),
        )
    )


def summary():
    """What two runs with the same seed and clock must share (no ids, no order numbers)."""
    orders = sorted(
        (o.date_placed, o.total_incl_tax, o.shipping_incl_tax, o.status, o.guest_email,
         o.user.email if o.user else "", tuple(o.lines.order_by("pk").values_list("upc", "quantity", "status")))
        for o in Order.objects.select_related("user")
    )
    events = collections.Counter(
        Event.objects.values_list("type", "occurred_at", "category", "value", "customer__email")
    )
    baskets = sorted(
        (b.owner.email, b.date_created, tuple(b.lines.order_by("product__upc").values_list("product__upc", "quantity")))
        for b in Basket.objects.filter(status=Basket.OPEN).select_related("owner")
    )
    customers = sorted(Customer.objects.values_list("email", "phone", "first_name", "date_of_birth", "created_at"))
    return orders, events, baskets, customers


def wipe_history():
    """Remove what a run adds besides the catalogue, as if in a fresh database."""
    Order.objects.all().delete()
    Basket.objects.all().delete()
    Customer.objects.all().delete()  # with their events and identifiers
    get_user_model().objects.all().delete()


# --- options ------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "args, message",
    [
        (["--customers", "0"], "--customers"),
        (["--days", "0"], "--days"),
        (["--days", "-3"], "--days"),
        (["--seed", "-1"], "--seed"),
        (["--now", "last tuesday"], "--now"),
    ],
)
def test_bad_options_are_refused_before_anything_is_written(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("journeys_demo_data", *args, stdout=StringIO())
    assert not Product.objects.exists()
    assert not Customer.objects.exists()


def test_help_describes_the_options():
    from oscar_journeys.management.commands.journeys_demo_data import Command

    text = Command().create_parser("manage.py", "journeys_demo_data").format_help()
    assert all(option in text for option in ("--customers", "--days", "--seed", "--now", "--quiet"))


def test_parse_now_reads_dates_and_date_times_in_the_current_time_zone():
    moment = parse_now("2025-06-30")
    assert timezone.is_aware(moment) and timezone.localtime(moment).hour == 0
    assert parse_now("2025-06-30T18:00+02:00").utcoffset() == timedelta(hours=2)


def test_status_path_follows_the_pipeline():
    pipeline = {"Pending": ("Being processed", "Cancelled"), "Being processed": ("Shipped",), "Shipped": ("Returned",)}
    assert status_path(pipeline, "Pending", "Cancelled") == ["Cancelled"]
    assert status_path(pipeline, "Pending", "Returned") == ["Being processed", "Shipped", "Returned"]
    assert status_path(pipeline, "Shipped", "Cancelled") is None
    assert status_path({}, "", "Cancelled") is None


# --- the plan -------------------------------------------------------------------------------


def test_plan_is_the_same_for_the_same_seed_and_clock_and_differs_for_another_seed():
    products = catalogue_spec()
    kwargs = dict(customers=30, days=90, now=parse_now(NOW), products=products, tz=timezone.get_current_timezone())
    first = list(plan_history(seed=5, **kwargs))
    assert first == list(plan_history(seed=5, **kwargs))
    assert first != list(plan_history(seed=6, **kwargs))


def test_plan_stays_inside_the_window_and_has_every_archetype():
    now = parse_now(NOW)
    plans = list(
        plan_history(seed=1, customers=200, days=120, now=now, products=catalogue_spec(),
                     tz=timezone.get_current_timezone())
    )
    start = now - timedelta(days=120)
    moments = [e.at for p in plans for e in p.events] + [o.placed_at for p in plans for o in p.orders]
    assert start < min(moments) and max(moments) <= now
    assert {p.archetype for p in plans} == {"repeat", "one_off", "churner", "browser"}
    assert all(not p.orders for p in plans if p.archetype == "browser")
    repeat = [p for p in plans if p.archetype == "repeat" and p.joined_at < start + timedelta(days=10)]
    assert sum(len(p.orders) >= 2 for p in repeat) > len(repeat) / 2
    # Churners stop buying well before the end of the window.
    churners = [p for p in plans if p.archetype == "churner" and p.orders]
    assert sum(p.orders[-1].placed_at < now - timedelta(days=25) for p in churners) > len(churners) / 2
    # Seasonality: weekends get more visits and orders per day than weekdays.
    views = collections.Counter(timezone.localtime(e.at).weekday() >= 5 for p in plans for e in p.events
                                if e.type == schema.PRODUCT_VIEWED)
    assert views[True] / 2 > views[False] / 5
    orders = collections.Counter(timezone.localtime(o.placed_at).weekday() >= 5 for p in plans for o in p.orders)
    assert orders[True] / 2 > 1.2 * orders[False] / 5
    phones = [p.phone for p in plans if p.phone]
    assert phones and len(phones) == len(set(phones))


# --- a run ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_small_run_fills_the_shop_with_backdated_history():
    output = run()
    now = parse_now(NOW)
    start = now - timedelta(days=DAYS)
    plans = expected_plan()

    # Catalogue: partner, categories and products with prices and stock.
    assert Product.objects.filter(upc__startswith="JD-").count() == len(catalogue_spec()) >= 60
    assert not StockRecord.objects.filter(product__upc__startswith="JD-", price__isnull=True).exists()
    assert Category.objects.filter(name="Running shoes", depth=2).exists()

    # Customers: accounts and guests, created through the identity service, birthdays.
    assert Customer.objects.count() == 15
    assert get_user_model().objects.count() == sum(p.has_account for p in plans)
    assert Customer.objects.filter(user__isnull=False).count() == sum(p.has_account for p in plans)
    assert Customer.objects.filter(date_of_birth__isnull=False).count() == sum(bool(p.date_of_birth) for p in plans)
    assert Customer.objects.filter(date_of_birth__isnull=False).exists()

    # Real Oscar orders, backdated inside the window, some by guests.
    orders = Order.objects.all()
    assert orders.count() == sum(len(p.orders) for p in plans) > 0
    assert all(start < o.date_placed <= now for o in orders)
    assert orders.filter(date_placed__lt=now - timedelta(days=14)).exists()
    guest_orders = orders.filter(user__isnull=True)
    assert guest_orders.exists() and all(o.guest_email for o in guest_orders)
    assert all(o.shipping_address_id and o.billing_address_id for o in orders)
    assert all(o.lines.exists() and o.total_incl_tax > 0 for o in orders)
    assert Basket.objects.filter(status=Basket.SUBMITTED).count() == orders.count()

    # Cancellations and returns went through Oscar's pipelines.
    cancelled = [o for p in plans for o in p.orders if o.cancelled_at]
    returned = [o for p in plans for o in p.orders if o.returned_at]
    assert cancelled and returned
    assert orders.filter(status="Cancelled").count() == len(cancelled)
    assert OrderLine.objects.filter(status="Returned").count() == len(returned)
    changed = Order.objects.filter(status="Cancelled").values_list("status_changes__date_created", flat=True)
    assert sorted(changed) == sorted(o.cancelled_at for o in cancelled)  # backdated by shop_clock

    # Open baskets with lines, left by account holders.
    open_baskets = Basket.objects.filter(status=Basket.OPEN)
    assert open_baskets.count() == sum(bool(p.open_basket) for p in plans) > 0
    assert all(b.owner_id and b.lines.exists() and b.date_created < now for b in open_baskets)

    # Events of several types, backdated, with products and categories where they apply.
    demo = Event.objects.filter(source="demo")
    types = set(demo.values_list("type", flat=True))
    assert {schema.PRODUCT_VIEWED, schema.USER_SEARCH, schema.USER_LOGGED_IN, schema.BASKET_ADDITION,
            schema.USER_REGISTERED, schema.CHECKOUT_STARTED} <= types
    assert demo.count() == sum(len(p.events) for p in plans)
    assert all(start < at <= now for at in demo.values_list("occurred_at", flat=True))
    additions = demo.filter(type=schema.BASKET_ADDITION)
    assert not additions.filter(value__isnull=True).exists() and not additions.filter(product__isnull=True).exists()
    assert not demo.filter(type=schema.PRODUCT_VIEWED, category="").exists()
    assert not demo.filter(type__in=[schema.ORDER_PLACED, schema.PRODUCT_ORDERED]).exists()  # the receivers' job

    # The receivers recorded the orders from Oscar's order_placed, at date_placed.
    placed = Event.objects.filter(type=schema.ORDER_PLACED)
    assert placed.count() == orders.count()
    assert sorted(placed.values_list("occurred_at", flat=True)) == sorted(orders.values_list("date_placed", flat=True))
    assert Event.objects.filter(type=schema.PRODUCT_ORDERED).count() == OrderLine.objects.count()
    cancel_events = Event.objects.filter(type=schema.ORDER_CANCELLED)
    assert sorted(cancel_events.values_list("occurred_at", flat=True)) == sorted(o.cancelled_at for o in cancelled)
    assert Event.objects.filter(type=schema.ORDER_LINE_RETURNED).count() == len(returned)

    assert "15/15 customers (100%)" in output
    assert f"{orders.count()} orders" in output


@pytest.mark.django_db
def test_second_run_reuses_the_catalogue_and_the_same_seed_adds_nothing():
    run(customers=5)
    counts = (Product.objects.count(), Category.objects.count(), StockRecord.objects.count(),
              get_model("partner", "Partner").objects.count(), get_model("catalogue", "ProductClass").objects.count())
    history = (Customer.objects.count(), Order.objects.count(), Event.objects.count(), Basket.objects.count())

    output = run(customers=5)
    assert "73 products (0 new)" in output
    assert f"5 customers of seed {SEED} were already here" in output
    assert (Customer.objects.count(), Order.objects.count(), Event.objects.count(), Basket.objects.count()) == history

    run(customers=5, seed=SEED + 1)
    assert (Product.objects.count(), Category.objects.count(), StockRecord.objects.count(),
            get_model("partner", "Partner").objects.count(),
            get_model("catalogue", "ProductClass").objects.count()) == counts
    assert Customer.objects.count() == 10


@pytest.mark.django_db
def test_accounts_left_without_their_customer_record_are_taken_over():
    run(customers=6)
    users = get_user_model().objects.count()
    assert users > 0
    Order.objects.all().delete()
    Basket.objects.all().delete()
    Customer.objects.all().delete()
    run(customers=6)
    assert get_user_model().objects.count() == users
    assert Customer.objects.filter(user__isnull=False).count() == users


@pytest.mark.django_db
def test_same_seed_and_clock_give_the_same_shop_twice():
    run()
    first = summary()
    wipe_history()
    assert not Order.objects.exists() and not Event.objects.exists()
    run()
    second = summary()
    assert first[0] == second[0]  # orders: dates, totals, statuses, lines
    assert first[1] == second[1]  # events: type, time, category, value, customer
    assert first[2] == second[2]  # open baskets
    assert first[3] == second[3]  # customers
    wipe_history()
    run(seed=SEED + 1)
    assert summary()[0] != first[0]


@pytest.mark.django_db
def test_quiet_prints_only_the_summary():
    output = run("--quiet", customers=3)
    assert "customers (" not in output
    assert "Created" in output


@pytest.mark.django_db
def test_without_a_pipeline_to_cancelled_orders_are_kept_and_the_owner_is_told(monkeypatch):
    monkeypatch.setattr(Order, "pipeline", {})
    monkeypatch.setattr(OrderLine, "pipeline", {})
    output = run()
    assert "OSCAR_ORDER_STATUS_PIPELINE" in output and "OSCAR_LINE_STATUS_PIPELINE" in output
    assert Order.objects.exists()
    assert not Order.objects.filter(status="Cancelled").exists()
    assert not OrderLine.objects.filter(status="Returned").exists()
    assert "0 cancelled" in output
