"""ml.rfm: quintile bins over buyers, scores on ties, non-buyers, the segment map."""

import json
import math
import pickle

import numpy as np
import pandas as pd
import pytest

from oscar_journeys.ml import schema
from oscar_journeys.ml.exceptions import InsufficientDataError
from oscar_journeys.ml.rfm import SEGMENT_MAP, RFMBins, fit_rfm, score_rfm

NAN = math.nan


def snapshots(rows, index=None):
    """rows: (customer_id, frequency, monetary, recency_days)."""
    frame = pd.DataFrame(list(rows), columns=["customer_id", "frequency", "monetary", "recency_days"], index=index)
    return frame.astype({"customer_id": "int64", "frequency": "int64", "monetary": "float64"})


def ten_buyers():
    """Frequency, monetary and recency each take 10 distinct values: two buyers per quintile."""
    return [(i, i, 10.0 * i, 100.0 - 10 * i) for i in range(1, 11)]


def test_distinct_values_fall_two_per_quintile():
    frame = snapshots(ten_buyers())
    out = score_rfm(frame, fit_rfm(frame))
    # Customer i has the i-th lowest frequency and monetary and the i-th highest recency
    # (the i-th worst), so R = F = M.
    expected = [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert list(out["rfm_score"]) == [f"{s}{s}{s}" for s in expected]


def test_ties_do_not_break_the_scores():
    # 60 % of buyers ordered once: three of the four frequency edges are 1.
    rows = [(i, 1, 20.0 + i, float(i)) for i in range(1, 31)]
    rows += [(100 + i, 2, 50.0, 5.0) for i in range(10)] + [(200 + i, 7, 300.0, 5.0) for i in range(10)]
    frame = snapshots(rows)
    bins = fit_rfm(frame)
    assert len(bins.frequency) == 3 and list(bins.frequency) == sorted(set(bins.frequency))
    out = score_rfm(frame, bins)
    f = out["rfm_score"].str[1].astype(int)
    assert f.between(1, 5).all()
    assert (f[frame["frequency"] == 1] == 1).all()  # the big tie shares the lowest score
    assert (f[frame["frequency"] == 7] > f[frame["frequency"] == 2].max()).all()
    for digits in out["rfm_score"]:
        assert len(digits) == 3 and set(digits) <= set("12345")


def test_all_buyers_identical():
    frame = snapshots([(i, 1, 30.0, 10.0) for i in range(6)])
    out = score_rfm(frame, fit_rfm(frame))
    # One edge at the shared value: worst F and M, best R.
    assert set(out["rfm_score"]) == {"511"}
    assert set(out["rfm_segment"]) == {"new_customers"}


def test_recency_lower_is_better():
    frame = snapshots(ten_buyers())
    bins = fit_rfm(frame)
    probe = snapshots([(1, 5, 50.0, 0.0), (2, 5, 50.0, 1000.0)])
    r = score_rfm(probe, bins)["rfm_score"].str[0].astype(int)
    assert list(r) == [5, 1]


def test_non_buyers_get_empty_strings_and_do_not_shape_the_bins():
    buyers = ten_buyers()
    prospects = [(100 + i, 0, 0.0, NAN) for i in range(100)]
    with_prospects = snapshots(buyers + prospects)
    bins = fit_rfm(with_prospects)
    assert bins == fit_rfm(snapshots(buyers))
    out = score_rfm(with_prospects, bins)
    assert (out["rfm_score"].iloc[10:] == "").all()
    assert (out["rfm_segment"].iloc[10:] == "").all()
    assert (out["rfm_score"].iloc[:10] != "").all()
    assert out["rfm_segment"].iloc[:10].isin(schema.RFM_SEGMENTS).all()


def test_unseen_extremes_stay_within_1_to_5():
    bins = fit_rfm(snapshots(ten_buyers()))
    probe = snapshots([(1, 10_000, 1e9, 0.0), (2, 1, 0.0, 1e6), (3, 1, NAN, NAN)])
    assert list(score_rfm(probe, bins)["rfm_score"]) == ["555", "111", "111"]


def test_below_five_buyers_is_insufficient():
    rows = [(i, 1, 10.0, 1.0) for i in range(4)] + [(100 + i, 0, 0.0, NAN) for i in range(50)]
    with pytest.raises(InsufficientDataError, match="5 customers with an order, found 4"):
        fit_rfm(snapshots(rows))


def test_index_and_row_order_are_kept():
    rows = ten_buyers() + [(99, 0, 0.0, NAN)]
    frame = snapshots(rows, index=[f"r{i}" for i in range(len(rows))])
    bins = fit_rfm(frame)
    straight = score_rfm(frame, bins)
    order = np.random.default_rng(1).permutation(len(frame))
    shuffled = score_rfm(frame.iloc[order], bins)
    assert list(shuffled.index) == list(frame.index[order])
    assert shuffled.equals(straight.iloc[order])


# --- segment map -----------------------------------------------------------------------------


def test_every_r_fm_pair_maps_to_exactly_one_known_segment():
    assert sorted(SEGMENT_MAP) == [1, 2, 3, 4, 5]
    assert all(len(SEGMENT_MAP[r]) == 5 for r in SEGMENT_MAP)
    used = {SEGMENT_MAP[r][fm - 1] for r in range(1, 6) for fm in range(1, 6)}
    assert used == set(schema.RFM_SEGMENTS)


@pytest.mark.parametrize(
    "cells, segment",
    [
        ([(4, 4), (4, 5), (5, 4), (5, 5)], "champions"),
        ([(5, 1)], "new_customers"),
        ([(1, 5)], "cannot_lose"),
        ([(1, 3), (1, 4), (2, 3), (2, 4)], "at_risk"),
        ([(1, 1), (1, 2)], "lost"),
        ([(2, 1), (2, 2)], "hibernating"),
    ],
)
def test_anchor_cells(cells, segment):
    for r, fm in cells:
        assert SEGMENT_MAP[r][fm - 1] == segment


def test_score_rfm_uses_the_map_with_fm_the_floor_of_the_mean():
    bins = RFMBins(
        recency=(10.0, 20.0, 30.0, 40.0), frequency=(1.0, 2.0, 3.0, 4.0), monetary=(10.0, 20.0, 30.0, 40.0)
    )
    # recency 5 -> R5, 45 -> R1; frequency f -> F f; monetary 10 m -> M m.
    probe = snapshots(
        [
            (1, 5, 50.0, 5.0),  # 555: champions
            (2, 1, 10.0, 5.0),  # 511: new customers
            (3, 1, 20.0, 5.0),  # 512: FM floor(1.5) = 1 -> new customers
            (4, 5, 50.0, 45.0),  # 155: cannot lose
            (5, 3, 40.0, 45.0),  # 134: FM 3 -> at risk
            (6, 2, 10.0, 45.0),  # 121: FM 1 -> lost
            (7, 3, 30.0, 25.0),  # 333: need attention
        ]
    )
    out = score_rfm(probe, bins)
    assert list(out["rfm_score"]) == ["555", "511", "512", "155", "134", "121", "333"]
    assert list(out["rfm_segment"]) == [
        "champions", "new_customers", "new_customers", "cannot_lose", "at_risk", "lost", "need_attention",
    ]


def test_bins_are_picklable_and_json_safe():
    bins = fit_rfm(snapshots(ten_buyers()))
    assert pickle.loads(pickle.dumps(bins)) == bins
    as_dict = bins.as_dict()
    assert json.loads(json.dumps(as_dict, allow_nan=False)) == as_dict
    assert as_dict["buyers"] == 10 and len(as_dict["monetary"]) == 4
