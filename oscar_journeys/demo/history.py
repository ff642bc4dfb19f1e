"""Apply a demo plan (``plan.py``) to the database.

Customers get an Oscar (Django) user account unless they are guests; their customer record
is made by the identity service. Orders are real Oscar orders: a basket filled with the
shop's strategy, the shop's shipping repository and ``OrderCreator``, backdated through
``date_placed``. Placing an order fires Oscar's ``order_placed``, from which the app's
receivers record ``order_placed`` and ``product_ordered``: this module never records order
events itself. Cancellations and returns go through ``Order.set_status`` and
``Line.set_status`` when the shop's status pipelines allow them (see docs/demo.md). The
other events (views, searches, log-ins, basket changes) are written in bulk with keys
``demo:<seed>:<customer>:<n>``, so that nothing is recorded twice.
"""

import collections
from contextlib import contextmanager
from unittest import mock

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F
from oscar.core.loading import get_class, get_model

from .. import app_settings
from ..models import Customer, CustomerIdentifier, Event
from ..services import customers as identity
from ..services.timeline import timeline_record_events

SOURCE = "demo"
RESTOCK = 200


def status_path(pipeline, start, target):
    """The shortest list of statuses leading from ``start`` to ``target`` in an Oscar status
    pipeline ({status: next statuses}), ``[]`` when already there, None when unreachable."""
    if start == target:
        return []
    seen, queue = {start}, collections.deque([(start, [])])
    while queue:
        status, path = queue.popleft()
        for following in pipeline.get(status, ()):
            if following == target:
                return path + [following]
            if following not in seen:
                seen.add(following)
                queue.append((following, path + [following]))
    return None


@contextmanager
def shop_clock(at):
    """Run Oscar's status changes as if at ``at``: ``OrderStatusChange.date_created`` and the
    time the app's receivers give to ``order_cancelled`` / ``order_line_returned`` both read
    ``django.utils.timezone.now()``, and Oscar's signals carry no time of their own."""
    with mock.patch("django.utils.timezone.now", return_value=at):
        yield


class HistoryWriter:
    """Writes planned customers; ``write(plans)`` handles one batch in one transaction."""

    def __init__(self, *, seed, products):
        self.seed = seed
        self.products = {p.upc: p for p in products}
        Product = get_model("catalogue", "Product")
        # Stock records prefetched: the strategy reads them without a query. Their stock
        # levels go stale, which nothing here relies on (fill_basket reads them afresh).
        self.oscar_products = (
            Product._default_manager.select_related("product_class")
            .prefetch_related("stockrecords")
            .in_bulk([p.product_id for p in products])
        )
        self.StockRecord = get_model("partner", "StockRecord")
        self.Basket = get_model("basket", "Basket")
        self.BasketLine = get_model("basket", "Line")
        self.ShippingAddress = get_model("order", "ShippingAddress")
        self.BillingAddress = get_model("order", "BillingAddress")
        self.Order = get_model("order", "Order")
        self.OrderLine = get_model("order", "Line")
        self.country = get_model("address", "Country")._default_manager.get(iso_3166_1_a2="GB")
        self.order_creator = get_class("order.utils", "OrderCreator")()
        self.shipping = get_class("shipping.repository", "Repository")()
        self.surcharges = get_class("checkout.applicator", "SurchargeApplicator")()
        self.totals = get_class("checkout.calculators", "OrderTotalCalculator")()
        self.selector = get_class("partner.strategy", "Selector")()
        self.cancelled = app_settings.CANCELLED_ORDER_STATUSES[0]
        self.returned = app_settings.RETURNED_LINE_STATUSES[0]
        initial = getattr(settings, "OSCAR_INITIAL_ORDER_STATUS", "") or ""
        initial_line = getattr(settings, "OSCAR_INITIAL_LINE_STATUS", "") or ""
        self.cancel_path = status_path(self.Order.pipeline, initial, self.cancelled)
        self.return_path = status_path(self.OrderLine.pipeline, initial_line, self.returned)
        self.stats = collections.Counter()

    def existing(self, plans):
        """Emails of planned customers that are already in the database (an earlier run)."""
        return set(
            CustomerIdentifier.objects.filter(
                kind=CustomerIdentifier.EMAIL, value__in=[p.email for p in plans]
            ).values_list("value", flat=True)
        )

    @transaction.atomic
    def write(self, plans):
        done = self.existing(plans)
        events = []
        for plan in plans:
            if plan.email in done:
                self.stats["skipped"] += 1
                continue
            user, customer = self.customer(plan)
            events.extend(self.events(plan, customer))
            for planned in plan.orders:
                self.place(plan, planned, user)
            if plan.open_basket:
                self.open_basket(plan, user)
        timeline_record_events(events)
        self.stats["events"] += len(events)

    def customer(self, plan):
        profile = {
            "first_name": plan.first_name,
            "last_name": plan.last_name,
            "date_of_birth": plan.date_of_birth,
        }
        user = None
        if plan.has_account:
            User = get_user_model()
            username = f"demo_{self.seed}_{plan.index}"
            # An account left behind when its customer record was deleted is taken over.
            user = User._default_manager.filter(username=username).first() or User(username=username)
            user.email, user.first_name, user.last_name = plan.email, plan.first_name, plan.last_name
            user.date_joined, user.last_login = plan.joined_at, plan.last_login
            user.set_unusable_password()
            user.save()
        phone = plan.phone
        if phone and CustomerIdentifier.objects.filter(kind=CustomerIdentifier.PHONE, value=phone).exists():
            phone = ""  # held by a customer of another seed: sharing it would merge the two
        customer = identity.customer_identify(source=SOURCE, user=user, email=plan.email, phone=phone, **profile)
        Customer.objects.filter(pk=customer.pk).update(created_at=plan.joined_at)
        self.stats["accounts" if user else "guests"] += 1
        self.stats["with_birthday"] += plan.date_of_birth is not None
        return user, customer

    def events(self, plan, customer):
        result = []
        for n, planned in enumerate(plan.events):
            product = self.products.get(planned.upc)
            result.append(
                Event(
                    customer_id=customer.pk,
                    recorded_for_id=customer.pk,
                    type=planned.type,
                    occurred_at=planned.at,
                    source=SOURCE,
                    idempotency_key=f"demo:{self.seed}:{plan.index}:{n}",
                    value=planned.value,
                    currency=settings.OSCAR_DEFAULT_CURRENCY if planned.value is not None else "",
                    category=product.category if product else "",
                    product_id=product.product_id if product else None,
                    payload=planned.payload,
                )
            )
        return result

    def fill_basket(self, basket, lines):
        """Add ``[(upc, quantity)]`` to a saved basket with the shop's strategy; first restock
        what is short, as the shop would (so the demo never runs out)."""
        products = [(self.oscar_products[self.products[upc].product_id], quantity) for upc, quantity in lines]
        wanted = collections.Counter()
        for product, quantity in products:
            record = basket.strategy.fetch_for_product(product).stockrecord
            if record is not None:
                wanted[record.pk] += quantity
        records = self.StockRecord._default_manager
        stock = records.filter(pk__in=wanted).values_list("pk", "num_in_stock", "num_allocated")
        short = [pk for pk, in_stock, allocated in stock if (in_stock or 0) - (allocated or 0) < wanted[pk]]
        if short:
            records.filter(pk__in=short).update(num_in_stock=F("num_in_stock") + RESTOCK)
        for product, quantity in products:
            basket.add_product(product, quantity)

    def backdate_basket(self, basket, created, submitted=None):
        self.Basket._default_manager.filter(pk=basket.pk).update(date_created=created, date_submitted=submitted)
        self.BasketLine._default_manager.filter(basket=basket).update(date_created=created)

    def address(self, model, plan):
        fields = {"first_name": plan.first_name, "last_name": plan.last_name, "country": self.country}
        if model is self.ShippingAddress and plan.phone:
            fields["phone_number"] = plan.phone
        return model._default_manager.create(**fields, **plan.address)

    def place(self, plan, planned, user):
        basket = self.Basket._default_manager.create(owner=user)
        basket.strategy = self.selector.strategy(user=user)
        self.fill_basket(basket, planned.lines)
        shipping_address = self.address(self.ShippingAddress, plan)
        method = self.shipping.get_default_shipping_method(basket=basket, shipping_addr=shipping_address)
        charge = method.calculate(basket)
        surcharges = self.surcharges.get_applicable_surcharges(basket=basket)
        total = self.totals.calculate(basket, charge, surcharges=surcharges)
        order = self.order_creator.place_order(
            basket=basket,
            total=total,
            shipping_method=method,
            shipping_charge=charge,
            user=user,
            shipping_address=shipping_address,
            billing_address=self.address(self.BillingAddress, plan),
            surcharges=surcharges,
            date_placed=planned.placed_at,
            guest_email="" if user else plan.email,
        )
        basket.set_as_submitted()
        self.backdate_basket(basket, planned.added_at, planned.placed_at)
        self.stats["orders"] += 1
        if planned.cancelled_at is not None:
            self.cancel(order, planned)
        elif planned.returned_at is not None:
            self.return_line(order, planned)
        return order

    def cancel(self, order, planned):
        if self.cancel_path is None:
            self.stats["cancellations_skipped"] += 1
            return
        with shop_clock(planned.cancelled_at):
            for status in self.cancel_path:
                order.set_status(status)
        self.stats["cancelled"] += 1

    def return_line(self, order, planned):
        if self.return_path is None:
            self.stats["returns_skipped"] += 1
            return
        line = list(order.lines.order_by("pk"))[planned.returned_line]
        steps = len(self.return_path)
        for step, status in enumerate(self.return_path, start=1):
            # Intermediate statuses (e.g. dispatched) fall between the order and the return.
            with shop_clock(planned.placed_at + (planned.returned_at - planned.placed_at) * step / steps):
                line.set_status(status)
        self.stats["returned"] += 1

    def open_basket(self, plan, user):
        basket = self.Basket._default_manager.create(owner=user)
        basket.strategy = self.selector.strategy(user=user)
        self.fill_basket(basket, [(upc, quantity) for upc, quantity, _at in plan.open_basket])
        self.backdate_basket(basket, plan.open_basket[0][2])
        self.stats["open_baskets"] += 1
