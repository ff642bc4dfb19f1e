"""ml.lifecycle: learned thresholds, owner overrides, stage rules and transitions."""

import json
import math
import pickle

import numpy as np
import pandas as pd
import pytest

from oscar_journeys.ml import schema
from oscar_journeys.ml.lifecycle import Thresholds, assign_stages, fit_thresholds, transitions

NAN = math.nan


def snapshots(*rows):
    """rows: (customer_id, frequency, monetary, recency_days, first_order_days, avg_days_between_orders
    [, orders_90d]); orders_90d defaults to 1 when the last order is at most 90 days old, else 0."""
    rows = [row if len(row) == 7 else (*row, 1 if row[3] is not None and row[3] <= 90 else 0) for row in rows]
    frame = pd.DataFrame(
        list(rows),
        columns=[
            "customer_id", "frequency", "monetary", "recency_days", "first_order_days", "avg_days_between_orders",
            "orders_90d",
        ],
    )
    return frame.astype({"customer_id": "int64", "frequency": "int64", "monetary": "float64", "orders_90d": "int64"})


def repeat_buyers(n, gap, start=1000):
    return [(start + i, 3, 100.0, 5.0, 5.0 + 2 * gap, gap) for i in range(n)]


def thresholds(**kwargs):
    values = dict(cycle_days=30.0, new_days=30.0, at_risk_days=60.0, churned_days=120.0, high_value_monetary=500.0)
    values.update(kwargs)
    return Thresholds(**values)


# --- fit_thresholds --------------------------------------------------------------------------


def test_cycle_is_the_median_gap_of_repeat_buyers():
    # Exactly 20 repeat buyers: enough to learn from.
    rows = repeat_buyers(10, 20.0) + repeat_buyers(9, 40.0, start=2000) + [(3, 2, 50.0, 5.0, 105.0, 100.0)]
    # A one-order buyer and a prospect do not count, whatever their columns say.
    rows += [(1, 1, 10.0, 3.0, 3.0, 1.0), (2, 0, 0.0, NAN, NAN, 1.0)]
    fitted = fit_thresholds(snapshots(*rows))
    assert fitted.cycle_days == 30.0
    assert (fitted.new_days, fitted.at_risk_days, fitted.churned_days) == (30.0, 60.0, 120.0)
    assert fitted.overridden == ()


def test_cycle_falls_back_to_90_days_below_20_repeat_buyers():
    fitted = fit_thresholds(snapshots(*repeat_buyers(19, 10.0)))
    assert fitted.cycle_days == 90.0
    assert fitted.churned_days == 360.0


@pytest.mark.parametrize("gap, cycle", [(2.0, 7.0), (1000.0, 365.0)])
def test_cycle_is_clipped(gap, cycle):
    assert fit_thresholds(snapshots(*repeat_buyers(25, gap))).cycle_days == cycle


def test_high_value_is_the_quantile_of_buyers_monetary():
    buyers = [(i, 1, float(i * 10), 1.0, 1.0, NAN) for i in range(1, 11)]  # 10 .. 100
    prospects = [(100 + i, 0, 0.0, NAN, NAN, NAN) for i in range(50)]
    fitted = fit_thresholds(snapshots(*buyers, *prospects))
    assert fitted.high_value_monetary == pytest.approx(np.quantile(np.arange(10, 101, 10), 0.8))


def test_without_buyers_nobody_is_high_value_and_the_dict_is_json_safe():
    fitted = fit_thresholds(snapshots((1, 0, 0.0, NAN, NAN, NAN)))
    assert fitted.high_value_monetary == math.inf
    as_dict = fitted.as_dict()
    assert as_dict["high_value_monetary"] is None
    assert json.loads(json.dumps(as_dict, allow_nan=False)) == as_dict


def test_empty_frame_fits_defaults():
    fitted = fit_thresholds(snapshots())
    assert fitted.cycle_days == 90.0 and fitted.high_value_monetary == math.inf


# --- overrides -------------------------------------------------------------------------------


def test_an_override_wins_and_the_others_are_learned():
    rows = repeat_buyers(30, 20.0)
    fitted = fit_thresholds(snapshots(*rows), {"churned_days": 200, "high_value_quantile": 0.5})
    assert fitted.churned_days == 200.0
    assert (fitted.new_days, fitted.at_risk_days) == (20.0, 40.0)
    assert fitted.high_value_quantile == 0.5
    assert fitted.overridden == ("churned_days", "high_value_quantile")
    assert fitted.as_dict()["overridden"] == ["churned_days", "high_value_quantile"]


def test_a_none_override_means_not_overridden():
    fitted = fit_thresholds(snapshots(*repeat_buyers(30, 20.0)), {"new_days": None})
    assert fitted.new_days == 20.0 and fitted.overridden == ()


@pytest.mark.parametrize(
    "overrides, key",
    [
        ({"cycle_days": 30}, "cycle_days"),
        ({"new_days": 0}, "new_days"),
        ({"at_risk_days": -5}, "at_risk_days"),
        ({"churned_days": math.inf}, "churned_days"),
        ({"new_days": "30"}, "new_days"),
        ({"new_days": True}, "new_days"),
        ({"high_value_quantile": 1.0}, "high_value_quantile"),
        ({"high_value_quantile": 0}, "high_value_quantile"),
        ({"at_risk_days": 100, "churned_days": 100}, "at_risk_days"),
        ({"at_risk_days": 500}, "at_risk_days"),  # above the learned churned_days (360)
        ({"churned_days": 100}, "churned_days"),  # below the learned at_risk_days (180)
    ],
)
def test_bad_overrides_name_the_key(overrides, key):
    with pytest.raises(ValueError, match=key):
        fit_thresholds(snapshots(), overrides)


# --- assign_stages ---------------------------------------------------------------------------

STAGE_ROWS = [
    # customer, frequency, monetary, recency, first order, gap -> expected without previous
    ((1, 0, 0.0, NAN, NAN, NAN), schema.PROSPECT),
    ((2, 5, 900.0, 121.0, 400.0, 70.0), schema.CHURNED),
    ((3, 5, 900.0, 61.0, 400.0, 70.0), schema.AT_RISK),
    ((4, 1, 900.0, 10.0, 10.0, NAN), schema.NEW),  # new beats high value
    ((5, 1, 50.0, 31.0, 31.0, NAN), schema.ACTIVE),  # one order, but no longer new
    ((6, 3, 500.0, 60.0, 200.0, 70.0), schema.HIGH_VALUE),  # boundaries: 60 is not > 60, 500 >= 500
    ((7, 3, 499.0, 5.0, 200.0, 70.0), schema.ACTIVE),
    ((8, 2, 50.0, 120.0, 300.0, 180.0), schema.AT_RISK),  # 120 is not > 120
]


def test_each_rule_and_its_boundaries():
    frame = snapshots(*(row for row, _ in STAGE_ROWS))
    stages = assign_stages(frame, thresholds())
    assert stages.dtype == object
    assert list(stages) == [stage for _, stage in STAGE_ROWS]


def test_reactivated_needs_yesterdays_churned_or_reactivated_stage():
    frame = snapshots(
        (1, 4, 900.0, 2.0, 400.0, 100.0),  # was churned, ordered again -> reactivated
        (2, 4, 100.0, 30.0, 400.0, 100.0),  # was reactivated, still within new_days -> stays
        (3, 4, 100.0, 31.0, 400.0, 100.0),  # was reactivated, gap past new_days -> active
        (4, 4, 100.0, 2.0, 400.0, 100.0),  # was at risk: recovering is not reactivating
        (5, 4, 100.0, 130.0, 400.0, 100.0),  # was reactivated, now past churned_days -> churned
        (6, 4, 100.0, 2.0, 400.0, 100.0),  # not in previous -> active
        (7, 5, 120.0, 3.0, 400.0, 100.0, 2),  # was reactivated, ordered again -> active again
    )
    previous = pd.Series(
        [schema.CHURNED, schema.REACTIVATED, schema.REACTIVATED, schema.AT_RISK, schema.REACTIVATED, schema.REACTIVATED],
        index=[1, 2, 3, 4, 5, 7],
    )
    stages = assign_stages(frame, thresholds(), previous)
    assert list(stages) == [
        schema.REACTIVATED, schema.REACTIVATED, schema.ACTIVE, schema.ACTIVE, schema.CHURNED, schema.ACTIVE,
        schema.ACTIVE,
    ]
    # Without yesterday's stages, nobody is reactivated.
    assert schema.REACTIVATED not in set(assign_stages(frame, thresholds()))


def test_row_order_is_kept():
    frame = snapshots(*(row for row, _ in STAGE_ROWS))
    expected = np.array([stage for _, stage in STAGE_ROWS], dtype=object)
    order = np.random.default_rng(3).permutation(len(frame))
    shuffled = frame.iloc[order]
    assert list(assign_stages(shuffled, thresholds())) == list(expected[order])
    previous = pd.Series(schema.CHURNED, index=frame["customer_id"].to_numpy())
    assert list(assign_stages(shuffled.reset_index(drop=True), thresholds(), previous)) == list(
        assign_stages(frame, thresholds(), previous)[order]
    )


def test_every_stage_is_a_schema_code():
    frame = snapshots(*(row for row, _ in STAGE_ROWS))
    assert set(assign_stages(frame, thresholds())) <= set(schema.STAGES)
    assert len(assign_stages(snapshots(), thresholds())) == 0


def test_thresholds_are_picklable():
    fitted = fit_thresholds(snapshots(*repeat_buyers(30, 20.0)), {"new_days": 10})
    assert pickle.loads(pickle.dumps(fitted)) == fitted


# --- transitions -----------------------------------------------------------------------------


def test_transitions_list_changes_sorted_by_customer():
    previous = pd.Series({5: schema.ACTIVE, 2: schema.CHURNED, 3: schema.NEW, 9: schema.ACTIVE})
    current = pd.Series(
        {
            5: schema.AT_RISK,  # changed
            3: schema.NEW,  # unchanged
            2: schema.REACTIVATED,  # changed
            7: schema.NEW,  # new customer with an order: from ""
            8: schema.PROSPECT,  # new prospect: not a transition
        }
    )
    out = transitions(previous, current)
    assert list(out.columns) == ["customer_id", "from", "to"]
    assert out["customer_id"].dtype == "int64"
    assert out.to_dict("records") == [
        {"customer_id": 2, "from": schema.CHURNED, "to": schema.REACTIVATED},
        {"customer_id": 5, "from": schema.ACTIVE, "to": schema.AT_RISK},
        {"customer_id": 7, "from": "", "to": schema.NEW},
    ]


def test_transitions_without_previous_day():
    current = pd.Series({2: schema.PROSPECT, 1: schema.ACTIVE})
    out = transitions(pd.Series(dtype=object), current)
    assert out.to_dict("records") == [{"customer_id": 1, "from": "", "to": schema.ACTIVE}]
    assert transitions(None, current).equals(out)
    assert transitions(current, current).empty
