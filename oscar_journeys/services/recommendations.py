"""Products to show in a message: cards for products we know (basket lines, viewed
products) and recommendations for them.

Recommendations come, in this order, from the shop's own choices (Oscar's
``ProductRecommendation``), then products bought together with them (Oscar's order lines),
then the best sellers of their categories; without any product to start from, the shop's
best sellers. Only public products, never one the customer already has in hand.
"""

from decimal import Decimal

from django.apps import apps
from django.conf import settings
from django.db.models import Count

from .tracking import absolute_url, site_url

# How many recent orders of the seed products are read to find what was bought with them.
CO_BOUGHT_ORDERS = 500


def _models():
    return (
        apps.get_model("catalogue", "Product"),
        apps.get_model("catalogue", "ProductRecommendation"),
        apps.get_model("catalogue", "ProductCategory"),
        apps.get_model("order", "Line"),
    )


def price_strategy():
    """Oscar's pricing strategy for offline use (no request, no user)."""
    from oscar.core.loading import get_class

    return get_class("partner.strategy", "Selector")().strategy()


def _price(strategy, product):
    """(price incl. tax where known, currency) of a product, or (None, "")."""
    try:
        if product.is_parent:
            info = strategy.fetch_for_parent(product)
        else:
            info = strategy.fetch_for_product(product)
        price = info.price
    except Exception:  # a shop's strategy may not handle every product
        return None, ""
    if not getattr(price, "exists", False):
        return None, ""
    amount = price.incl_tax if price.is_tax_known else price.excl_tax
    return Decimal(amount), price.currency or ""


def image_url(product, base_url):
    """Absolute URL of the product's first image (a child without images shows its
    parent's), or of Oscar's "missing image"."""
    images = sorted(product.images.all(), key=lambda image: (image.display_order, image.pk))
    if not images and product.parent_id is not None:
        images = sorted(product.parent.images.all(), key=lambda image: (image.display_order, image.pk))
    if images:
        try:
            return absolute_url(base_url, images[0].original.url)
        except ValueError:  # no file attached
            pass
    return absolute_url(base_url, settings.MEDIA_URL + settings.OSCAR_MISSING_IMAGE_URL)


def product_url(product, base_url):
    target = product.parent if product.is_child and product.parent_id else product
    return absolute_url(base_url, target.get_absolute_url())


def products_by_id(product_ids):
    """{id: Product} with what a card needs loaded (parent, images, stock records)."""
    Product = _models()[0]
    ids = {int(pk) for pk in product_ids if pk}
    if not ids:
        return {}
    queryset = (
        Product._default_manager.filter(pk__in=ids)
        .select_related("parent", "product_class", "parent__product_class")
        .prefetch_related("images", "parent__images", "stockrecords")
    )
    return {product.pk: product for product in queryset}


def product_card(product, *, base_url, strategy=None):
    """A dict of primitives describing one product: id, name, url, image_url, price,
    currency."""
    price, currency = _price(strategy or price_strategy(), product)
    return {
        "id": product.pk,
        "name": product.get_title(),
        "url": product_url(product, base_url),
        "image_url": image_url(product, base_url),
        "price": price,
        "currency": currency,
    }


def product_cards(product_ids, *, base_url=None):
    """Cards of the given products, in the given order (unknown ids are left out)."""
    base_url = base_url or site_url()
    products = products_by_id(product_ids)
    strategy = price_strategy()
    seen, cards = set(), []
    for pk in product_ids:
        product = products.get(int(pk)) if pk else None
        if product is not None and product.pk not in seen:
            seen.add(product.pk)
            cards.append(product_card(product, base_url=base_url, strategy=strategy))
    return cards


# --- recommendations ------------------------------------------------------------------------


def _co_bought(seeds, limit):
    OrderLine = _models()[3]
    orders = (
        OrderLine._default_manager.filter(product_id__in=seeds)
        .order_by("-order_id")
        .values_list("order_id", flat=True)[:CO_BOUGHT_ORDERS]
    )
    rows = (
        OrderLine._default_manager.filter(order_id__in=list(orders))
        .exclude(product_id__in=seeds)
        .exclude(product_id=None)
        .values("product_id")
        .annotate(orders=Count("order_id", distinct=True))
        .order_by("-orders", "product_id")
    )[:limit]
    return [row["product_id"] for row in rows]


def _best_sellers(product_ids, limit):
    """Best sellers among ``product_ids`` (a queryset of ``pk`` values; None: the whole
    shop), then the newest."""
    Product, _rec, _cat, OrderLine = _models()
    lines = OrderLine._default_manager.exclude(product_id=None)
    if product_ids is not None:
        lines = lines.filter(product_id__in=product_ids)
    ranked = [
        row["product_id"]
        for row in lines.values("product_id").annotate(n=Count("id")).order_by("-n", "product_id")[:limit]
    ]
    if len(ranked) < limit:
        newest = Product._default_manager.filter(is_public=True)
        if product_ids is not None:
            newest = newest.filter(pk__in=product_ids)
        ranked += list(
            newest.exclude(pk__in=ranked).order_by("-date_created", "-pk").values_list("pk", flat=True)[
                : limit - len(ranked)
            ]
        )
    return ranked


def recommendation_ids(*, product_ids, exclude_ids=(), limit=4):
    """Ids of up to ``limit`` public products to recommend for ``product_ids``."""
    Product, ProductRecommendation, ProductCategory, _line = _models()
    seeds = list({int(pk) for pk in product_ids if pk})
    excluded = set(seeds) | {int(pk) for pk in exclude_ids if pk}
    pool = limit * 3 + len(excluded)
    candidates = []
    if seeds:
        parents = list(
            Product._default_manager.filter(pk__in=seeds, parent__isnull=False).values_list("parent_id", flat=True)
        )
        family = seeds + parents
        excluded.update(parents)
        candidates += list(
            ProductRecommendation._default_manager.filter(primary_id__in=family)
            .order_by("-ranking", "pk")
            .values_list("recommendation_id", flat=True)[:pool]
        )
        candidates += _co_bought(family, pool)
        categories = ProductCategory._default_manager.filter(product_id__in=family).values("category_id")
        in_categories = ProductCategory._default_manager.filter(category_id__in=categories).values("product_id")
        # Variants sold in those categories count for their parent's category too.
        same_category = Product._default_manager.filter(pk__in=in_categories) | Product._default_manager.filter(
            parent_id__in=in_categories
        )
        same_category = same_category.values("pk")
        candidates += _best_sellers(same_category, pool)
    else:
        candidates += _best_sellers(None, pool)
    # Variants are shown as their parent; keep public products only, first come first.
    rows = dict(
        Product._default_manager.filter(pk__in=set(candidates)).values_list("pk", "parent_id")
    )
    public = set(
        Product._default_manager.filter(pk__in=set(rows) | {p for p in rows.values() if p}, is_public=True)
        .values_list("pk", flat=True)
    )
    chosen = []
    for pk in candidates:
        shown = rows.get(pk) or pk
        if pk in rows and shown in public and shown not in excluded and shown not in chosen:
            chosen.append(shown)
            if len(chosen) == limit:
                break
    return chosen


def recommendations_for(*, product_ids, exclude_ids=(), limit=4, base_url=None):
    """Up to ``limit`` product cards ({id, name, url, image_url, price, currency}) to
    recommend with ``product_ids``, never one of them nor of ``exclude_ids``."""
    ids = recommendation_ids(product_ids=product_ids, exclude_ids=exclude_ids, limit=limit)
    return product_cards(ids, base_url=base_url)
