"""A small synthetic shop for the nightly chain's tests: customers of known kinds, with
their events written straight to the timeline (bulk, not through Oscar).

- loyal: order about every 30 days from sign-up to the end;
- lapsing: order about every 30 days, then stop at a random day;
- browsers: look, log in, never order.
"""

import datetime as dt

import numpy as np
import pandas as pd
from django.db import transaction

from oscar_journeys.ml import schema
from oscar_journeys.models import Customer, Event
from oscar_journeys.services.bulk import insert_rows

UTC = dt.timezone.utc


def make_shop(*, end, customers=360, days=540, seed=3):
    """Create ``customers`` customers with ``days`` of history before ``end`` (an aware
    instant). Returns {"loyal": [ids], "lapsing": [ids], "browsers": [ids]}."""
    rng = np.random.default_rng(seed)
    people = Customer.objects.bulk_create(
        [Customer(email=f"nightly{n}@example.com") for n in range(customers)]
    )
    ids = np.array([c.pk for c in people])
    kinds = np.array(["loyal", "lapsing", "browsers"])[np.arange(customers) % 3]
    start = pd.Timestamp(end) - pd.Timedelta(days=days)
    rows = []
    # Nothing depends on the ids the database hands out: the same seed, the same shop.
    for n, (pk, kind) in enumerate(zip(ids.tolist(), kinds.tolist())):
        joined = start + pd.Timedelta(days=float(rng.uniform(0, days * 0.4)))
        rows.append((pk, schema.USER_REGISTERED, joined, None))
        stop = pd.Timestamp(end)
        if kind == "lapsing":
            stop = joined + pd.Timedelta(days=float(rng.uniform(30, (pd.Timestamp(end) - joined).days)))
        at = joined
        while kind != "browsers":
            at += pd.Timedelta(days=float(rng.gamma(4.0, 30 / 4)))
            if at >= stop:
                break
            rows.append((pk, schema.ORDER_PLACED, at, float(rng.gamma(3.0, 20.0 if n % 2 else 40.0))))
        for _ in range(int(rng.integers(2, 8))):
            seen = joined + pd.Timedelta(days=float(rng.uniform(0, (pd.Timestamp(end) - joined).days)))
            rows.append((pk, schema.PRODUCT_VIEWED, seen, None))
    frame = pd.DataFrame(rows, columns=["customer_id", "type", "occurred_at", "value"])
    frame = frame[frame["occurred_at"] < pd.Timestamp(end)].reset_index(drop=True)
    frame["occurred_at"] = pd.to_datetime(frame["occurred_at"], utc=True).dt.floor("us")
    with transaction.atomic():  # on PostgreSQL, insert_rows' temporary table lives until the commit
        _insert(frame)
    return {kind: ids[kinds == kind].tolist() for kind in ("loyal", "lapsing", "browsers")}


def _insert(frame):
    insert_rows(
        Event,
        {
            "customer_id": frame["customer_id"].tolist(),
            "recorded_for_id": frame["customer_id"].tolist(),
            "type": frame["type"].tolist(),
            "occurred_at": [t.to_pydatetime() for t in frame["occurred_at"]],
            "recorded_at": [t.to_pydatetime() for t in frame["occurred_at"]],
            "idempotency_key": [f"nightly-{n}" for n in range(len(frame))],
            "value": [None if pd.isna(v) else round(v, 2) for v in frame["value"]],
            "source": "test",
        },
    )
