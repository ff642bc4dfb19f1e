"""Snapshot features: what each customer looked like at a given instant.

Pure pandas/numpy (no Django). Input is the events frame documented in
:mod:`oscar_journeys.ml.schema`; output is one row per customer with at least one event
before the cutoff, with ``customer_id`` and every ``schema.FEATURES`` column.

Conventions (shared by every feature):

- ``cutoff`` is a timezone-aware instant; an event counts when ``occurred_at < cutoff``.
  The services pass the end of the ``as_of`` day in the shop's time zone.
- Ages ("days since ...") are ``(cutoff - occurred_at)`` in days, as floats.
- A window "in the last N days" holds the events with ``cutoff - N days <= occurred_at``.
- Orders are ``order_placed`` events and their ``value`` is the order total; an order or a
  basket line without a value counts as 0.
- ``open_basket_value`` sums ``basket_addition`` values less ``basket_line_removal`` values
  strictly after the customer's last order (all of them without orders), never below 0.
- Favourite categories weigh each ``product_ordered`` 3 and each ``product_viewed`` 1 by
  its ``category``; equal weights are ordered by name. Empty categories are ignored.

Everything is computed with array operations over all customers at once: sort the events
once by (customer, time), then ``np.bincount`` for counts and sums and group boundaries for
first/last times. 2M events x 100k customers take about a second.
"""

import numpy as np
import pandas as pd

from . import schema

DAY_NS = 86_400 * 10**9
FAVOURITES = 3
FAVOURITE_WEIGHTS = {schema.PRODUCT_ORDERED: 3.0, schema.PRODUCT_VIEWED: 1.0}

# Local type codes: every type the features look at gets a small integer; others are -1.
_TYPES = tuple(schema.EVENT_TYPES)
_CODE = {name: i for i, name in enumerate(_TYPES)}
_FAVOURITE_WEIGHT = np.array([FAVOURITE_WEIGHTS.get(name, 0.0) for name in _TYPES])


class _Prepared:
    """The events as sorted numpy arrays, built once and reused for every cutoff."""

    def __init__(self, events):
        missing = [c for c in ("customer_id", "type", "occurred_at") if c not in events.columns]
        if missing:
            raise ValueError(f"events frame lacks columns: {', '.join(missing)}")
        cust = events["customer_id"].to_numpy(dtype="int64")
        when = _to_utc_ns(events["occurred_at"])
        order = _time_order(cust, when)
        self.customer_ids, code = np.unique(cust[order], return_inverse=True)
        self.code = code.astype("int64")
        self.when = when[order]
        self.type = _type_codes(events["type"])[order]
        if "value" in events.columns:
            value = pd.to_numeric(events["value"], errors="coerce").to_numpy(dtype="float64")
        else:
            value = np.zeros(len(events))
        self.value = np.nan_to_num(value[order], nan=0.0)
        self.category, self.category_names = _category_codes(events, order)


def _time_order(cust, when):
    """Positions that sort the events by (customer, time); cheap when already sorted (the
    selector reads them in that order)."""
    same = cust[1:] == cust[:-1]
    if np.all((cust[1:] > cust[:-1]) | (same & (when[1:] >= when[:-1]))):
        return np.arange(len(cust))
    return np.lexsort((when, cust))


def _to_utc_ns(occurred_at):
    stamps = pd.to_datetime(occurred_at, utc=True)
    return stamps.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]").view("int64")


def _type_codes(types):
    cat = types if isinstance(types.dtype, pd.CategoricalDtype) else types.astype("category")
    lookup = np.array([_CODE.get(str(c), -1) for c in cat.cat.categories] + [-1], dtype="int16")
    # codes are -1 for missing, which picks the trailing -1 of `lookup`.
    return lookup[cat.cat.codes.to_numpy()]


def _category_codes(events, order):
    if "category" not in events.columns or not len(events):
        return np.full(len(events), -1, dtype="int64"), np.array([], dtype=object)
    codes, names = pd.factorize(events["category"].to_numpy(dtype=object)[order], sort=True)
    names = np.asarray(names, dtype=object)
    blank = np.flatnonzero(names == "")
    if len(blank):
        codes = np.where(codes == blank[0], -1, codes)
    return codes.astype("int64"), names


def _group_bounds(codes):
    """Start and end positions of each run of equal values in a sorted array."""
    breaks = np.flatnonzero(codes[1:] != codes[:-1])
    starts = np.concatenate(([0], breaks + 1))
    ends = np.concatenate((breaks, [len(codes) - 1]))
    return starts, ends


def _oldest_newest_age(codes, age, n):
    """Per customer: age of their first and last event in the selection (NaN when none).

    ``codes`` is sorted and, within a customer, events go forward in time."""
    oldest = np.full(n, np.nan)
    newest = np.full(n, np.nan)
    if len(codes):
        starts, ends = _group_bounds(codes)
        oldest[codes[starts]] = age[starts]
        newest[codes[ends]] = age[ends]
    return oldest, newest


def _favourites(p, sel, n):
    """(favourite_category, favourite_categories) arrays of length n."""
    favourite = np.full(n, "", dtype=object)
    lists = np.empty(n, dtype=object)
    sel = sel & (p.category >= 0)
    ncat = len(p.category_names)
    if sel.any():
        weights = _FAVOURITE_WEIGHT[p.type[sel]]
        keys, inverse = np.unique(p.code[sel] * ncat + p.category[sel], return_inverse=True)
        totals = np.bincount(inverse, weights=weights)
        cust, cat = keys // ncat, keys % ncat
        # category codes follow name order (factorize(sort=True)): ties go by name.
        order = np.lexsort((cat, -totals, cust))
        cust, cat = cust[order], cat[order]
        starts, _ = _group_bounds(cust)
        sizes = np.diff(np.concatenate((starts, [len(cust)])))
        rank = np.arange(len(cust)) - np.repeat(starts, sizes)
        favourite[cust[starts]] = p.category_names[cat[starts]]
        keep = rank < FAVOURITES
        cust, cat, rank = cust[keep], cat[keep], rank[keep]
        kept = np.minimum(sizes, FAVOURITES)
        owners = cust[rank == 0]
        for k in range(1, FAVOURITES + 1):
            who = owners[kept == k]
            if not len(who):
                continue
            rows = np.flatnonzero(np.isin(cust, who))  # k consecutive rows per customer
            block = p.category_names[cat[rows]].reshape(-1, k).tolist()
            lists[who] = pd.Series(block, dtype=object).to_numpy()
    empty = np.flatnonzero(pd.isna(lists))
    # A list object per row (never one shared list), so changing one row's list changes no other.
    lists[empty] = pd.Series([[] for _ in range(len(empty))], dtype=object).to_numpy()
    return favourite, lists


def _empty_frame():
    columns = {"customer_id": pd.Series(dtype="int64")}
    for name, (kind, _) in schema.FEATURES.items():
        columns[name] = pd.Series(dtype={"int": "int64", "float": "float64"}.get(kind, object))
    return pd.DataFrame(columns)


def _cutoff_ns(cutoff):
    stamp = pd.Timestamp(cutoff)
    if stamp.tzinfo is None:
        raise ValueError(f"cutoff {cutoff!r} must be timezone-aware")
    return stamp.tz_convert("UTC").tz_localize(None).as_unit("ns").value


def _compute(p, cutoff):
    limit = _cutoff_ns(cutoff)
    n = len(p.customer_ids)
    before = p.when < limit
    code = p.code[before]
    if not len(code):
        return _empty_frame()
    when, value = p.when[before], p.value[before]
    age = (limit - when) / DAY_NS
    types = p.type[before]

    def is_(*names):
        return np.isin(types, [_CODE[name] for name in names])

    def count(mask):
        return np.bincount(code[mask], minlength=n)

    def total(mask):
        return np.bincount(code[mask], weights=value[mask], minlength=n)

    in30, in90 = age <= 30, age <= 90
    orders = is_(schema.ORDER_PLACED)
    frequency = count(orders)
    monetary = total(orders)
    first_event_age, _ = _oldest_newest_age(code, age, n)
    first_order_age, last_order_age = _oldest_newest_age(code[orders], age[orders], n)
    engaged = is_(*schema.ENGAGEMENT_TYPES)
    _, last_engagement_age = _oldest_newest_age(code[engaged], age[engaged], n)
    with np.errstate(invalid="ignore", divide="ignore"):
        avg_order_value = np.where(frequency > 0, monetary / frequency, np.nan)
        gaps = np.where(frequency > 1, (first_order_age - last_order_age) / (frequency - 1), np.nan)

    # Basket lines after the last order: their age is below the last order's age.
    last_order = np.nan_to_num(last_order_age, nan=np.inf)[code]
    after = age < last_order
    basket = np.bincount(
        code[after],
        weights=np.select(
            [types[after] == _CODE[schema.BASKET_ADDITION], types[after] == _CODE[schema.BASKET_LINE_REMOVAL]],
            [value[after], -value[after]],
            0.0,
        ),
        minlength=n,
    )
    favourite, favourites = _favourites(p, before & np.isin(p.type, [_CODE[t] for t in FAVOURITE_WEIGHTS]), n)

    features = {
        "tenure_days": first_event_age,
        "frequency": frequency,
        "monetary": monetary,
        "avg_order_value": avg_order_value,
        "recency_days": last_order_age,
        "first_order_days": first_order_age,
        "avg_days_between_orders": gaps,
        "orders_90d": count(orders & in90),
        "revenue_90d": total(orders & in90),
        "days_since_last_engagement": last_engagement_age,
        "product_views_30d": count(is_(schema.PRODUCT_VIEWED) & in30),
        "basket_additions_30d": count(is_(schema.BASKET_ADDITION) & in30),
        "searches_30d": count(is_(schema.USER_SEARCH) & in30),
        "logins_30d": count(is_(schema.USER_LOGGED_IN) & in30),
        "open_basket_value": np.maximum(basket, 0.0),
        "cancellations": count(is_(schema.ORDER_CANCELLED)),
        "returns": count(is_(schema.ORDER_LINE_RETURNED)),
        "messages_opened_90d": count(is_(schema.MESSAGE_OPENED) & in90),
        "messages_clicked_90d": count(is_(schema.MESSAGE_CLICKED) & in90),
        "favourite_category": favourite,
        "favourite_categories": favourites,
    }
    present = np.flatnonzero(np.bincount(code, minlength=n) > 0)
    dtypes = {"int": "int64", "float": "float64", "str": object, "list": object}
    columns = {"customer_id": pd.Series(p.customer_ids[present], dtype="int64")}
    for name, (kind, _) in schema.FEATURES.items():
        columns[name] = pd.Series(features[name][present], dtype=dtypes[kind])
    return pd.DataFrame(columns)


def compute_snapshot(events, cutoff):
    """Features of every customer with an event before ``cutoff`` (a tz-aware instant).

    Returns a DataFrame with ``customer_id`` (int64) and the ``schema.FEATURES`` columns:
    "int" as int64, "float" as float64 (NaN where undefined), "str" as object ("" when
    none) and "list" as python lists. Rows are ordered by customer_id."""
    _cutoff_ns(cutoff)
    if not len(events):
        return _empty_frame()
    return _compute(_Prepared(events), cutoff)


def _as_of_for(cutoff):
    stamp = pd.Timestamp(cutoff)
    return (stamp - pd.Timedelta(1, "ns")).date()


def iter_snapshots(events, cutoffs):
    """Yield ``(as_of, snapshot frame)`` for each day, oldest first, preparing the events
    once: what ``compute_snapshots`` concatenates, for callers that store day by day (a
    long backfill does not have to hold every day in memory)."""
    if not isinstance(cutoffs, dict):
        cutoffs = {_as_of_for(cutoff): cutoff for cutoff in cutoffs}
    for cutoff in cutoffs.values():
        _cutoff_ns(cutoff)
    prepared = _Prepared(events) if len(events) else None
    for as_of, cutoff in sorted(cutoffs.items()):
        frame = _compute(prepared, cutoff) if prepared is not None else _empty_frame()
        frame.insert(1, "as_of", pd.Series([as_of] * len(frame), dtype=object))
        yield as_of, frame


def compute_snapshots(events, cutoffs):
    """Snapshots for many days at once (a backfill): the events are prepared once.

    ``cutoffs`` maps each ``as_of`` date to its cutoff instant, or is an iterable of
    cutoffs, each then labelled with the date of the instant just before it (in the
    cutoff's own time zone: pass the end of the shop's day). Returns the snapshot frame:
    ``customer_id``, ``as_of`` and the features, ordered by as_of then customer_id."""
    frames = [frame for _, frame in iter_snapshots(events, cutoffs)]
    if not frames:
        frame = _empty_frame()
        frame.insert(1, "as_of", pd.Series(dtype=object))
        return frame
    return pd.concat(frames, ignore_index=True)
