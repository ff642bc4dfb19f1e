"""ml.features on small hand-built frames: every feature against hand-computed values."""

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from oscar_journeys.ml import schema
from oscar_journeys.ml.features import compute_snapshot, compute_snapshots

CUTOFF = pd.Timestamp("2025-03-01 00:00", tz="Europe/London")


def at(days_before, hours=0):
    return CUTOFF - pd.Timedelta(days=days_before, hours=hours)


def events(*rows):
    """rows: (customer_id, type, occurred_at, value, category)."""
    frame = pd.DataFrame(list(rows), columns=list(schema.EVENT_COLUMNS))
    return frame.astype({"customer_id": "int64", "type": "category", "value": "float64"}).assign(
        occurred_at=pd.to_datetime(frame["occurred_at"], utc=True),
        category=frame["category"].astype(object),
    )


def row(frame, customer_id):
    found = frame[frame["customer_id"] == customer_id]
    assert len(found) == 1, f"expected one row for customer {customer_id}, got {len(found)}"
    return found.iloc[0]


def test_only_customers_with_events_before_the_cutoff():
    frame = compute_snapshot(
        events(
            (1, "user_logged_in", at(3), None, None),
            (2, "user_logged_in", at(0), None, None),  # exactly at the cutoff: not before it
            (3, "order_placed", at(-1), 50.0, None),  # after the cutoff
            (4, "product_viewed", at(1), None, "Books"),
        ),
        CUTOFF,
    )
    assert frame["customer_id"].tolist() == [1, 4]


def test_events_after_the_cutoff_do_not_change_features():
    past = [
        (1, "order_placed", at(10), 20.0, None),
        (1, "basket_addition", at(2), 5.0, None),
        (1, "product_viewed", at(2), None, "Books"),
    ]
    future = [
        (1, "order_placed", at(-1), 300.0, None),
        (1, "order_cancelled", at(-1), None, None),
        (1, "product_ordered", at(-2), None, "Games"),
        (1, "user_logged_in", at(-3), None, None),
    ]
    before = compute_snapshot(events(*past), CUTOFF)
    both = compute_snapshot(events(*past, *future), CUTOFF)
    pd.testing.assert_frame_equal(before, both)
    assert row(both, 1)["frequency"] == 1
    assert row(both, 1)["open_basket_value"] == 5.0


def test_customer_without_orders():
    r = row(
        compute_snapshot(
            events(
                (7, "user_registered", at(40), None, None),
                (7, "basket_addition", at(5), 30.0, None),
                (7, "basket_line_removal", at(4), 10.0, None),
            ),
            CUTOFF,
        ),
        7,
    )
    assert r["tenure_days"] == 40
    assert r["frequency"] == 0 and r["monetary"] == 0 and r["orders_90d"] == 0 and r["revenue_90d"] == 0
    for name in ("avg_order_value", "recency_days", "first_order_days", "avg_days_between_orders"):
        assert math.isnan(r[name]), name
    assert r["open_basket_value"] == 20.0
    assert r["days_since_last_engagement"] == 4
    assert r["favourite_category"] == "" and r["favourite_categories"] == []


def test_one_order():
    r = row(compute_snapshot(events((5, "order_placed", at(12, hours=12), 80.5, None)), CUTOFF), 5)
    assert r["frequency"] == 1
    assert r["monetary"] == 80.5 and r["avg_order_value"] == 80.5
    assert r["recency_days"] == 12.5 and r["first_order_days"] == 12.5 and r["tenure_days"] == 12.5
    assert math.isnan(r["avg_days_between_orders"])
    assert r["orders_90d"] == 1 and r["revenue_90d"] == 80.5
    assert r["days_since_last_engagement"] == 12.5  # an order is engagement


def test_several_orders_and_the_90_day_window():
    r = row(
        compute_snapshot(
            events(
                (1, "user_registered", at(200), None, None),
                (1, "order_placed", at(120), 100.0, None),
                (1, "order_placed", at(90, hours=1), 10.0, None),  # just outside 90 days
                (1, "order_placed", at(90), 20.0, None),  # exactly 90 days: inside
                (1, "order_placed", at(30), 30.0, None),
            ),
            CUTOFF,
        ),
        1,
    )
    assert r["frequency"] == 4 and r["monetary"] == 160.0 and r["avg_order_value"] == 40.0
    assert r["first_order_days"] == 120 and r["recency_days"] == 30
    assert r["avg_days_between_orders"] == pytest.approx((120 - 30) / 3)
    assert r["orders_90d"] == 2 and r["revenue_90d"] == 50.0
    assert r["tenure_days"] == 200


def test_open_basket_counts_only_lines_after_the_last_order():
    frame = compute_snapshot(
        events(
            (1, "basket_addition", at(20), 100.0, None),  # bought in the order below
            (1, "order_placed", at(19), 100.0, None),
            (1, "basket_addition", at(19), 7.0, None),  # same instant as the order: not after it
            (1, "basket_addition", at(3), 15.0, None),
            (1, "basket_addition", at(2), 5.0, None),
            (1, "basket_line_removal", at(1), 5.0, None),
            (2, "basket_addition", at(3), 10.0, None),
            (2, "basket_line_removal", at(2), 25.0, None),  # removals larger than additions
            (3, "order_placed", at(9), 40.0, None),
            (3, "basket_addition", at(10), 40.0, None),  # before the order only
        ),
        CUTOFF,
    )
    assert row(frame, 1)["open_basket_value"] == 15.0
    assert row(frame, 2)["open_basket_value"] == 0.0
    assert row(frame, 3)["open_basket_value"] == 0.0


def test_30_and_90_day_activity_counts():
    rows = [
        (1, "product_viewed", at(1), None, "Books"),
        (1, "product_viewed", at(30), None, "Books"),
        (1, "product_viewed", at(31), None, "Books"),
        (1, "basket_addition", at(29), 9.0, None),
        (1, "basket_addition", at(45), 9.0, None),
        (1, "user_search", at(2), None, None),
        (1, "user_search", at(3), None, None),
        (1, "user_logged_in", at(10), None, None),
        (1, "user_logged_in", at(60), None, None),
        (1, "message_opened", at(89), None, None),
        (1, "message_opened", at(91), None, None),
        (1, "message_clicked", at(5), None, None),
    ]
    r = row(compute_snapshot(events(*rows), CUTOFF), 1)
    assert r["product_views_30d"] == 2
    assert r["basket_additions_30d"] == 1
    assert r["searches_30d"] == 2
    assert r["logins_30d"] == 1
    assert r["messages_opened_90d"] == 1
    assert r["messages_clicked_90d"] == 1


def test_cancellations_and_returns_count_all_time():
    r = row(
        compute_snapshot(
            events(
                (1, "order_cancelled", at(400), None, None),
                (1, "order_cancelled", at(2), None, None),
                (1, "order_line_returned", at(100), None, None),
                (1, "order_line_status_changed", at(1), None, None),
            ),
            CUTOFF,
        ),
        1,
    )
    assert r["cancellations"] == 2 and r["returns"] == 1


def test_days_since_last_engagement_ignores_other_types():
    frame = compute_snapshot(
        events(
            (1, "user_logged_in", at(8), None, None),
            (1, "order_status_changed", at(1), None, None),  # not engagement
            (1, "shop_specific_type", at(0.5), None, None),  # an extra type: not engagement
            (2, "order_line_returned", at(3), None, None),
        ),
        CUTOFF,
    )
    assert row(frame, 1)["days_since_last_engagement"] == 8
    assert math.isnan(row(frame, 2)["days_since_last_engagement"])
    assert row(frame, 2)["tenure_days"] == 3


def test_favourite_categories_weigh_orders_three_and_views_one():
    frame = compute_snapshot(
        events(
            # customer 1: Games 3 (one order), Books 2 (two views), Toys 3 (three views),
            # Music 1, Garden 1; "" and None are not categories.
            (1, "product_ordered", at(5), None, "Games"),
            (1, "product_viewed", at(5), None, "Books"),
            (1, "product_viewed", at(4), None, "Books"),
            (1, "product_viewed", at(4), None, "Toys"),
            (1, "product_viewed", at(3), None, "Toys"),
            (1, "product_viewed", at(2), None, "Toys"),
            (1, "product_viewed", at(2), None, "Music"),
            (1, "product_viewed", at(2), None, "Garden"),
            (1, "product_viewed", at(2), None, ""),
            (1, "product_viewed", at(2), None, None),
            (1, "basket_addition", at(1), 5.0, "Music"),  # other types do not count
            (1, "basket_addition", at(1), 5.0, "Music"),
            # customer 2: a single view; customer 3: two equal categories -> by name.
            (2, "product_viewed", at(1), None, "Music"),
            (3, "product_viewed", at(1), None, "Zoo"),
            (3, "product_viewed", at(1), None, "Art"),
            (3, "product_viewed", at(-1), None, "Zoo"),  # after the cutoff
        ),
        CUTOFF,
    )
    assert row(frame, 1)["favourite_category"] == "Games"  # tie with Toys at 3, by name
    assert row(frame, 1)["favourite_categories"] == ["Games", "Toys", "Books"]
    assert row(frame, 2)["favourite_categories"] == ["Music"]
    assert row(frame, 3)["favourite_category"] == "Art"
    assert row(frame, 3)["favourite_categories"] == ["Art", "Zoo"]
    lists = frame["favourite_categories"].tolist()
    assert all(type(value) is list for value in lists)


def test_dtypes_follow_the_schema_kinds():
    frame = compute_snapshot(
        events((1, "order_placed", at(2), 10.0, None), (2, "product_viewed", at(1), None, "Books")), CUTOFF
    )
    assert list(frame.columns) == ["customer_id", *schema.FEATURE_NAMES]
    assert frame["customer_id"].dtype == np.int64
    expected = {"int": np.dtype("int64"), "float": np.dtype("float64"), "str": np.dtype(object), "list": np.dtype(object)}
    for name, (kind, _) in schema.FEATURES.items():
        assert frame[name].dtype == expected[kind], name
    assert row(frame, 1)["favourite_category"] == ""


def test_row_order_in_the_input_does_not_matter():
    rows = [
        (2, "order_placed", at(10), 10.0, None),
        (1, "order_placed", at(50), 30.0, None),
        (2, "basket_addition", at(20), 4.0, None),
        (1, "order_placed", at(5), 50.0, None),
        (2, "order_placed", at(30), 20.0, None),
        (1, "basket_addition", at(3), 6.0, None),
    ]
    ordered = compute_snapshot(events(*rows), CUTOFF)
    shuffled = compute_snapshot(events(*reversed(rows)), CUTOFF)
    pd.testing.assert_frame_equal(ordered, shuffled)
    assert row(ordered, 2)["recency_days"] == 10 and row(ordered, 2)["first_order_days"] == 30
    assert row(ordered, 2)["open_basket_value"] == 0.0
    assert row(ordered, 1)["open_basket_value"] == 6.0


def test_plain_string_types_and_empty_frames():
    frame = events((1, "user_logged_in", at(1), None, None))
    frame["type"] = frame["type"].astype(str)
    assert row(compute_snapshot(frame, CUTOFF), 1)["logins_30d"] == 1
    empty = compute_snapshot(events(), CUTOFF)
    assert len(empty) == 0 and list(empty.columns) == ["customer_id", *schema.FEATURE_NAMES]


def test_a_naive_cutoff_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        compute_snapshot(events((1, "user_logged_in", at(1), None, None)), pd.Timestamp("2025-03-01"))


def test_compute_snapshots_matches_one_day_at_a_time():
    frame = events(
        (1, "user_registered", at(3), None, None),  # 26 Feb, 00:00
        (1, "order_placed", at(1, hours=2), 25.0, None),  # 27 Feb, 22:00
        (2, "product_viewed", at(1, hours=-1), None, "Books"),  # 28 Feb, 01:00: last day only
    )
    days = {dt.date(2025, 2, 26 + n): CUTOFF - pd.Timedelta(days=2 - n) for n in range(3)}
    both = compute_snapshots(frame, days)
    assert list(both.columns) == ["customer_id", "as_of", *schema.FEATURE_NAMES]
    assert both[["as_of", "customer_id"]].values.tolist() == [
        [dt.date(2025, 2, 26), 1],
        [dt.date(2025, 2, 27), 1],
        [dt.date(2025, 2, 28), 1],
        [dt.date(2025, 2, 28), 2],
    ]
    for as_of, cutoff in days.items():
        one = compute_snapshot(frame, cutoff)
        day = both[both["as_of"] == as_of].drop(columns="as_of").reset_index(drop=True)
        pd.testing.assert_frame_equal(day, one)
    assert both.iloc[0]["frequency"] == 0 and both.iloc[1]["frequency"] == 1


def test_compute_snapshots_labels_cutoffs_with_the_day_they_end():
    frame = events((1, "user_logged_in", at(5), None, None))
    # Midnight in London in summer is 23:00 UTC the day before: the label is the London day.
    cutoff = pd.Timestamp("2025-07-02 00:00", tz="Europe/London")
    both = compute_snapshots(frame, [cutoff, CUTOFF])
    assert both["as_of"].tolist() == [dt.date(2025, 2, 28), dt.date(2025, 7, 1)]
