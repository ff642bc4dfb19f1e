"""How long the nightly snapshot build takes, and how much memory it needs.

For each size and database: generate synthetic customers and events straight into a fresh
throw-away database (bulk inserts, not through Oscar), then run ``snapshot_build`` for one
day in a separate process and print customers, events, rows written, seconds (read /
compute / write / total) and that process's peak memory (RSS). Target: 100k customers with
2M events in at most 30 s, on SQLite and on PostgreSQL.

    python benchmarks/bench_snapshot.py [--sizes 10000,100000,1000000]
        [--events-per-customer 20] [--database sqlite|postgres|both]

SQLite uses temporary files; PostgreSQL a throw-away database `journeys_bench_snapshot` (and its
template `journeys_bench_snapshot_template`) on 127.0.0.1, user postgres, dropped at the end.
"""

import argparse
import datetime as dt
import os
import shutil
import tempfile
import time
from pathlib import Path

from _common import PG_URL, answer_child, django_setup, insert_frame, migrate, pg_admin, run_child, timestamps

AS_OF = dt.date(2025, 6, 30)
SPAN_DAYS = 730  # events spread over the two years before AS_OF
CHUNK = 500_000  # events generated and inserted per batch
CATEGORIES = [f"Category {n:02d}" for n in range(40)]
# Share of each event type besides the one registration per customer.
MIX = {
    "product_viewed": 0.38,
    "user_logged_in": 0.10,
    "user_search": 0.09,
    "basket_addition": 0.12,
    "basket_line_removal": 0.03,
    "checkout_started": 0.04,
    "order_placed": 0.05,
    "product_ordered": 0.08,
    "order_status_changed": 0.04,
    "order_cancelled": 0.005,
    "order_line_returned": 0.005,
    "message_opened": 0.04,
    "message_clicked": 0.01,
    "review_added": 0.01,
}
VALUED = ("order_placed", "basket_addition", "basket_line_removal")
CATEGORISED = ("product_viewed", "product_ordered", "basket_addition")


# --- in the child processes -----------------------------------------------------------------


def _secondary_indexes(connection, table):
    """(drop, create) SQL of the table's indexes other than its primary key."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c "
                "WHERE c.conrelid = %s::regclass AND c.contype IN ('u', 'f')",
                [table],
            )
            constraints = cursor.fetchall()
            cursor.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s AND indexname NOT IN "
                "(SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass)",
                [table, table],
            )
            indexes = cursor.fetchall()
            drop = [f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"' for name, _ in constraints]
            drop += [f'DROP INDEX "{name}"' for name, _ in indexes]
            create = [definition for _, definition in indexes]
            create += [f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {definition}' for name, definition in constraints]
        else:
            cursor.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = %s AND sql IS NOT NULL", [table])
            indexes = cursor.fetchall()
            drop = [f'DROP INDEX "{name}"' for name, _ in indexes]
            create = [definition for _, definition in indexes]
    return drop, create


def generate(database_url, customers, per_customer, seed=7):
    """Customers 1..N and N x per_customer events over two years, appended in time order
    as a live shop appends them (so one customer's events are spread over the table)."""
    import numpy as np
    import pandas as pd

    django_setup(database_url)
    from django.db import connection, transaction

    from oscar_journeys.models import Customer, Event

    vendor = connection.vendor
    rng = np.random.default_rng(seed)
    end = np.datetime64(f"{AS_OF + dt.timedelta(days=1)}T00:00", "ns")
    with connection.cursor() as cursor:
        if vendor == "sqlite":
            cursor.execute("PRAGMA synchronous = OFF")
            cursor.execute("PRAGMA cache_size = -1000000")

    created = timestamps(np.array([end - np.timedelta64(SPAN_DAYS, "D")]), vendor)[0]
    ids = np.arange(1, customers + 1)
    with transaction.atomic():
        for lo in range(0, customers, CHUNK):
            chunk = ids[lo : lo + CHUNK]
            insert_frame(
                Customer,
                pd.DataFrame(
                    {"id": chunk, "email": "", "phone": "", "first_name": "", "last_name": "", "time_zone": "", "language": "",
                     "created_at": created, "updated_at": created}
                ),
                connection,
            )

    # Loading is quicker without the indexes: drop them, load, build them again (the
    # foreign keys too on PostgreSQL; the data satisfies them).
    drop, create = _secondary_indexes(connection, Event._meta.db_table)
    with connection.cursor() as cursor:
        for statement in drop:
            cursor.execute(statement)

    total = customers * per_customer
    span_ns = SPAN_DAYS * 86_400 * 10**9
    # Each customer registers once, at a random time; the other events go to customers
    # with a skew (a few heavy shoppers, many occasional ones).
    registered = np.sort(rng.integers(0, span_ns, customers))
    registrant = rng.permutation(ids)
    weights = rng.pareto(1.5, customers) + 0.2
    weights /= weights.sum()
    types = np.array(list(MIX), dtype=object)
    shares = np.array(list(MIX.values()))
    shares /= shares.sum()
    category_names = np.array(CATEGORIES, dtype=object)
    windows = max(1, -(-total // CHUNK))
    made = 0
    for window in range(windows):
        start, stop = span_ns * window // windows, span_ns * (window + 1) // windows
        first, last = np.searchsorted(registered, [start, stop])
        others = total * (window + 1) // windows - total * window // windows - (last - first)
        size = max(others, 0)
        who = np.concatenate([registrant[first:last], rng.choice(ids, size=size, p=weights)])
        kind = np.concatenate([np.full(last - first, "user_registered", dtype=object),
                               types[rng.choice(len(types), size=size, p=shares)]])
        since = np.concatenate([registered[first:last], rng.integers(start, stop, size)])
        order = np.argsort(since, kind="stable")
        who, kind, since = who[order], kind[order], since[order]
        n = len(who)
        when = timestamps(end - np.timedelta64(span_ns, "ns") + since.astype("timedelta64[ns]"), vendor)
        value = np.where(np.isin(kind, VALUED), rng.gamma(2.0, 25.0, n).round(2), np.nan)
        category = np.where(np.isin(kind, CATEGORISED), category_names[rng.integers(0, len(CATEGORIES), n)], "")
        frame = pd.DataFrame(
            {
                "customer_id": who,
                "recorded_for_id": who,
                "type": kind,
                "occurred_at": when,
                "recorded_at": when,
                "source": "bench",
                "idempotency_key": np.char.zfill(np.arange(made, made + n).astype(str), 12).astype(object),
                "value": value,
                "currency": np.where(np.isnan(value), "", "GBP"),
                "category": category,
                "payload": "{}",
            }
        )
        with transaction.atomic():
            insert_frame(Event, frame, connection)
        made += n
    with connection.cursor() as cursor:
        for statement in create:
            cursor.execute(statement)
        cursor.execute("ANALYZE")
    return {"customers": customers, "events": Event.objects.count()}


def build(database_url):
    import resource

    django_setup(database_url)
    from django.db.models import Sum
    from django.utils import timezone

    from oscar_journeys.models import Snapshot
    from oscar_journeys.services.snapshots import snapshot_build

    result = snapshot_build(as_of=AS_OF, now=timezone.now())
    usage = resource.getrusage(resource.RUSAGE_SELF)
    # Totals over the rows written: the same data gives the same figures on every database.
    totals = Snapshot.objects.filter(as_of=AS_OF).aggregate(orders=Sum("frequency"), spent=Sum("monetary"))
    return {
        "rows": result.rows,
        "shards": result.shards,
        "read": result.read_seconds,
        "compute": result.compute_seconds,
        "write": result.write_seconds,
        "total": result.seconds,
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss_mb": usage.ru_maxrss / 1024,
        "orders": totals["orders"] or 0,
        "spent": float(totals["spent"] or 0),
    }


# --- the parent: databases, one subprocess per step --------------------------------------------


def child(step, *args):
    """Run one step in a fresh interpreter; return the JSON it prints on its last line."""
    return run_child(__file__, step, *args, label=step)


class SQLite:
    name = "sqlite"

    def __enter__(self):
        self.folder = Path(tempfile.mkdtemp(prefix="journeys_bench_"))
        self.template = self.folder / "template.sqlite3"
        child("migrate", f"sqlite:///{self.template}")
        return self

    def fresh(self):
        path = self.folder / "bench.sqlite3"
        for old in self.folder.glob("bench.sqlite3*"):
            old.unlink()
        shutil.copy(self.template, path)
        return f"sqlite:///{path}"

    def __exit__(self, *exc):
        shutil.rmtree(self.folder, ignore_errors=True)


class Postgres:
    name = "postgres"
    template, database = "journeys_bench_snapshot_template", "journeys_bench_snapshot"

    def __enter__(self):
        pg_admin(
            f"DROP DATABASE IF EXISTS {self.database}",
            f"DROP DATABASE IF EXISTS {self.template}",
            f"CREATE DATABASE {self.template}",
        )
        child("migrate", PG_URL.format(name=self.template))
        return self

    def fresh(self):
        pg_admin(
            f"DROP DATABASE IF EXISTS {self.database}",
            f"CREATE DATABASE {self.database} TEMPLATE {self.template}",
        )
        return PG_URL.format(name=self.database)

    def __exit__(self, *exc):
        pg_admin(f"DROP DATABASE IF EXISTS {self.database}", f"DROP DATABASE IF EXISTS {self.template}")


HEADER = ("database", "customers", "events", "rows", "shards", "read s", "compute s", "write s", "total s",
          "cpu s", "peak RSS MB", "orders", "spent", "generate s", "load avg")


def row(values):
    return " | ".join(str(v).rjust(max(len(h), 10)) for v, h in zip(values, HEADER))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="customer counts, comma-separated")
    parser.add_argument("--events-per-customer", type=int, default=20)
    parser.add_argument("--database", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    options = parser.parse_args()

    if options.child:
        generate_step = lambda url, customers, per_customer: generate(url, int(customers), int(per_customer))  # noqa: E731
        answer_child(options.child, {"migrate": migrate, "generate": generate_step, "build": build})
        return

    sizes = [int(size.replace("_", "")) for size in options.sizes.split(",") if size.strip()]
    databases = [SQLite, Postgres] if options.database == "both" else [{"sqlite": SQLite, "postgres": Postgres}[options.database]]
    print(f"snapshot_build for one day ({AS_OF}), {options.events_per_customer} events per customer")
    print(row(HEADER))
    print(row(["-" * len(h) for h in HEADER]))
    for database in databases:
        with database() as db:
            for size in sizes:
                url = db.fresh()
                started = time.perf_counter()
                made = child("generate", url, size, options.events_per_customer)
                generated = time.perf_counter() - started
                got = child("build", url)
                print(
                    row([db.name, f"{made['customers']:,}", f"{made['events']:,}", f"{got['rows']:,}", got["shards"],
                         f"{got['read']:.1f}", f"{got['compute']:.1f}", f"{got['write']:.1f}",
                         f"{got['total']:.1f}", f"{got['cpu']:.1f}", f"{got['rss_mb']:.0f}", f"{got['orders']:,}",
                         f"{got['spent']:,.0f}", f"{generated:.0f}", f"{os.getloadavg()[0]:.1f}"]),
                    flush=True,
                )
    print("cpu s: CPU time of the build process (the database server's is not included); "
          "load avg: the machine's 1-minute load average after the build (2 cores here).")


if __name__ == "__main__":
    main()
