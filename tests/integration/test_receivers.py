"""End to end through Oscar's real storefront: what a shopper does lands on one timeline."""

import logging
from decimal import Decimal
from unittest import mock

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.test import override_settings
from django.urls import reverse

from oscar_journeys import app_settings
from oscar_journeys.ml import schema
from oscar_journeys.models import Customer, CustomerIdentifier, CustomerMerge, Event
from tests import storefront

pytestmark = pytest.mark.django_db


def types_of(customer):
    return sorted(Event.objects.filter(customer=customer).values_list("type", flat=True))


def only_customer_with_events():
    ids = set(Event.objects.values_list("customer_id", flat=True))
    assert len(ids) == 1, ids
    return Customer.objects.get(pk=ids.pop())


def make_user(email="ana@example.com", password="sup3r-s3cret-pass"):
    return get_user_model().objects.create_user(username=email, email=email, password=password)


def test_anonymous_visitor_events_join_the_account_on_registration(shop, product):
    storefront.view_product(shop, product)
    storefront.add_to_basket(shop, product, quantity=2)
    visitor = only_customer_with_events()
    assert visitor.user_id is None
    added = Event.objects.get(type=schema.BASKET_ADDITION)
    assert added.value == Decimal("90.00")  # 2 x 45.00
    assert added.category == "Running shoes"
    assert added.product_id == product.pk
    assert CustomerIdentifier.objects.filter(
        customer=visitor, kind="basket", value=str(added.payload["basket_id"])
    ).exists()

    storefront.register(shop, "Ana@Example.com")

    user = get_user_model().objects.get(email__iexact="ana@example.com")
    customer = Customer.objects.get(user=user)
    assert customer.email == "ana@example.com"
    assert types_of(customer) == sorted(
        [schema.PRODUCT_VIEWED, schema.BASKET_ADDITION, schema.USER_REGISTERED, schema.USER_LOGGED_IN]
    )
    visitor.refresh_from_db()
    assert visitor.merged_into_id == customer.pk
    merge = CustomerMerge.objects.get()
    assert (merge.survivor_id, merge.merged_id, merge.reason) == (customer.pk, visitor.pk, "registration")
    assert merge.events_moved == 2

    # Later events of the session go straight to the account's customer.
    storefront.view_product(shop, product)
    assert Event.objects.filter(type=schema.PRODUCT_VIEWED, customer=customer).count() == 2
    assert Event.objects.filter(customer=visitor).count() == 0


def test_log_in_joins_visitor_and_oscar_basket_merge_is_not_a_removal(shop, client, product):
    user = make_user()
    Basket = apps.get_model("basket", "Basket")
    existing = Basket.objects.create(owner=user)
    existing.strategy = __import__("oscar.apps.partner.strategy", fromlist=["Default"]).Default()
    existing.add_product(product, 1)

    storefront.add_to_basket(shop, product)  # anonymous: same product as in the account's basket
    storefront.log_in(shop, "ana@example.com")
    shop.get(reverse("basket:summary"))  # Oscar merges the cookie basket here, deleting a duplicate line

    customer = Customer.objects.get(user=user)
    assert types_of(customer) == sorted([schema.BASKET_ADDITION, schema.USER_LOGGED_IN])
    assert not Event.objects.filter(type=schema.BASKET_LINE_REMOVAL).exists()
    assert CustomerMerge.objects.get().reason == "login"
    # One log-in event although both Django's and Oscar's signals fired.
    assert Event.objects.filter(type=schema.USER_LOGGED_IN).count() == 1


def test_guest_checkout_records_the_order_and_its_lines_on_the_guest(shop, product):
    storefront.view_product(shop, product)
    storefront.add_to_basket(shop, product, quantity=3)
    storefront.guest_checkout(shop, "  Guest@Example.COM ")

    order = apps.get_model("order", "Order").objects.get()
    customer = only_customer_with_events()
    assert customer.email == "guest@example.com"
    assert types_of(customer) == sorted(
        [
            schema.PRODUCT_VIEWED,
            schema.BASKET_ADDITION,
            schema.CHECKOUT_STARTED,
            schema.ORDER_PLACED,
            schema.PRODUCT_ORDERED,
        ]
    )
    placed = Event.objects.get(type=schema.ORDER_PLACED)
    assert placed.value == order.total_incl_tax
    assert placed.occurred_at == order.date_placed
    assert placed.idempotency_key == f"order:{order.number}"
    assert placed.payload["items"] == 3 and placed.payload["guest"] is True
    assert placed.payload["categories"] == ["Running shoes"]
    line = Event.objects.get(type=schema.PRODUCT_ORDERED)
    assert (line.product_id, line.category, line.payload["quantity"]) == (product.pk, "Running shoes", 3)
    assert line.value == Decimal("135.00")


def test_an_account_registered_with_a_guests_email_claims_the_guest_orders(shop, client, product):
    storefront.add_to_basket(shop, product)
    storefront.guest_checkout(shop, "BUYER@example.com")
    guest = only_customer_with_events()

    client.cookies.clear()
    storefront.register(shop, "buyer@example.com")

    user = get_user_model().objects.get(email="buyer@example.com")
    customer = Customer.objects.get(user=user)
    assert customer.pk == guest.pk  # the account took over the guest's record
    assert {schema.ORDER_PLACED, schema.USER_REGISTERED} <= set(types_of(customer))
    assert Customer.objects.canonical().filter(events__isnull=False).distinct().count() == 1


def test_registered_checkout_then_cancel_and_return(shop, product):
    make_user()
    storefront.log_in(shop, "ana@example.com")
    storefront.add_to_basket(shop, product)
    storefront.user_checkout(shop)
    order = apps.get_model("order", "Order").objects.get()
    customer = Customer.objects.get(user=order.user)

    line = order.lines.get()
    line.set_status("Being processed")
    line.set_status("Shipped")
    line.set_status("Returned")
    order.set_status("Cancelled")

    returned = Event.objects.get(type=schema.ORDER_LINE_RETURNED)
    assert returned.customer_id == customer.pk and returned.value == line.line_price_incl_tax
    cancelled = Event.objects.get(type=schema.ORDER_CANCELLED)
    assert cancelled.customer_id == customer.pk
    assert cancelled.payload == {"order_number": order.number, "old_status": "Pending", "new_status": "Cancelled"}
    assert Event.objects.filter(type=schema.ORDER_LINE_STATUS_CHANGED).count() == 2


def test_removing_a_line_from_the_basket_is_recorded(shop, product):
    storefront.add_to_basket(shop, product, quantity=2)
    response = shop.get(reverse("basket:summary"))
    formset = response.context["formset"]
    data = {
        "form-TOTAL_FORMS": "1",
        "form-INITIAL_FORMS": "1",
        "form-MIN_NUM_FORMS": "0",
        "form-MAX_NUM_FORMS": "1000",
        "form-0-id": formset.forms[0].instance.pk,
        "form-0-quantity": "0",
    }
    shop.post(reverse("basket:summary"), data)
    removal = Event.objects.get(type=schema.BASKET_LINE_REMOVAL)
    assert removal.value == Decimal("90.00")
    assert removal.customer_id == Event.objects.get(type=schema.BASKET_ADDITION).customer_id


def test_search_and_review_are_recorded(shop, product):
    make_user()
    storefront.log_in(shop, "ana@example.com")
    shop.get(reverse("search:search"), {"q": "trail"})
    response = shop.post(
        reverse("catalogue:reviews-add", kwargs={"product_slug": product.slug, "product_pk": product.pk}),
        {"title": "Great", "score": 5, "body": "Comfortable."},
    )
    assert response.status_code == 302
    customer = Customer.objects.get(user__email="ana@example.com")
    search = Event.objects.get(type=schema.USER_SEARCH)
    assert search.customer_id == customer.pk and search.payload == {"query": "trail"}
    review = Event.objects.get(type=schema.REVIEW_ADDED)
    assert review.payload["score"] == 5 and review.category == "Running shoes"


def test_a_failing_receiver_never_breaks_checkout(shop, product, caplog):
    storefront.add_to_basket(shop, product)
    with mock.patch("oscar_journeys.receivers.timeline_record_events", side_effect=RuntimeError("boom")):
        with caplog.at_level(logging.ERROR, logger="oscar_journeys.receivers"):
            storefront.guest_checkout(shop, "guest@example.com")
    assert apps.get_model("order", "Order").objects.count() == 1
    assert "receive_order_placed" in caplog.text and "boom" in caplog.text
    assert not Event.objects.filter(type=schema.ORDER_PLACED).exists()


def test_order_placed_twice_is_recorded_once(shop, product):
    from oscar.apps.order.signals import order_placed

    storefront.add_to_basket(shop, product)
    storefront.guest_checkout(shop, "guest@example.com")
    order = apps.get_model("order", "Order").objects.get()
    order_placed.send(sender=None, order=order, user=None)
    assert Event.objects.filter(type=schema.ORDER_PLACED).count() == 1
    assert Event.objects.filter(type=schema.PRODUCT_ORDERED).count() == 1


@override_settings(OSCAR_JOURNEYS_ENABLED=False)
def test_disabled_app_records_nothing(shop, product):
    storefront.view_product(shop, product)
    storefront.add_to_basket(shop, product)
    assert not Event.objects.exists() and not Customer.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_session_naming_a_deleted_customer_records_on_a_fresh_one(client, product):
    storefront.view_product(client, product)
    gone = only_customer_with_events()
    Customer.objects.filter(pk=gone.pk).delete()  # e.g. erased by staff

    storefront.view_product(client, product)
    storefront.view_product(client, product)

    fresh = only_customer_with_events()
    assert fresh.pk != gone.pk
    assert Event.objects.filter(type=schema.PRODUCT_VIEWED).count() == 2


def test_deleting_a_customer_forgets_its_cached_ids(make_customer):
    from oscar_journeys.services.customers import cached_customer_id

    customer = make_customer(email="gone@example.com")
    assert cached_customer_id("email", "gone@example.com") == customer.pk
    customer.delete()
    assert cached_customer_id("email", "gone@example.com") is None


def test_a_bad_row_of_ours_never_fails_the_shops_own_transaction(client, product, caplog):
    """With ATOMIC_REQUESTS (or any atomic block of the shop's), an event naming a customer
    that no longer exists is rolled back to our savepoint; the shop's work commits."""
    from django.db import transaction
    from django.test import RequestFactory

    from oscar_journeys import receivers

    request = RequestFactory().get("/")
    request.session = client.session
    request.session[app_settings.SESSION_KEY] = 999999  # a deleted customer
    request.session[app_settings.SESSION_KEY + "_user"] = None
    request.user = __import__("django.contrib.auth.models", fromlist=["AnonymousUser"]).AnonymousUser()
    with transaction.atomic():
        receivers.receive_product_viewed(None, product=product, user=request.user, request=request)
        kept = Customer.objects.create(first_name="kept")
    assert Customer.objects.filter(pk=kept.pk).exists()
    viewed = Event.objects.get(type=schema.PRODUCT_VIEWED)  # recorded on a fresh visitor
    assert viewed.customer_id not in (999999,)
