"""What the timeline needs to know about Oscar products, cached so that receivers on the
storefront's hot paths do not query the catalogue every time."""

from django.apps import apps
from django.core.cache import cache

CACHE_PREFIX = "oscar_journeys:category:"
CACHE_SECONDS = 3600


def product_categories(product_ids):
    """{product_id: category name} of each product's first category (a child product
    takes its parent's); products without a category map to "". Cached for an hour."""
    product_ids = {int(pk) for pk in product_ids if pk is not None}
    if not product_ids:
        return {}
    found = cache.get_many([f"{CACHE_PREFIX}{pk}" for pk in product_ids])
    result = {int(key[len(CACHE_PREFIX):]): name for key, name in found.items()}
    missing = product_ids - result.keys()
    if missing:
        Product = apps.get_model("catalogue", "Product")
        rows = (
            Product._default_manager.filter(pk__in=missing)
            .values_list("pk", "categories__name", "parent__categories__name")
            .order_by("pk", "categories__path", "parent__categories__path")
        )
        fresh = {}
        for pk, own, parents in rows:
            if not fresh.get(pk):
                fresh[pk] = own or parents or ""
        for pk in missing:
            fresh.setdefault(pk, "")
        cache.set_many({f"{CACHE_PREFIX}{pk}": name for pk, name in fresh.items()}, CACHE_SECONDS)
        result.update(fresh)
    return result


def product_category(product_id):
    return product_categories([product_id]).get(product_id, "") if product_id else ""
