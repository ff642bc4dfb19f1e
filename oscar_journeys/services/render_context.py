"""The data a message template is rendered against, loaded for a whole batch at once.

``ContextBuilder`` (``MessageRenderer`` in ``rendering.py`` builds on it) loads the
baskets, orders and products a batch needs in a few queries (``prefetch(messages)``),
caches product cards, and builds each message's context: primitives only, frozen
(``templating.freeze``), and only the parts its templates use (``LAZY_PARTS`` cost
queries). The context is documented in docs/templates.md:

    customer        {first_name, last_name, full_name, email}
    basket          {lines: [{name, quantity, price, total, image_url, url}], total,
                     currency, num_items, restore_url}            (cart triggers)
    order           {number, total, currency, date, lines: [...]} (post-purchase)
    products        [{name, url, image_url, price, currency}]      (viewed; browse)
    recommendations [{name, url, image_url, price, currency}]      (at most 4)
    campaign        {name}
    shop            {name, url, postal_address}
    unsubscribe_url, preferences_url

``preview_trigger`` gives a staff preview the customer's latest activity instead of an
enrollment's trigger.
"""

import json
import zoneinfo
from decimal import Decimal

from django.apps import apps
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone, translation

from .. import app_settings
from ..ml import schema
from ..models import CustomerIdentifier, Event
from ..templating import freeze
from . import recommendations as recs
from .tracking import preferences_url, public_url, restore_url, site_url, unsubscribe_url

LAZY_PARTS = ("basket", "order", "products", "recommendations")
PREVIEW_TOKEN = "preview"


def _money(value):
    return None if value is None else Decimal(value).quantize(Decimal("0.01"))


class ContextBuilder:
    """Loads and builds the template contexts of one batch of messages. ``prefetch`` first
    is optional and saves queries."""

    def __init__(self, *, now=None, base_url=None):
        self.now = now or timezone.now()
        self.base_url = (base_url or site_url()).rstrip("/")
        self._strategy = None
        self._products = {}  # id -> Product (or None: not found)
        self._cards = {}  # (language, id) -> card
        self._baskets = {}  # id -> {"lines": [(product_id, quantity, unit price, currency)], ...} or None
        self._orders = {}  # number -> dict with "lines" as for baskets, or None
        self._recommended = {}  # frozenset of product ids -> [ids]

    # --- loading (in batches) -------------------------------------------------------------

    def prefetch(self, messages):
        """Load what ``messages`` need (baskets, orders, products) in a few queries."""
        basket_ids, numbers, product_ids = set(), set(), set()
        for message in messages:
            context = (message.enrollment.context if message.enrollment_id else None) or {}
            if context.get("basket_id"):
                basket_ids.add(int(context["basket_id"]))
            if context.get("order_number"):
                numbers.add(str(context["order_number"]))
            product_ids.update(int(pk) for pk in context.get("product_ids") or () if pk)
        self._load_baskets(basket_ids)
        self._load_orders(numbers)
        for data in [*self._baskets.values(), *self._orders.values()]:
            if data:
                product_ids.update(line[0] for line in data["lines"] if line[0])
        self._load_products(product_ids)

    def _load_products(self, ids):
        missing = {pk for pk in ids if pk and pk not in self._products}
        if missing:
            found = recs.products_by_id(missing)
            for pk in missing:
                self._products[pk] = found.get(pk)

    def _load_baskets(self, ids):
        missing = [pk for pk in ids if pk not in self._baskets]
        if not missing:
            return
        Basket, Line = apps.get_model("basket", "Basket"), apps.get_model("basket", "Line")
        for basket in Basket._default_manager.filter(pk__in=missing).values("pk", "status", "owner_id"):
            self._baskets[basket["pk"]] = {"status": basket["status"], "owner_id": basket["owner_id"], "lines": []}
        lines = (
            Line._default_manager.filter(basket_id__in=missing)
            .order_by("basket_id", "date_created", "pk")
            .values_list("basket_id", "product_id", "quantity", "price_incl_tax", "price_excl_tax", "price_currency")
        )
        for basket_id, product_id, quantity, incl, excl, currency in lines:
            price = incl if incl is not None else excl
            self._baskets[basket_id]["lines"].append((product_id, quantity, _money(price), currency, None))
        for pk in missing:
            self._baskets.setdefault(pk, None)

    def _load_orders(self, numbers):
        missing = [number for number in numbers if number not in self._orders]
        if not missing:
            return
        Order, Line = apps.get_model("order", "Order"), apps.get_model("order", "Line")
        ids = {}
        for order in Order._default_manager.filter(number__in=missing).values(
            "pk", "number", "total_incl_tax", "currency", "date_placed"
        ):
            ids[order["pk"]] = order["number"]
            self._orders[order["number"]] = {
                "number": order["number"],
                "total": _money(order["total_incl_tax"]),
                "currency": order["currency"],
                "date": order["date_placed"],
                "lines": [],
            }
        lines = (
            Line._default_manager.filter(order_id__in=list(ids))
            .order_by("order_id", "pk")
            .values_list("order_id", "product_id", "quantity", "unit_price_incl_tax", "title")
        )
        for order_id, product_id, quantity, price, title in lines:
            self._orders[ids[order_id]]["lines"].append((product_id, quantity, _money(price), "", title))
        for number in missing:
            self._orders.setdefault(number, None)

    # --- context parts --------------------------------------------------------------------

    def _card(self, product_id):
        language = translation.get_language()
        key = (language, product_id)
        if key not in self._cards:
            self._load_products([product_id])
            product = self._products.get(product_id)
            if product is None:
                self._cards[key] = None
            else:
                if self._strategy is None:
                    self._strategy = recs.price_strategy()
                self._cards[key] = recs.product_card(product, base_url=self.base_url, strategy=self._strategy)
        return self._cards[key]

    def _lines(self, rows, currency):
        lines = []
        for product_id, quantity, price, line_currency, title in rows:
            card = self._card(product_id) if product_id else None
            lines.append(
                {
                    "name": title or (card["name"] if card else ""),
                    "quantity": quantity,
                    "price": price,
                    "total": None if price is None else price * quantity,
                    "currency": line_currency or currency,
                    "image_url": card["image_url"] if card else "",
                    "url": card["url"] if card else "",
                    "product_id": product_id,
                }
            )
        return lines

    def basket_context(self, basket_id, customer_id, *, restore=True):
        self._load_baskets([basket_id])
        data = self._baskets.get(basket_id)
        if not data:
            return {}
        self._load_products([row[0] for row in data["lines"] if row[0]])
        currency = next((row[3] for row in data["lines"] if row[3]), settings.OSCAR_DEFAULT_CURRENCY)
        lines = self._lines(data["lines"], currency)
        totals = [line["total"] for line in lines if line["total"] is not None]
        return {
            "lines": lines,
            "total": sum(totals, Decimal("0.00")),
            "currency": currency,
            "num_items": sum(line["quantity"] for line in lines),
            "restore_url": (
                restore_url(basket_id=basket_id, customer_id=customer_id, base_url=self.base_url)
                if restore
                else public_url("basket-restore", self.base_url, token=PREVIEW_TOKEN)
            ),
        }

    def order_context(self, number):
        self._load_orders([number])
        data = self._orders.get(number)
        if not data:
            return {}
        self._load_products([row[0] for row in data["lines"] if row[0]])
        return {**data, "lines": self._lines(data["lines"], data["currency"])}

    def products_context(self, product_ids):
        self._load_products(product_ids)
        return [card for card in (self._card(pk) for pk in product_ids) if card]

    def recommendations_context(self, seeds, limit=4):
        key = frozenset(seeds)
        if key not in self._recommended:
            self._recommended[key] = recs.recommendation_ids(product_ids=list(seeds), limit=limit)
        return self.products_context(self._recommended[key])

    def context(self, *, customer, campaign, kind, names, trigger, message_id, preview=False):
        """The template context (frozen primitives); only the parts in ``names`` that cost
        queries are built."""
        customer_id = customer.pk
        full_name = f"{customer.first_name} {customer.last_name}".strip()
        if preview:
            unsubscribe = public_url("unsubscribe", self.base_url, token=PREVIEW_TOKEN)
            preferences = public_url("preferences", self.base_url, token=PREVIEW_TOKEN)
        else:
            unsubscribe = unsubscribe_url(
                customer_id=customer_id, kind=kind, message_id=message_id, base_url=self.base_url
            )
            preferences = preferences_url(customer_id=customer_id, base_url=self.base_url)
        context = {
            "customer": {
                "first_name": customer.first_name,
                "last_name": customer.last_name,
                "full_name": full_name,
                "email": customer.email,
            },
            "campaign": {"name": campaign.name if campaign else ""},
            "shop": {
                "name": settings.OSCAR_SHOP_NAME,
                "url": self.base_url + "/",
                "postal_address": app_settings.SHOP_POSTAL_ADDRESS,
            },
            "unsubscribe_url": unsubscribe,
            "preferences_url": preferences,
        }
        wanted = set(names) & set(LAZY_PARTS)
        seeds = []
        basket_id, number = trigger.get("basket_id"), trigger.get("order_number")
        if basket_id and ("basket" in wanted or "recommendations" in wanted):
            context["basket"] = self.basket_context(int(basket_id), customer_id, restore=not preview)
            seeds += [line["product_id"] for line in context["basket"].get("lines", ()) if line["product_id"]]
        if number and ("order" in wanted or "recommendations" in wanted):
            context["order"] = self.order_context(str(number))
            seeds += [line["product_id"] for line in context["order"].get("lines", ()) if line["product_id"]]
        if "products" in wanted or ("recommendations" in wanted and trigger.get("product_ids")):
            context["products"] = self.products_context([int(pk) for pk in trigger.get("product_ids") or () if pk])
            seeds += [card["id"] for card in context["products"]]
        if "recommendations" in wanted:
            context["recommendations"] = self.recommendations_context(seeds)
        for part in wanted:  # a part the trigger has nothing for renders empty
            context.setdefault(part, [] if part in ("products", "recommendations") else {})
        return {key: freeze(value) for key, value in context.items()}


def plain(context):
    """The frozen context as JSON-ready dicts and lists (webhook payloads)."""
    def thaw(value):
        if isinstance(value, (dict, type(freeze({})))):
            return {key: thaw(item) for key, item in value.items()}
        if isinstance(value, tuple):
            return [thaw(item) for item in value]
        return value

    return json.loads(json.dumps(thaw(context), cls=DjangoJSONEncoder))


def customer_time_zone(customer):
    """Dates in templates in the customer's time zone, when it is a valid one."""
    try:
        zone = zoneinfo.ZoneInfo(customer.time_zone) if customer.time_zone else None
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        zone = None
    return timezone.override(zone or timezone.get_current_timezone())


def preview_trigger(customer):
    """What the customer's latest activity gives a preview: their newest open basket, last
    order and last viewed products."""
    trigger = {}
    Basket = apps.get_model("basket", "Basket")
    basket_ids = CustomerIdentifier.objects.filter(customer=customer, kind=CustomerIdentifier.BASKET).values_list(
        "value", flat=True
    )
    baskets = Basket._default_manager.filter(status=Basket.OPEN, lines__isnull=False)
    if customer.user_id:
        baskets = baskets.filter(owner_id=customer.user_id) | baskets.filter(
            pk__in=[int(v) for v in basket_ids if v.isdigit()]
        )
    else:
        baskets = baskets.filter(pk__in=[int(v) for v in basket_ids if v.isdigit()])
    basket_id = baskets.order_by("-date_created", "-pk").values_list("pk", flat=True).first()
    if basket_id:
        trigger["basket_id"] = basket_id
    events = Event.objects.filter(customer=customer)
    order = events.filter(type=schema.ORDER_PLACED).order_by("-occurred_at").values_list("payload", flat=True).first()
    if order and order.get("order_number"):
        trigger["order_number"] = order["order_number"]
    viewed = events.filter(type=schema.PRODUCT_VIEWED, product_id__isnull=False).order_by("-occurred_at")
    trigger["product_ids"] = list(dict.fromkeys(viewed.values_list("product_id", flat=True)[:20]))[:4]
    return trigger
