"""What every trigger family shares: the occurrence frame, the time window a scan looks at,
and entering the occurrences as enrollments (re-entry, idempotency, bulk insert).

A trigger family is a function ``find(campaign, *, now, delay) -> DataFrame`` returning one
row per trigger occurrence with ``OCCURRENCE_COLUMNS``:

    customer_id   int64                canonical customer id
    trigger_key   object (str)         unique per campaign and customer, e.g. "order:100023"
    triggered_at  datetime64[ns, UTC]  when it happened; the same key always has the same time
    context       object (dict)        what the messages need, e.g. {"basket_id": 7} (or that
                                       dict's JSON text, when a finder builds them in bulk)

``delay`` is the campaign's first step delay; :func:`enroll` sets
``next_due_at = triggered_at + delay``.
"""

import datetime as dt
import logging

import pandas as pd
from django.apps import apps
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import CharField, Max, Q
from django.db.models.functions import Cast

from ...models import DueStep, Enrollment
from ..bulk import insert_ignoring_conflicts

logger = logging.getLogger(__name__)

OCCURRENCE_COLUMNS = ("customer_id", "trigger_key", "triggered_at", "context")
# How far back a scan looks for event-based occurrences (carts, orders, lapses), so that a
# scan after an outage catches up without replaying the shop's whole history.
LOOKBACK = dt.timedelta(days=30)


def window_start(campaign, now, lookback=LOOKBACK):
    """The earliest trigger time a scan considers: the latest of ``now - lookback``, the
    campaign's creation and its start. A new campaign is not replayed over the past: it
    catches what happens from the moment it exists."""
    start = max(now - lookback, campaign.created_at)
    if campaign.starts_at is not None:
        start = max(start, campaign.starts_at)
    return start


def occurrences(customer_id=(), trigger_key=(), triggered_at=(), context=()):
    """An occurrence frame from four columns (Series, lists or arrays of one length)."""

    def column(values, dtype=None):
        if isinstance(values, pd.Series):
            return values.reset_index(drop=True)
        return pd.Series(list(values), dtype=dtype)

    return pd.DataFrame(
        {
            "customer_id": column(customer_id, "int64").astype("int64"),
            "trigger_key": column(trigger_key, object).astype(object),
            "triggered_at": to_utc(column(triggered_at, object)),
            "context": column(context, object),
        },
        columns=list(OCCURRENCE_COLUMNS),
    )


def to_utc(values):
    """datetime64[ns, UTC] from datetimes, Timestamps or the text SQLite returns for
    aggregates ("2025-06-01 10:00:00.123456", naive UTC)."""
    series = pd.Series(values) if not isinstance(values, pd.Series) else values
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        return series.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
    if not len(series):
        return pd.Series(pd.DatetimeIndex([], tz="UTC"), dtype="datetime64[ns, UTC]")
    return pd.to_datetime(series, utc=True, format="ISO8601").astype("datetime64[ns, UTC]")


def epoch_seconds(instants):
    """Whole seconds since the epoch of a datetime64[ns, UTC] series, as strings."""
    return ((instants - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).astype("int64").astype(str)


def read_frame(queryset, columns, *, times=()):
    """``queryset.values_list(*columns)`` as a frame, read straight from the cursor.

    The ``times`` columns travel as text and are parsed in bulk (datetime64[ns, UTC]):
    Django's per-value converters cost about 10 us a timestamp, a second per 100k rows."""
    text = {column: f"{column}_as_text" for column in times}
    queryset = queryset.annotate(**{alias: Cast(column, CharField()) for column, alias in text.items()})
    sql, params = queryset.values_list(*[text.get(c, c) for c in columns]).query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        frame = pd.DataFrame.from_records(cursor.fetchall(), columns=list(columns))
    for column in times:
        frame[column] = to_utc(frame[column])
    return frame


def _existing(campaign, earliest, reentry):
    """The enrollments of the campaign that can block a new one: still active, or triggered
    within the re-entry period of the earliest occurrence (this includes every enrollment
    with the same trigger key, since a key always has the same time)."""
    rows = Enrollment.objects.filter(campaign=campaign).filter(
        Q(status=Enrollment.ACTIVE) | Q(triggered_at__gte=earliest - reentry)
    )
    columns = ["customer_id", "trigger_key", "triggered_at", "status"]
    frame = read_frame(rows.order_by(), columns, times=["triggered_at"])
    frame["customer_id"] = frame["customer_id"].astype("int64")
    return frame


def admissible(campaign, found):
    """The occurrences that may enter: those whose key has not entered yet, one per
    customer (the latest), and none for a customer with an active enrollment in the
    campaign or one triggered less than ``reentry_days`` before or after it."""
    if found.empty:
        return found
    reentry = pd.Timedelta(days=campaign.reentry_days)
    existing = _existing(campaign, found["triggered_at"].min().to_pydatetime(), reentry)
    if not existing.empty:
        entered = found.merge(existing[["customer_id", "trigger_key"]], how="left", indicator=True)["_merge"]
        found = found[(entered == "left_only").to_numpy()]
    found = found.sort_values(["customer_id", "triggered_at"], kind="stable")
    found = found.drop_duplicates("customer_id", keep="last").reset_index(drop=True)
    if existing.empty or found.empty:
        return found
    pairs = found[["customer_id", "triggered_at"]].merge(existing, on="customer_id", suffixes=("", "_old"))
    blocking = (pairs["status"] == Enrollment.ACTIVE).to_numpy() | (
        (pairs["triggered_at"] - pairs["triggered_at_old"]).abs() < reentry
    ).to_numpy()
    blocked = pairs["customer_id"].to_numpy()[blocking]
    return found[~found["customer_id"].isin(blocked)].reset_index(drop=True)


def enroll(campaign, found, *, now, delay):
    """Insert the admissible occurrences as active enrollments, step 1 due at
    ``triggered_at + delay``; return how many were inserted. Idempotent: the unique
    (campaign, customer, trigger_key) drops what a concurrent scan inserted first, and
    those are not counted."""
    found = admissible(campaign, found)
    if found.empty:
        return 0
    encode = DjangoJSONEncoder().encode
    rows = pd.DataFrame(
        {
            "customer_id": found["customer_id"],
            "trigger_key": found["trigger_key"],
            "triggered_at": found["triggered_at"],
            # A context is a dict, or its JSON text when a finder built them in bulk.
            "context": [
                context if isinstance(context, str) else encode(context) if context else "{}"
                for context in found["context"].tolist()
            ],
            "next_due_at": found["triggered_at"] + pd.Timedelta(delay),
        }
    )
    return insert_enrollments(rows, campaign_id=campaign.pk, now=now)


def insert_enrollments(rows, *, campaign_id, now):
    """Insert ``rows`` (``customer_id``, ``trigger_key``, ``triggered_at``, ``context`` as
    JSON text, ``next_due_at``) as active enrollments of the campaign at step 1, with their
    ``DueStep``; return how many were inserted (a row whose key is taken is skipped)."""
    constants = {
        "campaign_id": campaign_id,
        "status": Enrollment.ACTIVE,
        "exit_reason": "",
        "next_step": 1,
        "created_at": now,
        "updated_at": now,
    }
    with transaction.atomic():
        # The ids given now are above every id given before: the due steps of the rows
        # inserted here are those of the active enrollments above it that have none yet.
        before = Enrollment.objects.aggregate(top=Max("id"))["top"] or 0
        inserted = insert_ignoring_conflicts(Enrollment, rows, constants=constants)
        if inserted:
            qn = connection.ops.quote_name
            with connection.cursor() as cursor:
                cursor.execute(
                    f"INSERT INTO {qn(DueStep._meta.db_table)} (enrollment_id, customer_id, due_at) "
                    f"SELECT id, customer_id, next_due_at FROM {qn(Enrollment._meta.db_table)} "
                    "WHERE id > %s AND status = %s AND next_due_at IS NOT NULL ON CONFLICT DO NOTHING",
                    [before, Enrollment.ACTIVE],
                )
    return inserted


def identified(prefix="customer__"):
    """Q: the customer (through ``prefix``) can be told apart from an anonymous visitor:
    they have an account, an email or a phone, or were merged into someone who does (a
    merge joins a visitor to an account or an email)."""
    return (
        Q(**{f"{prefix}merged_into__isnull": False})
        | Q(**{f"{prefix}user__isnull": False})
        | ~Q(**{f"{prefix}email": ""})
        | ~Q(**{f"{prefix}phone": ""})
    )


def product_condition(campaign, prefix=""):
    """Q on events (fields through ``prefix``): the event is about a product the campaign
    names. That is one of ``Campaign.products``, a product of one of ``Campaign.categories``
    or their subcategories, a variant of either, or (for events imported without a product)
    an event whose category name is one of those categories'. None when the campaign names
    no product and no category."""
    Category = apps.get_model("catalogue", "Category")
    Product = apps.get_model("catalogue", "Product")
    ProductCategory = apps.get_model("catalogue", "ProductCategory")
    chosen = campaign.products.through._default_manager.filter(campaign_id=campaign.pk).values("product_id")
    paths = list(campaign.categories.values_list("path", flat=True))
    if not paths and not chosen.exists():
        return None
    products = Q(pk__in=chosen)
    conditions = []
    if paths:
        tree = Q()
        for path in paths:
            tree |= Q(path__startswith=path)
        subtree = Category._default_manager.filter(tree)
        products |= Q(pk__in=ProductCategory._default_manager.filter(category__in=subtree).values("product_id"))
        conditions.append(Q(**{f"{prefix}category__in": subtree.values("name")}))
    matching = Product._default_manager.filter(products)
    variants = Product._default_manager.filter(parent__in=matching)
    conditions += [
        Q(**{f"{prefix}product_id__in": matching.values("pk")}),
        Q(**{f"{prefix}product_id__in": variants.values("pk")}),
    ]
    condition = Q()
    for q in conditions:
        condition |= q
    return condition
