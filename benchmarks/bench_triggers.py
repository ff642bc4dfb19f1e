"""How long the cart-abandonment scan takes over many open baskets.

Generates N open baskets straight into a fresh throw-away database (bulk inserts, not
through Oscar): half of them belong to shop accounts (a user and its customer), half to
guests who gave their email (a customer holding the basket's ``basket`` identifier), each
with one to three lines last touched between 3 days and 61 minutes before ``NOW``. Then, in
a fresh process, it times ``triggers_scan`` for one cart-abandonment campaign (1 hour delay,
minimum basket value 10), a second scan (which must create nothing) and
``enrollments_exit_due`` over the enrollments just created (all due; none exits).

    python benchmarks/bench_triggers.py [--baskets 100000] [--database sqlite|postgres|both]

SQLite uses a temporary file; PostgreSQL a throw-away database `journeys_bench_triggers`
on 127.0.0.1 (user postgres), dropped at the end. The end-to-end figure (scan, decisions and
queued messages) is measured by the decision round's benchmark.
"""

import argparse
import datetime as dt
import os
import time

from _common import answer_child, django_setup, insert_frame, migrate, run_child, scratch_database, timestamps

NOW = dt.datetime(2025, 6, 30, 12, 0, tzinfo=dt.timezone.utc)
DATABASE = "journeys_bench_triggers"


def generate(database_url, baskets, seed=11):
    import numpy as np
    import pandas as pd

    django_setup(database_url)
    from django.apps import apps
    from django.db import connection, transaction
    from oscar.test.factories import create_product

    from oscar_journeys.models import Campaign, CampaignStep, Customer, CustomerIdentifier

    vendor = connection.vendor
    rng = np.random.default_rng(seed)
    User = apps.get_model("auth", "User")
    Basket, Line = apps.get_model("basket", "Basket"), apps.get_model("basket", "Line")
    with connection.cursor() as cursor:
        if vendor == "sqlite":
            cursor.execute("PRAGMA synchronous = OFF")
    product = create_product(title="Bench shoe", price="20.00", num_in_stock=10**6, upc="BENCH-1")
    record = product.stockrecords.get()

    ids = np.arange(1, baskets + 1)
    owned = ids <= baskets // 2  # baskets 1..N/2 belong to users 1..N/2
    ts = lambda ns: timestamps(ns, vendor)  # noqa: E731
    created = ts(np.full(baskets, np.datetime64(NOW.replace(tzinfo=None) - dt.timedelta(days=10), "ns")))
    users = ids[owned]
    owner = pd.Series(ids, dtype=object).where(owned, None)
    lines_per_basket = rng.integers(1, 4, baskets)
    basket_of_line = np.repeat(ids, lines_per_basket)
    n_lines = len(basket_of_line)
    # Each basket's lines were last touched at one moment between 3 days and 61 minutes ago.
    span = int((dt.timedelta(days=3) - dt.timedelta(minutes=61)).total_seconds() * 1e9)
    start = np.datetime64(NOW.replace(tzinfo=None) - dt.timedelta(days=3), "ns")
    touched = start + rng.integers(0, span, baskets).astype("timedelta64[ns]")
    price = rng.integers(5, 200, n_lines).astype(float)
    with transaction.atomic():
        insert_frame(User, pd.DataFrame({
            "id": users, "password": "!", "is_superuser": False,
            "username": [f"user{i}@example.com" for i in users], "first_name": "", "last_name": "",
            "email": [f"user{i}@example.com" for i in users], "is_staff": False, "is_active": True,
            "date_joined": created[: len(users)],
        }), connection)
        # Customers 1..N: the first half are the users', the rest guests with an email.
        insert_frame(Customer, pd.DataFrame({
            "id": ids, "user_id": owner,
            "email": [f"{'user' if o else 'guest'}{i}@example.com" for i, o in zip(ids, owned)],
            "phone": "", "first_name": "", "last_name": "", "time_zone": "", "language": "",
            "created_at": created, "updated_at": created,
        }), connection)
        guests = ids[~owned]
        insert_frame(CustomerIdentifier, pd.DataFrame({
            "id": np.arange(1, len(guests) + 1), "customer_id": guests, "kind": "basket",
            "value": guests.astype(str).astype(object), "source": "oscar", "created_at": created[: len(guests)],
        }), connection)
        insert_frame(Basket, pd.DataFrame({
            "id": ids, "owner_id": owner,
            "status": "Open", "date_created": created,
        }), connection)
        insert_frame(Line, pd.DataFrame({
            "id": np.arange(1, n_lines + 1), "basket_id": basket_of_line,
            "line_reference": [f"ref-{i}" for i in range(n_lines)], "product_id": product.pk,
            "stockrecord_id": record.pk, "quantity": rng.integers(1, 3, n_lines), "price_currency": "GBP",
            "price_excl_tax": price, "price_incl_tax": price, "tax_code": "",
            "date_created": ts(touched[basket_of_line - 1]), "date_updated": ts(touched[basket_of_line - 1]),
        }), connection)
        if vendor == "postgresql":
            with connection.cursor() as cursor:
                for model in (User, Customer, CustomerIdentifier, Basket, Line):
                    table = model._meta.db_table
                    cursor.execute(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))"
                    )
        campaign = Campaign.objects.create(
            name="Cart abandoned", trigger="cart_abandoned", min_basket_value=10,
            created_at=NOW - dt.timedelta(days=10),
        )
        CampaignStep.objects.create(campaign=campaign, position=1, delay_value=1, delay_unit="hours")
    with connection.cursor() as cursor:
        # As autovacuum leaves a live database: statistics, visibility map and hint bits set,
        # so the scan does not pay for the first read of freshly loaded pages.
        cursor.execute("VACUUM ANALYZE" if vendor == "postgresql" else "ANALYZE")
        if vendor == "postgresql":
            cursor.execute("CHECKPOINT")  # the load's writes are not flushed during the scan
    return {"baskets": Basket.objects.count(), "lines": Line.objects.count()}


def scan(database_url):
    django_setup(database_url)
    from oscar_journeys.models import Enrollment
    from oscar_journeys.services.triggers import enrollments_exit_due, triggers_scan

    started = time.perf_counter()
    created = sum(triggers_scan(now=NOW).values())
    first = time.perf_counter() - started
    started = time.perf_counter()
    again = sum(triggers_scan(now=NOW).values())
    second = time.perf_counter() - started
    started = time.perf_counter()
    exited = sum(enrollments_exit_due(now=NOW).values())
    exits = time.perf_counter() - started
    return {"created": created, "again": again, "enrollments": Enrollment.objects.count(), "scan": first,
            "rescan": second, "exited": exited, "exits": exits}


def child(step, *args):
    """Run one step in a fresh interpreter; return the JSON it prints on its last line."""
    return run_child(__file__, step, *args, label=step)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baskets", type=int, default=100_000)
    parser.add_argument("--database", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        generate_step = lambda url, baskets: generate(url, int(baskets))  # noqa: E731
        answer_child(options.child, {"migrate": migrate, "generate": generate_step, "scan": scan})
        return

    databases = ["sqlite", "postgres"] if options.database == "both" else [options.database]
    print(f"cart-abandonment scan at {NOW.isoformat()}, {options.baskets:,} open baskets")
    print("database   | baskets | lines   | enrolled | scan s | rescan s | exits s | generate s")
    for database in databases:
        with scratch_database(database, DATABASE, prefix="journeys_bench_triggers_") as url:
            child("migrate", url)
            started = time.perf_counter()
            made = child("generate", url, options.baskets)
            generated = time.perf_counter() - started
            got = child("scan", url)
            assert got["again"] == 0 and got["exited"] == 0, got
            print(
                f"{database:<10} | {made['baskets']:>7,} | {made['lines']:>7,} | {got['created']:>8,} | "
                f"{got['scan']:>6.2f} | {got['rescan']:>8.2f} | {got['exits']:>7.2f} | {generated:>10.0f}",
                flush=True,
            )
    print(f"load avg {os.getloadavg()[0]:.1f} (1 minute) after the runs")


if __name__ == "__main__":
    main()
