"""Oscar's (and Django's) signals -> the customer timeline.

Each receiver is thin: guards, find the customer, record one event (or an order and its
lines), queue identity work on commit, return. A failure inside the app is logged and
rolled back to a savepoint; it never reaches the shopper or breaks checkout.
"""

import functools
import logging
from decimal import Decimal

from django.apps import apps
from django.contrib.auth import signals as auth_signals
from django.db import IntegrityError, transaction
from django.db.models.signals import pre_delete

from . import app_settings, visitors
from .ml import schema
from .models import Customer, CustomerIdentifier, CustomerMerge, Event
from .services import customers as identity
from .services.products import product_categories, product_category
from .services.timeline import timeline_record_event, timeline_record_events

logger = logging.getLogger(__name__)
OUR_TABLES = [Event._meta.db_table, CustomerIdentifier._meta.db_table]


def guarded(receiver):
    """Skip when disabled or on fixture loading; never let an error escape."""

    def run(sender, kwargs):
        connection = transaction.get_connection()
        if connection.in_atomic_block:
            # Inside the caller's transaction: a savepoint keeps a failure of ours from
            # aborting it (PostgreSQL would refuse every later query), and the deferred
            # foreign keys are checked now, not when the shop's transaction commits.
            with transaction.atomic():
                receiver(sender, **kwargs)
                # PostgreSQL: two SET CONSTRAINTS statements. SQLite (the embedded demo
                # default): a scan of our two tables.
                connection.check_constraints(table_names=OUR_TABLES)
        else:
            receiver(sender, **kwargs)

    @functools.wraps(receiver)
    def wrapper(sender, **kwargs):
        if not app_settings.ENABLED or kwargs.get("raw"):
            return
        try:
            try:
                run(sender, kwargs)
            except IntegrityError:
                # The session may name a customer that has since been deleted: resolve the
                # visitor afresh and try once more.
                if not visitors.forget_session_customer(_request_of(sender, kwargs)):
                    raise
                run(sender, kwargs)
        except Exception:
            logger.exception("oscar_journeys could not record %s", receiver.__name__)

    return wrapper


def _request_of(sender, kwargs):
    return kwargs.get("request") or getattr(sender, "request", None)


def _money(value):
    return None if value is None else Decimal(value).quantize(Decimal("0.01"))


# Receivers


def receive_customer_deleted(sender, instance, **kwargs):
    identity.forget_cached_ids(instance)


@guarded
def receive_user_registered(sender, request, user, **kwargs):
    customer = visitors.identify_visitor(request, user, CustomerMerge.REGISTRATION)
    timeline_record_event(
        customer=customer, type=schema.USER_REGISTERED, idempotency_key=f"user_registered:{user.pk}"
    )


@guarded
def receive_user_logged_in(sender, request, user, **kwargs):
    # Django's signal fires for every log-in; Oscar's own fires after it from Oscar's login
    # view only. Record one event per log-in.
    if request is None or getattr(request, "_journeys_login_recorded", False):
        return
    request._journeys_login_recorded = True
    customer = visitors.identify_visitor(request, user, CustomerMerge.LOGIN)
    timeline_record_event(customer=customer, type=schema.USER_LOGGED_IN)


@guarded
def receive_basket_addition(sender, product, user, request, **kwargs):
    customer = visitors.customer_for_request(request, user)
    basket = getattr(request, "basket", None)
    line = None
    if basket is not None and basket.pk:
        # Oscar's add view has just listed the lines for its messages: no query here.
        line = next((line for line in basket.all_lines() if line.product_id == product.pk), None)
    try:
        quantity = int(request.POST.get("quantity", 1))
    except (TypeError, ValueError):
        quantity = 1
    price = (line.price_incl_tax or line.price_excl_tax) if line else None
    timeline_record_event(
        customer=customer,
        type=schema.BASKET_ADDITION,
        value=_money(price * quantity) if price is not None else None,
        currency=line.price_currency if line else "",
        product=product,
        category=product_category(product.pk),
        payload={"basket_id": basket.pk if basket else None, "quantity": quantity},
    )
    visitors.remember_basket(request, customer, basket)


@guarded
def receive_basket_line_deleted(sender, instance, **kwargs):
    """Oscar sends no signal when a line leaves the basket; a deleted line is one, unless it
    is a duplicate dropped while Oscar merges two baskets on log-in."""
    Line = sender
    basket = instance.basket.__class__._default_manager.filter(pk=instance.basket_id).first()
    if basket is None or basket.status != basket.OPEN:
        return
    if Line._default_manager.filter(line_reference=instance.line_reference, basket__status=basket.OPEN).exclude(
        basket_id=basket.pk
    ).exists():
        return
    # Oscar's basket formset sets quantity to 0 on the instance before deleting it.
    quantity = Line._default_manager.filter(pk=instance.pk).values_list("quantity", flat=True).first()
    if not quantity:
        return
    if basket.owner_id:
        customer = identity.customer_for_user(basket.owner)
    else:
        customer = identity.customer_by_identifier(CustomerIdentifier.BASKET, str(basket.pk))
    if customer is None:
        return
    price = instance.price_incl_tax or instance.price_excl_tax
    timeline_record_event(
        customer=customer,
        type=schema.BASKET_LINE_REMOVAL,
        value=_money(price * quantity) if price is not None else None,
        currency=instance.price_currency or "",
        product_id=instance.product_id,
        category=product_category(instance.product_id),
        payload={"basket_id": basket.pk, "quantity": quantity},
    )


def _voucher_event(event_type, sender, basket, voucher, kwargs):
    request = _request_of(sender, kwargs)
    timeline_record_event(
        customer=visitors.customer_for_request(request),
        type=event_type,
        payload={"basket_id": basket.pk, "voucher_code": voucher.code},
    )


@guarded
def receive_voucher_addition(sender, basket, voucher, **kwargs):
    _voucher_event(schema.VOUCHER_ADDITION, sender, basket, voucher, kwargs)


@guarded
def receive_voucher_removal(sender, basket, voucher, **kwargs):
    _voucher_event(schema.VOUCHER_REMOVAL, sender, basket, voucher, kwargs)


@guarded
def receive_product_viewed(sender, product, user, request, **kwargs):
    timeline_record_event(
        customer=visitors.customer_for_request(request, user),
        type=schema.PRODUCT_VIEWED,
        product=product,
        category=product_category(product.pk),
    )


@guarded
def receive_user_search(sender, session, user, query, **kwargs):
    request = _request_of(sender, kwargs)
    if request is None or not query:
        return
    timeline_record_event(
        customer=visitors.customer_for_request(request, user), type=schema.USER_SEARCH, payload={"query": query[:200]}
    )


@guarded
def receive_start_checkout(sender, request, email=None, **kwargs):
    customer = visitors.customer_for_request(request)
    basket = getattr(request, "basket", None)
    value = currency = None
    if basket is not None and basket.pk and getattr(basket, "has_strategy", False):
        value, currency = basket.total_incl_tax, basket.currency
    timeline_record_event(
        customer=customer,
        type=schema.CHECKOUT_STARTED,
        value=_money(value),
        currency=currency or "",
        payload={"basket_id": basket.pk if basket else None, "guest": bool(email)},
    )
    if email:
        # A guest gave their email: the visitor is whoever holds it (or gets it now). Done
        # here rather than in a task, so that no address travels through the broker.
        person = identity.customer_link(customer_id=customer.pk, email=email, reason=CustomerMerge.GUEST_CHECKOUT)
        visitors.remember_customer(request, person, None)


@guarded
def receive_order_placed(sender, order, user=None, **kwargs):
    customer = visitors.customer_for_order(order)
    if customer is None:
        return
    lines = list(
        order.lines.values(
            "pk", "product_id", "quantity", "line_price_incl_tax", "line_price_excl_tax", "partner_sku", "title"
        )
    )
    categories = product_categories(line["product_id"] for line in lines)

    def event(type, key, value, **fields):
        return Event(
            customer_id=customer.canonical_id,
            recorded_for_id=customer.pk,
            type=type,
            occurred_at=order.date_placed,
            idempotency_key=key,
            value=_money(value),
            currency=order.currency,
            **fields,
        )

    placed = event(
        schema.ORDER_PLACED,
        f"order:{order.number}",
        order.total_incl_tax,
        payload={
            "order_number": order.number,
            "basket_id": order.basket_id,
            "items": sum(line["quantity"] for line in lines),
            "lines": len(lines),
            "shipping": str(order.shipping_incl_tax),
            "categories": sorted({c for c in categories.values() if c}),
            "guest": order.user_id is None,
        },
    )
    ordered = [
        event(
            schema.PRODUCT_ORDERED,
            f"order:{order.number}:line:{line['pk']}",
            line["line_price_incl_tax"] or line["line_price_excl_tax"],
            product_id=line["product_id"],
            category=categories.get(line["product_id"], ""),
            payload={
                "order_number": order.number,
                "quantity": line["quantity"],
                "sku": line["partner_sku"],
                "title": line["title"],
            },
        )
        for line in lines
    ]
    try:
        # One INSERT for the order and its lines: all or nothing, and once per order
        # (the keys are unique).
        timeline_record_events([placed, *ordered])
    except IntegrityError:
        logger.info("order %s is already on the timeline", order.number)


def _record_status_change(order, old_status, new_status, *, type, key, value, **fields):
    customer = visitors.customer_for_order(order)
    if customer is None:
        return
    timeline_record_event(
        customer=customer,
        type=type,
        idempotency_key=key,
        value=_money(value),
        currency=order.currency,
        payload={"order_number": order.number, "old_status": old_status, "new_status": new_status},
        **fields,
    )


@guarded
def receive_order_status_changed(sender, order, old_status, new_status, **kwargs):
    cancelled = new_status in app_settings.CANCELLED_ORDER_STATUSES
    _record_status_change(
        order,
        old_status,
        new_status,
        type=schema.ORDER_CANCELLED if cancelled else schema.ORDER_STATUS_CHANGED,
        key=f"order:{order.number}:cancelled" if cancelled else None,
        value=order.total_incl_tax if cancelled else None,
    )


@guarded
def receive_order_line_status_changed(sender, line, old_status, new_status, **kwargs):
    order = line.order
    returned = new_status in app_settings.RETURNED_LINE_STATUSES
    _record_status_change(
        order,
        old_status,
        new_status,
        type=schema.ORDER_LINE_RETURNED if returned else schema.ORDER_LINE_STATUS_CHANGED,
        key=f"order:{order.number}:line:{line.pk}:returned" if returned else None,
        value=line.line_price_incl_tax if returned else None,
        product_id=line.product_id,
        category=product_category(line.product_id),
    )


@guarded
def receive_review_added(sender, review, user, request, **kwargs):
    timeline_record_event(
        customer=visitors.customer_for_request(request, user),
        type=schema.REVIEW_ADDED,
        idempotency_key=f"review:{review.pk}",
        product_id=review.product_id,
        category=product_category(review.product_id),
        payload={"score": review.score, "title": review.title[:200]},
    )


def connect_receivers():
    from oscar.apps.basket import signals as basket_signals
    from oscar.apps.catalogue import signals as catalogue_signals
    from oscar.apps.catalogue.reviews import signals as review_signals
    from oscar.apps.checkout import signals as checkout_signals
    from oscar.apps.customer import signals as customer_signals
    from oscar.apps.order import signals as order_signals
    from oscar.apps.search import signals as search_signals

    connections = [
        (customer_signals.user_registered, receive_user_registered),
        (customer_signals.user_logged_in, receive_user_logged_in),
        (auth_signals.user_logged_in, receive_user_logged_in),
        (basket_signals.basket_addition, receive_basket_addition),
        (basket_signals.voucher_addition, receive_voucher_addition),
        (basket_signals.voucher_removal, receive_voucher_removal),
        (catalogue_signals.product_viewed, receive_product_viewed),
        (search_signals.user_search, receive_user_search),
        (checkout_signals.start_checkout, receive_start_checkout),
        (order_signals.order_placed, receive_order_placed),
        (order_signals.order_status_changed, receive_order_status_changed),
        (order_signals.order_line_status_changed, receive_order_line_status_changed),
        (review_signals.review_added, receive_review_added),
    ]
    for signal, receiver in connections:
        uid = f"oscar_journeys.{receiver.__name__}.{id(signal)}"
        signal.connect(receiver, dispatch_uid=uid)
    pre_delete.connect(receive_customer_deleted, sender=Customer, dispatch_uid="oscar_journeys.receive_customer_deleted")
    pre_delete.connect(
        receive_basket_line_deleted,
        sender=apps.get_model("basket", "Line"),
        dispatch_uid="oscar_journeys.receive_basket_line_deleted",
    )
