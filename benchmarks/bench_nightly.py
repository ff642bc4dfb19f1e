"""How long the nightly chain takes (snapshot, segments, predictions), how much memory it
needs, and how well the churn model predicts.

Scale: for each size, generate synthetic customers and events into a fresh throw-away
database (``bench_snapshot.generate``: bulk inserts, not through Oscar), then, each step in
fresh processes, as the Celery chain runs it on a 2-core machine:

1. train: ``nightly_train`` (a sample of at most TRAINING_SAMPLE_SIZE customers);
2. score: ``--workers`` processes (default 2, one per core, as two Celery workers would),
   each running ``snapshot_build`` on its share of the customer-id shards with the new
   models: features, segments and predictions, written once.

It prints seconds per step, the whole chain's wall-clock time and the peak memory (the
training process's peak, or the score processes' peaks added up, whichever is larger).
Target: 1M customers with 10M events in at most 5 minutes, at most 4 GB.

Churn quality: the demo shop's customers (``journeys_demo_data``'s plan, turned into the
events that command would record, without going through Oscar), snapshots at three days
one churn horizon apart, and the churn model's AUC on the later split beside the AUC of
the simple recency rule (more days since the last order = more likely gone) on the same
rows.

    python benchmarks/bench_nightly.py [--sizes 10000,100000,1000000]
        [--events-per-customer 10] [--database postgres|sqlite] [--workers 2]
        [--demo-customers 4000] [--skip-scale] [--skip-churn]
"""

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time

from _common import ROOT, answer_child, django_setup, migrate, run_child
from bench_snapshot import AS_OF, SQLite, generate
from bench_snapshot import Postgres as SnapshotPostgres


class Postgres(SnapshotPostgres):
    template, database = "journeys_bench_nightly_template", "journeys_bench_nightly"


# --- in the child processes -----------------------------------------------------------------


def _rss_mb():
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def train(database_url):
    django_setup(database_url)
    from oscar_journeys.services.nightly import nightly_train

    started = time.perf_counter()
    run = nightly_train(as_of=AS_OF)
    return {"version": run.version, "seconds": time.perf_counter() - started, "rss_mb": _rss_mb(),
            "customers": run.customers, "metrics": run.metrics, "skipped": run.params.get("skipped", {})}


def score(database_url, version, worker, workers):
    django_setup(database_url)
    from django.utils import timezone

    from oscar_journeys.services.nightly import models_of
    from oscar_journeys.services.snapshots import snapshot_build, snapshot_shards

    worker, workers = int(worker), int(workers)
    models = models_of(int(version))
    totals = {"rows": 0, "changes": 0, "read": 0.0, "compute": 0.0, "score": 0.0, "write": 0.0}
    started = time.perf_counter()
    for lo, hi in snapshot_shards(as_of=AS_OF)[worker::workers]:
        result = snapshot_build(as_of=AS_OF, customer_range=(lo, hi), models=models, now=timezone.now())
        totals["rows"] += result.rows
        totals["changes"] += result.stage_changes
        for name in ("read", "compute", "score", "write"):
            totals[name] += getattr(result, f"{name}_seconds")
    return {**totals, "seconds": time.perf_counter() - started, "rss_mb": _rss_mb()}


def demo_churn(customers, seed):
    """The churn model's and the recency rule's AUC on the demo shop's customers."""
    import pandas as pd

    django_setup("sqlite:///:memory:")
    from django.utils import timezone

    from oscar_journeys import app_settings
    from oscar_journeys.demo.catalogue import catalogue_spec
    from oscar_journeys.demo.plan import plan_history
    from oscar_journeys.ml.features import compute_snapshots
    from oscar_journeys.ml.nightly import fit_nightly, nightly_days

    tz = timezone.get_default_timezone()
    now = dt.datetime.combine(AS_OF + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
    products = catalogue_spec()
    category = {p.upc: p.category for p in products}
    price = {p.upc: float(p.price) for p in products}
    started = time.perf_counter()
    rows = []
    for person in plan_history(seed=seed, customers=customers, days=730, now=now, products=products, tz=tz):
        cid = person.index + 1
        for event in person.events:
            value = None if event.value is None else float(event.value)
            rows.append((cid, event.type, event.at, value, category.get(event.upc)))
        for order in person.orders:
            total = sum(price[upc] * quantity for upc, quantity in order.lines)
            rows.append((cid, "order_placed", order.placed_at, total, None))
            rows.extend((cid, "product_ordered", order.placed_at, None, category[upc]) for upc, _ in order.lines)
            if order.cancelled_at is not None:
                rows.append((cid, "order_cancelled", order.cancelled_at, None, None))
            if order.returned_at is not None:
                rows.append((cid, "order_line_returned", order.returned_at, None, None))
    events = pd.DataFrame(rows, columns=["customer_id", "type", "occurred_at", "value", "category"])
    events["occurred_at"] = pd.to_datetime(events["occurred_at"], utc=True)
    events["type"] = events["type"].astype("category")
    planned = time.perf_counter() - started
    horizon = int(app_settings.CHURN_HORIZON_DAYS)
    days = nightly_days(AS_OF, churn_horizon_days=horizon, clv_horizon_days=365)
    cutoffs = {day: pd.Timestamp(dt.datetime.combine(day + dt.timedelta(days=1), dt.time.min, tzinfo=tz)) for day in days}
    frames = dict(tuple(compute_snapshots(events, cutoffs).groupby("as_of")))
    frames = {day: frame.reset_index(drop=True) for day, frame in frames.items()}
    _, report = fit_nightly(frames, as_of=AS_OF, churn_horizon_days=horizon, clv_horizon_days=365)
    return {"customers": customers, "events": len(events), "plan_seconds": planned, "horizon": horizon,
            "metrics": report.metrics, "skipped": report.skipped}


# --- the parent -----------------------------------------------------------------------------


def child(step, *args):
    return run_child(__file__, step, *args, label=step)


def children(step, argument_lists):
    """Run one child per argument list at the same time; their JSON answers, in order."""
    procs = [
        subprocess.Popen([sys.executable, __file__, "--child", step, *map(str, args)], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for args in argument_lists
    ]
    answers = []
    for proc in procs:
        out, err = proc.communicate()
        if proc.returncode:
            sys.stderr.write(out + err)
            raise SystemExit(f"{step} failed (exit {proc.returncode})")
        answers.append(json.loads(out.strip().splitlines()[-1]))
    return answers


HEADER = ("database", "customers", "events", "train s", "score s", "total s", "rows", "stage changes",
          "read s", "features s", "scores s", "write s", "peak MB", "churn AUC", "segments", "generate s")


def line(values):
    return " | ".join(str(v).rjust(max(len(h), 9)) for v, h in zip(values, HEADER))


def scale(options):
    sizes = [int(size.replace("_", "")) for size in options.sizes.split(",") if size.strip()]
    database = {"sqlite": SQLite, "postgres": Postgres}[options.database]
    print(f"The nightly chain for {AS_OF}, {options.events_per_customer} events per customer, "
          f"{options.workers} score workers")
    print(line(HEADER))
    print(line(["-" * len(h) for h in HEADER]))
    with database() as db:
        for size in sizes:
            url = db.fresh()
            started = time.perf_counter()
            made = child("generate", url, size, options.events_per_customer)
            generated = time.perf_counter() - started
            clock = time.perf_counter()
            trained = child("train", url)
            train_s = time.perf_counter() - clock
            clock = time.perf_counter()
            scored = children("score", [(url, trained["version"], w, options.workers) for w in range(options.workers)])
            score_s = time.perf_counter() - clock
            peak = max(trained["rss_mb"], sum(s["rss_mb"] for s in scored))
            metrics = trained["metrics"]
            auc = metrics.get("churn_auc")
            print(line([db.name, f"{made['customers']:,}", f"{made['events']:,}", f"{train_s:.1f}", f"{score_s:.1f}",
                        f"{train_s + score_s:.1f}", f"{sum(s['rows'] for s in scored):,}",
                        f"{sum(s['changes'] for s in scored):,}", f"{max(s['read'] for s in scored):.1f}",
                        f"{max(s['compute'] for s in scored):.1f}",
                        f"{max(s['score'] for s in scored):.1f}", f"{max(s['write'] for s in scored):.1f}",
                        f"{peak:.0f}", "-" if auc is None else f"{auc:.3f}", metrics.get("segments", "-"),
                        f"{generated:.0f}"]), flush=True)
            if trained["skipped"]:
                print(f"    left out: {trained['skipped']}")
    print("train s / score s: wall-clock seconds of each step, process start included; read / features / scores / "
          "write s: the slowest score worker's split (read: the events; the rest of score s is starting the "
          "process and loading the models). The synthetic events have no customer behaviour: "
          "their churn AUC means nothing (see the demo figures below).")


def churn(options):
    got = child("demo_churn", options.demo_customers, options.seed)
    m = got["metrics"]
    print()
    print(f"Churn on the demo shop: {got['customers']:,} customers, {got['events']:,} events (planned in "
          f"{got['plan_seconds']:.0f} s), horizon {got['horizon']} days")
    if "churn_auc" not in m:
        print(f"    churn model left out: {got['skipped'].get('churn')}")
        return
    print(f"    test rows {m['churn_test_rows']:,} (base rate {m['churn_base_rate']:.2f}), trained on "
          f"{m['churn_train_rows']:,}")
    print(f"    AUC: churn model {m['churn_auc']:.3f} | recency rule {m['recency_auc']:.3f} "
          f"(ratio {m['churn_auc'] / m['recency_auc']:.3f}); Brier score {m['churn_brier']:.3f}")
    if "clv_orders_mae" in m:
        print(f"    CLV holdout: {m['clv_holdout_rows']:,} customers, orders MAE {m['clv_orders_mae']:.2f}, "
              f"value MAE {m['clv_value_mae']:.1f}; predicted {m['clv_orders_predicted']:.0f} orders, "
              f"actual {m['clv_orders_actual']:.0f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--events-per-customer", type=int, default=10)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="postgres")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--demo-customers", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--skip-churn", action="store_true")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        steps = {
            "migrate": migrate,
            "generate": lambda url, n, per: generate(url, int(n), int(per)),
            "train": train,
            "score": score,
            "demo_churn": lambda n, seed: demo_churn(int(n), int(seed)),
        }
        answer_child(options.child, steps)
        return
    if not options.skip_scale:
        scale(options)
    if not options.skip_churn:
        churn(options)
    print(f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
