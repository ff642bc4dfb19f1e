"""The Django admin of oscar_journeys, the customer 360 page and the Oscar dashboard link."""

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from oscar_journeys.charts import line_chart, nice_ticks
from oscar_journeys.ml import schema
from oscar_journeys.models import Customer, CustomerMerge, Event, EventSource, Snapshot
from oscar_journeys.models.sources import hash_token
from oscar_journeys.services.customers import customer_for_user, customer_merge
from oscar_journeys.services.timeline import timeline_record_event

NOW = dt.datetime(2025, 3, 1, 12, tzinfo=dt.timezone.utc)


def url_360(customer):
    return reverse("admin:oscar_journeys_customer_360", args=[customer.pk])


def record(customer, type=schema.ORDER_PLACED, days_ago=0, **kwargs):
    kwargs.setdefault("occurred_at", NOW - dt.timedelta(days=days_ago))
    event, _ = timeline_record_event(customer=customer, type=type, **kwargs)
    return event


def texts(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def make_user(username, *, perms=(), **flags):
    flags.setdefault("email", f"{username}@staff.example.com")
    user = get_user_model().objects.create_user(username, password="pw", **flags)
    for perm in perms:
        app_label, _, codename = perm.rpartition(".")
        user.user_permissions.add(
            Permission.objects.get(codename=codename, content_type__app_label=app_label or "oscar_journeys")
        )
    return user


# --- charts (no database) -------------------------------------------------------------


def test_nice_ticks_cover_the_range_with_round_steps():
    assert nice_ticks(0, 87) == [0, 25, 50, 75, 100]
    assert nice_ticks(0, 3) == [0, 1, 2, 3]
    assert nice_ticks(5, 5) == [5, 5.25, 5.5, 5.75, 6]


def test_line_chart_breaks_the_line_at_missing_values():
    days = [dt.date(2025, 1, d) for d in range(1, 8)]
    chart = line_chart(days, [1, 2, None, 4, float("nan"), 6, 7], title="t")
    assert len(chart.segments) == 2 and len(chart.dots) == 1
    first = [tuple(map(float, p.split(","))) for p in chart.segments[0].split()]
    assert first[0][0] == chart.left and chart.latest == 7
    # Higher values are drawn higher (smaller y); the last day sits on the right edge.
    assert first[1][1] < first[0][1]
    assert float(chart.segments[1].split()[-1].split(",")[0]) == chart.right
    assert [t.value for t in chart.y_ticks][0] == 0 and chart.y_ticks[-1].value >= 7


def test_line_chart_of_nothing_is_empty():
    chart = line_chart([dt.date(2025, 1, 1)], [None])
    assert chart.is_empty and chart.count == 0 and chart.segments == [] and chart.y_ticks == []


# --- changelists -----------------------------------------------------------------------


@pytest.mark.django_db
def test_customer_changelist_lists_and_searches(admin_client, make_customer):
    alice = make_customer(email="alice@example.com", first_name="Alice", last_name="Liddell", phone="+447911123456")
    make_customer(email="bob@example.com", first_name="Bob")
    url = reverse("admin:oscar_journeys_customer_changelist")

    response = admin_client.get(url)
    assert response.status_code == 200
    assert "alice@example.com" in response.text and "bob@example.com" in response.text
    assert url_360(alice) in response.text

    for term in ("ALICE@example.com ", "+44 7911 123456", "liddell", str(alice.pk)):
        found = admin_client.get(url, {"q": term}).context["cl"].result_list
        assert [c.pk for c in found] == [alice.pk], term

    user = make_user("carol", email="carol@example.com")
    carol = customer_for_user(user)
    found = {c.pk for c in admin_client.get(url, {"has_account": "yes"}).context["cl"].result_list}
    assert carol.pk in found and alice.pk not in found  # (the admin logged in has a customer too)
    found = {c.pk for c in admin_client.get(url, {"has_account": "no"}).context["cl"].result_list}
    assert alice.pk in found and carol.pk not in found


@pytest.mark.django_db
def test_changelists_run_no_query_per_row(admin_client, make_customer):
    def queries(url):
        with CaptureQueriesContext(connection) as ctx:
            assert admin_client.get(url).status_code == 200
        return len(ctx.captured_queries)

    customers = [make_customer() for _ in range(3)]
    for customer in customers:
        record(customer)
        Snapshot.objects.create(customer=customer, as_of=NOW.date())
    customer_merge(survivor=customers[0], merged=customers[1], reason=CustomerMerge.ADMIN)
    urls = [
        reverse(f"admin:oscar_journeys_{name}_changelist")
        for name in ("customer", "event", "snapshot", "customermerge")
    ]
    before = [queries(url) for url in urls]
    more = [make_customer() for _ in range(12)]
    for customer in more:
        record(customer)
        Snapshot.objects.create(customer=customer, as_of=NOW.date())
    customer_merge(survivor=more[0], merged=more[1], reason=CustomerMerge.ADMIN)
    customer_merge(survivor=more[2], merged=more[3], reason=CustomerMerge.ADMIN)
    assert [queries(url) for url in urls] == before


@pytest.mark.django_db
def test_event_changelist_shows_labels_filters_and_searches_by_email(admin_client, make_customer):
    alice, bob = make_customer(email="alice@example.com"), make_customer(email="bob@example.com")
    record(alice, schema.ORDER_PLACED, value=Decimal("12.50"), currency="GBP")
    record(bob, schema.PRODUCT_VIEWED)
    url = reverse("admin:oscar_journeys_event_changelist")

    response = admin_client.get(url)
    assert "Placed an order" in response.text and "Viewed a product" in response.text
    found = admin_client.get(url, {"type": schema.PRODUCT_VIEWED}).context["cl"].result_list
    assert [e.customer_id for e in found] == [bob.pk]
    found = admin_client.get(url, {"q": "alice@example.com"}).context["cl"].result_list
    assert [e.type for e in found] == [schema.ORDER_PLACED]


@pytest.mark.django_db
def test_event_list_order_and_date_drill_down_read_no_distinct_dates(admin_client, make_customer):
    customer = make_customer()
    late = record(customer, schema.PRODUCT_VIEWED, occurred_at=dt.datetime(2025, 5, 20, 12, tzinfo=dt.timezone.utc))
    early = record(customer, schema.PRODUCT_VIEWED, occurred_at=dt.datetime(2023, 2, 3, 12, tzinfo=dt.timezone.utc))
    Event.objects.exclude(customer=customer).delete()  # the admin's own log-in, recorded today
    url = reverse("admin:oscar_journeys_event_changelist")

    with CaptureQueriesContext(connection) as ctx:
        response = admin_client.get(url)
    assert not [q for q in ctx.captured_queries if "trunc" in q["sql"].lower()]
    assert [e.pk for e in response.context["cl"].result_list] == [early.pk, late.pk]  # arrival order
    html = response.text
    for year in (2023, 2024, 2025):  # the calendar between the first and the last event
        assert f"?occurred_at__year={year}" in html
    assert "occurred_at__year=2022" not in html and "occurred_at__year=2026" not in html

    html = admin_client.get(url, {"occurred_at__year": "2025"}).text
    assert "occurred_at__month=5" in html and "occurred_at__month=6" not in html
    found = admin_client.get(url, {"occurred_at__year": "2025", "occurred_at__month": "5"}).context["cl"].result_list
    assert [e.pk for e in found] == [late.pk]
    found = admin_client.get(url, {"type": schema.PRODUCT_VIEWED}).context["cl"].result_list
    assert [e.pk for e in found] == [late.pk, early.pk]  # by type: by time, newest first


@pytest.mark.django_db
def test_event_source_filter_offers_the_stored_sources(admin_client, make_customer):
    customer = make_customer()
    record(customer, source="pos", idempotency_key="1")
    record(customer, source="app", idempotency_key="1")
    record(customer)
    source = EventSource(name="kiosk")
    source.set_new_token()
    source.save()
    url = reverse("admin:oscar_journeys_event_changelist")
    response = admin_client.get(url)
    source_filter = next(f for f in response.context["cl"].filter_specs if f.parameter_name == "source")
    assert [value for value, _ in source_filter.lookup_choices] == ["app", "kiosk", "oscar", "pos"]
    found = admin_client.get(url, {"source": "pos"}).context["cl"].result_list
    assert [e.source for e in found] == ["pos"]


@pytest.mark.django_db
def test_big_lists_estimate_the_unfiltered_count_on_postgresql(make_customer):
    from oscar_journeys.admin.common import EstimatedCountPaginator

    customer = make_customer()
    for key in range(5):
        record(customer, idempotency_key=str(key))
    record(make_customer(), idempotency_key="other")

    class Paginator(EstimatedCountPaginator):
        exact_below = 1  # the test table is small

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE oscar_journeys_event")
    with CaptureQueriesContext(connection) as ctx:
        total = Paginator(Event.objects.order_by("-id"), 2).count
    if connection.vendor == "postgresql":
        assert len(ctx.captured_queries) == 1 and "pg_class" in ctx.captured_queries[0]["sql"]
        assert total >= 1
    else:
        assert total == 6
    # A filtered list is always counted exactly.
    assert Paginator(Event.objects.filter(customer=customer), 2).count == 5


@pytest.mark.django_db
def test_event_admin_is_read_only(admin_client, make_customer):
    event = record(make_customer())
    assert admin_client.get(reverse("admin:oscar_journeys_event_add")).status_code == 403
    response = admin_client.get(reverse("admin:oscar_journeys_event_change", args=[event.pk]))
    assert response.status_code == 200 and 'name="_save"' not in response.text
    delete_url = reverse("admin:oscar_journeys_event_delete", args=[event.pk])
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    changelist = admin_client.get(reverse("admin:oscar_journeys_event_changelist"))
    assert "delete_selected" not in changelist.text
    assert Event.objects.filter(pk=event.pk).exists()
    assert admin_client.get(reverse("admin:oscar_journeys_snapshot_add")).status_code == 403


# --- the 360 page ---------------------------------------------------------------------


@pytest.mark.django_db
def test_360_page_shows_profile_identifiers_timeline_and_charts(admin_client, make_customer):
    user = make_user("alice", email="alice@example.com", first_name="Alice")
    alice = customer_for_user(user)
    record(alice, schema.ORDER_PLACED, days_ago=1, value=Decimal("42.00"), currency="GBP", category="Books")
    record(alice, schema.BASKET_ADDITION, days_ago=0)
    for day in range(10):
        Snapshot.objects.create(
            customer=alice,
            as_of=NOW.date() - dt.timedelta(days=9 - day),
            monetary=10.0 * day,
            frequency=day,
            recency_days=None if day < 3 else float(day),
            favourite_categories=["Books", "Games"],
        )

    response = admin_client.get(url_360(alice))
    assert response.status_code == 200
    html = response.text
    assert "alice@example.com" in html  # the email identifier
    assert "Placed an order" in html and "Added to basket" in html
    assert html.index("Added to basket") < html.index("Placed an order")  # newest first
    assert "42.00 GBP" in html and "Books" in html
    assert reverse("dashboard:user-detail", kwargs={"pk": user.pk}) in html
    # One polyline per charted feature, each with ten points except recency (7 known).
    polylines = re.findall(r'<polyline class="journeys-series" points="([^"]+)"', html)
    assert sorted(len(p.split()) for p in polylines)[-1] == 10
    assert 7 in [len(p.split()) for p in polylines]
    assert "Total spent" in html and "Days since last order" in html  # verbose names
    assert "Books, Games" in html  # the latest snapshot's feature table


@pytest.mark.django_db
def test_360_chart_coordinates_are_not_localized(admin_client, make_customer):
    customer = make_customer()
    for day in range(3):
        Snapshot.objects.create(customer=customer, as_of=dt.date(2025, 1, 1 + day), monetary=1234.5 * day)
    html = admin_client.get(url_360(customer), HTTP_ACCEPT_LANGUAGE="es").text
    coordinates = re.findall(r'<line class="journeys-grid" x1="([^"]+)" x2="([^"]+)" y1="([^"]+)"', html)
    assert coordinates
    for values in coordinates:
        for value in values:
            float(value)  # "37,5" would fail: SVG needs a dot whatever the language


@pytest.mark.django_db
def test_360_timeline_is_paginated(admin_client, make_customer):
    customer = make_customer()
    for minute in range(60):
        timeline_record_event(
            customer=customer, type=schema.PRODUCT_VIEWED, occurred_at=NOW + dt.timedelta(minutes=minute)
        )
    first = admin_client.get(url_360(customer))
    second = admin_client.get(url_360(customer), {"page": 2})
    assert first.text.count('class="journeys-event ') == 50
    assert second.text.count('class="journeys-event ') == 10
    assert "60 events" in first.text and "?page=2#timeline" in first.text
    assert first.context["event_rows"][0][0].occurred_at > second.context["event_rows"][0][0].occurred_at


@pytest.mark.django_db
def test_360_page_of_a_merged_customer_links_to_the_survivor(admin_client, make_customer):
    survivor, merged = make_customer(), make_customer(email="old@example.com")
    record(merged)
    customer_merge(survivor=survivor, merged=merged, reason=CustomerMerge.LOGIN)
    html = admin_client.get(url_360(merged)).text
    assert "was merged into" in html and url_360(survivor) in html
    html = admin_client.get(url_360(survivor)).text
    assert "old@example.com" in html  # the merged record's identifier resolves here
    assert "Revert this merge" in html and "Placed an order" in html


@pytest.mark.django_db
def test_360_page_needs_the_view_permission(client, make_customer):
    customer = make_customer()
    assert client.get(url_360(customer)).status_code == 302  # anonymous: to the admin log-in
    client.force_login(make_user("staff", is_staff=True))
    assert client.get(url_360(customer)).status_code == 403

    viewer = make_user("viewer", is_staff=True, perms=["view_customer"])
    client.force_login(viewer)
    other = make_customer()
    customer_merge(survivor=customer, merged=other, reason=CustomerMerge.ADMIN)
    response = client.get(url_360(customer))
    assert response.status_code == 200 and "Revert this merge" not in response.text
    merge = CustomerMerge.objects.get()
    revert_url = reverse("admin:oscar_journeys_customer_360_revert_merge", args=[customer.pk])
    assert client.post(revert_url, {"merge": merge.pk}).status_code == 403
    merge.refresh_from_db()
    assert merge.reverted_at is None


@pytest.mark.django_db
def test_360_revert_button_reverts_the_merge(admin_client, make_customer):
    survivor, merged = make_customer(), make_customer()
    event = record(merged)
    merge = customer_merge(survivor=survivor, merged=merged, reason=CustomerMerge.ADMIN)
    revert_url = reverse("admin:oscar_journeys_customer_360_revert_merge", args=[survivor.pk])
    assert admin_client.get(revert_url).status_code == 405
    response = admin_client.post(revert_url, {"merge": merge.pk})
    assert response.status_code == 302 and response["Location"] == url_360(survivor)
    assert texts(response) == ["Reverted 1 merge."]
    event.refresh_from_db()
    merged.refresh_from_db()
    assert event.customer_id == merged.pk and merged.merged_into_id is None
    # A merge this customer has no part in is not found.
    other = customer_merge(survivor=make_customer(), merged=make_customer(), reason=CustomerMerge.ADMIN)
    assert admin_client.post(revert_url, {"merge": other.pk}).status_code == 404


# --- actions ----------------------------------------------------------------------------


def run_action(client, model, action, ids):
    url = reverse(f"admin:oscar_journeys_{model}_changelist")
    return client.post(url, {"action": action, "_selected_action": [str(i) for i in ids]})


@pytest.mark.django_db
def test_merge_action_keeps_the_customer_with_an_account(admin_client, admin_user, make_customer):
    guest = make_customer(email="guest@example.com")
    guest_event = record(guest)
    member = customer_for_user(make_user("member", email="member@example.com"))
    Customer.objects.filter(pk=guest.pk).update(created_at=NOW - dt.timedelta(days=30))
    Customer.objects.filter(pk=member.pk).update(created_at=NOW)  # the account wins over age

    response = run_action(admin_client, "customer", "merge_customers", [guest.pk, member.pk])
    assert response.status_code == 302
    assert texts(response) == [f"Merged customer {guest.pk} into customer {member.pk} (1 events moved)."]
    guest.refresh_from_db()
    guest_event.refresh_from_db()
    assert guest.merged_into_id == member.pk and guest_event.customer_id == member.pk
    merge = CustomerMerge.objects.get()
    assert merge.reason == CustomerMerge.ADMIN and merge.actor == admin_user


@pytest.mark.django_db
def test_merge_action_without_accounts_keeps_the_older(admin_client, make_customer):
    newer, older = make_customer(), make_customer()  # the older one has the higher id
    Customer.objects.filter(pk=older.pk).update(created_at=NOW - dt.timedelta(days=30))
    Customer.objects.filter(pk=newer.pk).update(created_at=NOW)
    run_action(admin_client, "customer", "merge_customers", [newer.pk, older.pk])
    assert Customer.objects.get(pk=newer.pk).merged_into_id == older.pk


@pytest.mark.django_db
@pytest.mark.parametrize("count", [1, 3])
def test_merge_action_needs_exactly_two(admin_client, make_customer, count):
    customers = [make_customer() for _ in range(count)]
    response = run_action(admin_client, "customer", "merge_customers", [c.pk for c in customers])
    assert texts(response) == [f"Select exactly two customers to merge (you selected {count})."]
    assert not CustomerMerge.objects.exists()
    assert not Customer.objects.filter(merged_into__isnull=False).exists()


@pytest.mark.django_db
def test_merge_action_refuses_a_merged_customer(admin_client, make_customer):
    a, b, c = make_customer(), make_customer(), make_customer()
    customer_merge(survivor=a, merged=b, reason=CustomerMerge.ADMIN)
    response = run_action(admin_client, "customer", "merge_customers", [b.pk, c.pk])
    assert texts(response) == [
        f"Customer {b.pk} is already merged into customer {a.pk}; select customer {a.pk} instead."
    ]
    assert CustomerMerge.objects.count() == 1


@pytest.mark.django_db
def test_merge_action_needs_the_change_permission(client, make_customer):
    client.force_login(make_user("viewer", is_staff=True, perms=["view_customer"]))
    a, b = make_customer(), make_customer()
    response = client.get(reverse("admin:oscar_journeys_customer_changelist"))
    assert response.status_code == 200 and "merge_customers" not in response.text
    run_action(client, "customer", "merge_customers", [a.pk, b.pk])
    assert not CustomerMerge.objects.exists()


@pytest.mark.django_db
def test_revert_action_reverts_and_reports_each_failure(admin_client, admin_user, make_customer):
    a, b, c = make_customer(), make_customer(), make_customer()
    event = record(b)
    first = customer_merge(survivor=a, merged=b, reason=CustomerMerge.ADMIN)
    done = customer_merge(survivor=a, merged=c, reason=CustomerMerge.ADMIN)
    run_action(admin_client, "customermerge", "revert_selected", [done.pk])
    admin_client.get(reverse("admin:oscar_journeys_customermerge_changelist"))  # shows its message

    response = run_action(admin_client, "customermerge", "revert_selected", [first.pk, done.pk])
    assert texts(response) == [
        f"Could not revert the merge of customer {c.pk} into customer {a.pk}: This merge was already reverted.",
        "Reverted 1 merge.",
    ]
    first.refresh_from_db()
    event.refresh_from_db()
    assert first.reverted_by == admin_user and event.customer_id == b.pk


@pytest.mark.django_db
def test_merge_admin_is_read_only(admin_client, make_customer):
    merge = customer_merge(survivor=make_customer(), merged=make_customer(), reason=CustomerMerge.ADMIN)
    assert admin_client.get(reverse("admin:oscar_journeys_customermerge_add")).status_code == 403
    response = admin_client.get(reverse("admin:oscar_journeys_customermerge_change", args=[merge.pk]))
    assert response.status_code == 200 and 'name="_save"' not in response.text


# --- customer form ------------------------------------------------------------------------


@pytest.mark.django_db
def test_customer_form_normalizes_and_rejects_bad_contact_details(admin_client, make_customer):
    customer = make_customer(email="x@example.com")
    url = reverse("admin:oscar_journeys_customer_change", args=[customer.pk])
    page = admin_client.get(url)
    assert url_360(customer) in page.text
    data = {
        "first_name": "Xavier",
        "last_name": "",
        "email": "not-an-email",
        "phone": "+44 7911 123 457",
        "date_of_birth": "",
        "user": "",
        "identifiers-TOTAL_FORMS": "1",
        "identifiers-INITIAL_FORMS": "1",
        "identifiers-MIN_NUM_FORMS": "0",
        "identifiers-MAX_NUM_FORMS": "1000",
    }
    response = admin_client.post(url, data)
    assert response.status_code == 200
    assert "is not a valid email address" in response.text
    customer.refresh_from_db()
    assert customer.first_name == ""  # nothing saved

    response = admin_client.post(url, {**data, "email": " X@Example.com "})
    assert response.status_code == 302
    customer.refresh_from_db()
    assert (customer.first_name, customer.email, customer.phone) == ("Xavier", "x@example.com", "+447911123457")
    assert customer.identifiers.filter(kind="phone", value="+447911123457").exists()


# --- event sources --------------------------------------------------------------------------


@pytest.mark.django_db
def test_event_source_token_is_shown_once_and_only_its_hash_stored(admin_client):
    response = admin_client.post(reverse("admin:oscar_journeys_eventsource_add"), {"name": "pos"}, follow=True)
    source = EventSource.objects.get(name="pos")
    shown = [str(m) for m in response.context["messages"] if "API token" in str(m)]
    assert len(shown) == 1
    token = re.search(r" is (\S+) — copy it now", shown[0]).group(1)
    assert source.token_hash == hash_token(token) and token not in source.token_hash
    assert EventSource.for_token(token) == source

    change = admin_client.get(reverse("admin:oscar_journeys_eventsource_change", args=[source.pk]))
    assert token not in change.text and source.token_hash not in change.text
    assert token not in admin_client.get(reverse("admin:oscar_journeys_eventsource_changelist")).text

    response = run_action(admin_client, "eventsource", "rotate_token", [source.pk])
    new_token = re.search(r" is (\S+) — copy it now", texts(response)[0]).group(1)
    assert new_token != token
    assert EventSource.for_token(token) is None and EventSource.for_token(new_token) == source


# --- the Oscar dashboard ----------------------------------------------------------------------


@pytest.mark.django_db
def test_dashboard_user_page_links_to_the_360_page(client, make_customer):
    staff = make_user("boss", is_staff=True, is_superuser=True)
    client.force_login(staff)
    shopper = make_user("shopper", email="shopper@example.com")
    customer = customer_for_user(shopper)
    url = reverse("dashboard:user-detail", kwargs={"pk": shopper.pk})

    response = client.get(url)
    assert response.status_code == 200
    assert "Customer journey (360)" in response.text and url_360(customer) in response.text

    survivor = make_customer()
    customer_merge(survivor=survivor, merged=customer, reason=CustomerMerge.ADMIN)
    response = client.get(url)
    assert url_360(survivor) in response.text and url_360(customer) not in response.text

    no_customer = make_user("nobody", email="nobody@example.com")
    Customer.objects.filter(user=no_customer).delete()
    response = client.get(reverse("dashboard:user-detail", kwargs={"pk": no_customer.pk}))
    assert response.status_code == 200 and "Customer journey (360)" not in response.text


@pytest.mark.django_db
def test_dashboard_link_hidden_from_staff_who_may_not_see_customers(client):
    staff = make_user("clerk", is_staff=True, perms=["auth.view_user"])  # may use the dashboard page
    client.force_login(staff)
    shopper = make_user("shopper", email="shopper@example.com")
    customer_for_user(shopper)
    response = client.get(reverse("dashboard:user-detail", kwargs={"pk": shopper.pk}))
    assert response.status_code == 200 and "Customer journey (360)" not in response.text


def test_admin_refuses_the_reserved_source_name(admin_client):
    from django.urls import reverse

    from oscar_journeys.models import EventSource

    response = admin_client.post(reverse("admin:oscar_journeys_eventsource_add"), {"name": "oscar", "is_active": "on"})
    assert response.status_code == 200
    assert "shop&#x27;s own events" in response.content.decode() or "shop's own events" in response.content.decode()
    assert not EventSource.objects.exists()
