"""What the app's receivers add to Oscar's storefront requests.

Runs the demo shop's real basket-add request and order-placement request (the checkout
preview's "place order" POST) through Django's test client, alternately with the app's
receivers connected and disconnected, in one process against one database, and prints the
median time of each and the ratio. Target: at most 1.10.

    python benchmarks/bench_receivers.py [--rounds 200] [--database sqlite|postgres]

SQLite uses a temporary file; PostgreSQL a throw-away database `journeys_bench_receivers`
on 127.0.0.1 (user postgres).
"""

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from _common import PG_URL, pg_admin

DATABASE = "journeys_bench_receivers"


def setup(database):
    if database == "postgres":
        pg_admin(f"DROP DATABASE IF EXISTS {DATABASE}", f"CREATE DATABASE {DATABASE}")
        os.environ["DATABASE_URL"] = PG_URL.format(name=DATABASE)
    else:
        path = Path(tempfile.mkdtemp()) / "bench.sqlite3"
        os.environ["DATABASE_URL"] = f"sqlite:///{path}"
    os.environ.pop("CELERY_BROKER_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_shop.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    settings.ALLOWED_HOSTS = ["testserver"]
    settings.DEBUG = False  # as in production: no query log
    settings.LOGGING_CONFIG = None
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    call_command("migrate", verbosity=0)


def make_catalogue(n=20):
    from django.apps import apps
    from oscar.apps.catalogue.categories import create_from_breadcrumbs
    from oscar.test.factories import create_product

    Country = apps.get_model("address", "Country")
    Country.objects.get_or_create(
        iso_3166_1_a2="GB",
        defaults=dict(iso_3166_1_a3="GBR", iso_3166_1_numeric="826", name="UK", is_shipping_country=True),
    )
    category = create_from_breadcrumbs("Running > Shoes")
    products = []
    for i in range(n):
        product = create_product(title=f"Shoe {i}", price="45.00", num_in_stock=10**6, upc=f"BENCH-{i}")
        apps.get_model("catalogue", "ProductCategory").objects.create(product=product, category=category)
        products.append(product)
    return products


class Receivers:
    """Connect or disconnect every receiver of the app."""

    def __init__(self):
        from django.db.models import signals as model_signals

        from oscar_journeys import receivers

        self.receivers = receivers
        self.model_signals = model_signals

    def all_connections(self):
        found = []
        for signal in self._signals():
            for lookup_key, ref, *_ in list(signal.receivers):
                target = ref() if callable(ref) else ref
                if getattr(target, "__module__", "") == "oscar_journeys.receivers":
                    found.append((signal, target, lookup_key))
        return found

    def _signals(self):
        from django.contrib.auth import signals as auth
        from oscar.apps.basket import signals as b
        from oscar.apps.catalogue import signals as c
        from oscar.apps.catalogue.reviews import signals as r
        from oscar.apps.checkout import signals as ch
        from oscar.apps.customer import signals as cu
        from oscar.apps.order import signals as o
        from oscar.apps.search import signals as s

        return [
            auth.user_logged_in, b.basket_addition, b.voucher_addition, b.voucher_removal,
            c.product_viewed, r.review_added, ch.start_checkout, cu.user_registered,
            cu.user_logged_in, o.order_placed, o.order_status_changed, o.order_line_status_changed,
            s.user_search, self.model_signals.pre_delete,
        ]

    def disconnect(self):
        for signal in self._signals():
            with signal.lock:
                signal.receivers = [
                    r for r in signal.receivers
                    if getattr(r[1]() if callable(r[1]) else r[1], "__module__", "") != "oscar_journeys.receivers"
                ]
                signal.sender_receivers_cache.clear()

    def connect(self):
        self.receivers.connect_receivers()


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def basket_add_round(products, i):
    from django.test import Client
    from django.urls import reverse

    client = Client()
    # A visitor who has already browsed: one warm-up add creates the session and basket.
    client.post(reverse("basket:add", kwargs={"pk": products[0].pk}), {"quantity": 1})
    product = products[1 + i % (len(products) - 1)]
    url = reverse("basket:add", kwargs={"pk": product.pk})
    return timed(lambda: _expect(client.post(url, {"quantity": 1}), 302))


def order_round(products, i):
    from django.test import Client
    from django.urls import reverse

    from tests.storefront import ADDRESS

    client = Client()
    client.post(reverse("basket:add", kwargs={"pk": products[i % len(products)].pk}), {"quantity": 2})
    _expect(client.post(reverse("checkout:index"), {"username": f"g{i}@example.com", "options": "anonymous"}), 302)
    _expect(client.post(reverse("checkout:shipping-address"), ADDRESS), 302)
    client.get(reverse("checkout:shipping-method"), follow=True)
    return timed(lambda: _expect(client.post(reverse("checkout:preview"), {"action": "place_order"}), 302))


def _expect(response, status):
    if response.status_code != status:
        raise SystemExit(f"unexpected status {response.status_code}: {response.content[:500]!r}")
    return response


def measure(name, round_fn, products, rounds, receivers):
    with_app, without_app = [], []
    for i in range(rounds):
        # Alternate so that drift (caches, database growth) hits both sides alike.
        order = [(True, with_app), (False, without_app)] if i % 2 == 0 else [(False, without_app), (True, with_app)]
        for connected, bucket in order:
            receivers.connect() if connected else receivers.disconnect()
            bucket.append(round_fn(products, i))
    receivers.connect()
    a, b = statistics.median(with_app), statistics.median(without_app)
    return name, b * 1000, a * 1000, a / b


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args(argv)
    setup(args.database)
    from oscar_journeys.models import Event

    products = make_catalogue()
    receivers = Receivers()
    rows = [
        measure("basket add", basket_add_round, products, args.rounds, receivers),
        measure("order placement", order_round, products, max(args.rounds // 2, 10), receivers),
    ]
    print(f"database: {args.database}; rounds: {args.rounds}; events recorded: {Event.objects.count()}")
    print(f"{'request':<18}{'without app (ms)':>18}{'with app (ms)':>16}{'ratio':>8}")
    for name, without_ms, with_ms, ratio in rows:
        print(f"{name:<18}{without_ms:>18.2f}{with_ms:>16.2f}{ratio:>8.3f}")
    worst = max(r[3] for r in rows)
    print(f"worst ratio {worst:.3f} (target <= 1.10): {'OK' if worst <= 1.10 else 'TOO SLOW'}")


if __name__ == "__main__":
    main()
