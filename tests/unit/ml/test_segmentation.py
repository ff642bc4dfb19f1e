"""ml.segmentation: k chosen by silhouette, stable numbers across refits, assignment."""

import math
import pickle

import numpy as np
import pandas as pd
import pytest

from oscar_journeys.ml import segmentation
from oscar_journeys.ml.exceptions import InsufficientDataError
from oscar_journeys.ml.segmentation import SEGMENT_FEATURES, fit_micro_segments

NAN = math.nan
COLUMNS = ("frequency", "monetary", "avg_order_value", "recency_days", "orders_90d", "revenue_90d",
           "days_since_last_engagement", "product_views_30d", "basket_additions_30d", "messages_opened_90d",
           "tenure_days")  # fmt: skip
COUNTS = ("frequency", "orders_90d", "product_views_30d", "basket_additions_30d", "messages_opened_90d")
# Well separated kinds of customer, in COLUMNS order.
GROUPS = {
    "browsers": (0, 0.0, NAN, NAN, 0, 0.0, 2.0, 20, 3, 0, 30.0),  # no order: recency NaN
    "lapsed": (1, 40.0, 40.0, 300.0, 0, 0.0, 280.0, 0, 0, 0, 400.0),
    "regulars": (4, 320.0, 80.0, 45.0, 1, 80.0, 20.0, 3, 1, 2, 500.0),
    "loyal": (12, 2400.0, 200.0, 10.0, 3, 600.0, 1.0, 15, 4, 6, 900.0),
    "dormant": (0, 0.0, NAN, NAN, 0, 0.0, 600.0, 0, 0, 0, 700.0),
}
SIZES = {"browsers": 160, "lapsed": 120, "regulars": 90, "loyal": 60}


def customers(sizes=SIZES, seed=0, noise=0.08, shuffle=False, first_id=1):
    """A snapshot-like frame: each group's profile times lognormal noise; ``group`` column kept."""
    rng = np.random.default_rng(seed)
    parts = []
    for name, size in sizes.items():
        values = np.tile(np.array(GROUPS[name], dtype=float), (size, 1))
        values *= rng.lognormal(0.0, noise, values.shape)
        part = pd.DataFrame(values, columns=list(COLUMNS))
        for column in COUNTS:
            part[column] = part[column].round()
        part["group"] = name
        parts.append(part)
    frame = pd.concat(parts, ignore_index=True)
    frame.insert(0, "customer_id", np.arange(first_id, first_id + len(frame), dtype="int64"))
    frame["frequency"] = frame["frequency"].astype("int64")
    frame["searches_30d"] = 0  # a column the segmentation does not use
    if shuffle:
        frame = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    return frame


def numbers_by_group(model, frame):
    """{group: number}, asserting each group lands in a single segment."""
    assigned = pd.Series(model.assign(frame), index=frame.index)
    out = {}
    for name, numbers in assigned.groupby(frame["group"]):
        assert numbers.nunique() == 1, f"group {name} split over segments {sorted(numbers.unique())}"
        out[name] = int(numbers.iloc[0])
    return out


@pytest.fixture(scope="module")
def first():
    return fit_micro_segments(customers(), k_min=2, k_max=6)


def test_k_by_silhouette_and_first_numbers_by_size(first):
    assert first.k == 4
    assert 0.5 < first.silhouette <= 1.0
    assert numbers_by_group(first, customers()) == {"browsers": 1, "lapsed": 2, "regulars": 3, "loyal": 4}
    assert first.numbers == [1, 2, 3, 4]
    assert first.sizes == {1: 160, 2: 120, 3: 90, 4: 60}


def test_centroids_are_in_feature_units(first):
    centroids = first.centroids
    assert list(centroids.index) == [1, 2, 3, 4] and list(centroids.columns) == list(SEGMENT_FEATURES)
    assert centroids.loc[4, "monetary"] == pytest.approx(2400, rel=0.1)
    assert centroids.loc[2, "recency_days"] == pytest.approx(300, rel=0.1)
    # Browsers have no order: recency is filled with their tenure (about 30 days).
    assert centroids.loc[1, "recency_days"] == pytest.approx(30, rel=0.1)
    assert centroids.loc[1, "frequency"] == pytest.approx(0, abs=1e-9)


def test_describe_names_the_most_distinctive_features(first):
    described = first.describe()
    assert sorted(described) == [1, 2, 3, 4]
    for number, items in described.items():
        assert 1 <= len(items) <= 3
        zs = [item["z"] for item in items]
        assert [abs(z) for z in zs] == sorted((abs(z) for z in zs), reverse=True)
        for item in items:
            assert item["feature"] in SEGMENT_FEATURES
            assert item["level"] == ("high" if item["z"] > 0 else "low")
            assert abs(item["z"]) >= segmentation.DESCRIBE_MIN_Z
    # z is the centre in scaled units: the pipeline's scaling of the feature-unit centroid.
    scaled = first.pipeline[:-1].transform(first.centroids)
    top = described[4][0]
    assert top["z"] == pytest.approx(scaled[3, SEGMENT_FEATURES.index(top["feature"])], abs=1e-3)
    # The loyal segment is above average on spend and frequency wherever they are named.
    for item in described[4]:
        if item["feature"] in ("frequency", "monetary", "orders_90d", "revenue_90d", "messages_opened_90d"):
            assert item["level"] == "high"


def test_refit_on_the_same_data_keeps_the_numbers(first):
    frame = customers()
    for random_state in (0, 7):  # another seed: other k-means labels, same numbers
        again = fit_micro_segments(
            frame, k_min=2, k_max=6, previous=first.centroids.to_dict("index"), random_state=random_state
        )
        assert again.numbers == first.numbers
        assert (again.assign(frame) == first.assign(frame)).all()


def test_refit_on_perturbed_shuffled_data_keeps_the_numbers(first):
    # Other noise, other sizes (lapsed now outnumber browsers), other row order, other ids.
    sizes = {"lapsed": 170, "browsers": 130, "loyal": 80, "regulars": 70}
    frame = customers(sizes, seed=5, noise=0.12, shuffle=True, first_id=10_000)
    # previous as read back from JSON: string keys; and a feature the old model lacked.
    previous = {
        str(number): {name: value for name, value in centre.items() if name != "messages_opened_90d"}
        for number, centre in first.centroids.to_dict("index").items()
    }
    again = fit_micro_segments(frame, k_min=2, k_max=6, previous=previous)
    assert numbers_by_group(again, frame) == {"browsers": 1, "lapsed": 2, "regulars": 3, "loyal": 4}
    assert again.sizes == {1: 130, 2: 170, 3: 70, 4: 80}


def test_a_new_cluster_gets_a_new_number(first):
    frame = customers({**SIZES, "dormant": 100}, seed=2)
    again = fit_micro_segments(frame, k_min=2, k_max=7, previous=first.centroids)
    assert again.k == 5
    assert numbers_by_group(again, frame) == {
        "browsers": 1, "lapsed": 2, "regulars": 3, "loyal": 4, "dormant": 5,
    }


def test_a_far_cluster_does_not_inherit_a_vanished_number(first):
    # Regulars (3) are gone and dormant customers appeared: four clusters against four old
    # centres, but dormant is too far from the regulars' centre to take their number.
    frame = customers({"browsers": 160, "lapsed": 120, "loyal": 60, "dormant": 100}, seed=3)
    again = fit_micro_segments(frame, k_min=2, k_max=6, previous=first.centroids)
    assert numbers_by_group(again, frame) == {"browsers": 1, "lapsed": 2, "loyal": 4, "dormant": 5}
    assert again.numbers == [1, 2, 4, 5]


def test_assign_keeps_row_order_and_covers_everyone(first):
    frame = customers()
    numbers = first.assign(frame)
    assert numbers.dtype == np.int64 and len(numbers) == len(frame)
    order = np.random.default_rng(4).permutation(len(frame))
    assert (first.assign(frame.iloc[order]) == numbers[order]).all()
    # A row with nothing known still gets a segment.
    blank = pd.DataFrame({"customer_id": [1], "frequency": [0]})
    assert first.assign(blank)[0] in first.numbers
    assert first.assign(frame.iloc[:0]).shape == (0,)


def test_picklable(first):
    frame = customers(seed=9)
    loaded = pickle.loads(pickle.dumps(first))
    assert (loaded.assign(frame) == first.assign(frame)).all()
    assert loaded.describe() == first.describe() and loaded.sizes == first.sizes


@pytest.mark.parametrize("rows, k_min, needed", [(49, 4, 50), (59, 6, 60)])
def test_too_few_rows_is_insufficient(rows, k_min, needed):
    frame = customers({"browsers": rows})
    with pytest.raises(InsufficientDataError, match=f"at least {needed} customers"):
        fit_micro_segments(frame, k_min=k_min, k_max=k_min + 2)


def test_identical_customers_are_insufficient():
    frame = customers({"browsers": 200}, noise=0.0)
    with pytest.raises(InsufficientDataError, match="distinct customer profiles"):
        fit_micro_segments(frame)


def test_large_frames_are_sampled(monkeypatch):
    monkeypatch.setattr(segmentation, "MAX_FIT_ROWS", 300)
    monkeypatch.setattr(segmentation, "MAX_SILHOUETTE_ROWS", 100)
    frame = customers()
    model = fit_micro_segments(frame, k_min=2, k_max=6)
    assert sum(model.sizes.values()) == 300
    assert model.k == 4 and len(model.assign(frame)) == len(frame)


def test_bad_k_range():
    with pytest.raises(ValueError, match="k_min"):
        fit_micro_segments(customers(), k_min=5, k_max=4)


@pytest.mark.parametrize(
    "scores, previous_k, chosen",
    [
        ({4: 0.50, 5: 0.51, 6: 0.40}, None, 5),  # no last model: the best silhouette
        ({4: 0.50, 5: 0.51, 6: 0.40}, 4, 4),  # a near tie: last night's k stays
        ({4: 0.50, 5: 0.60, 6: 0.40}, 4, 5),  # clearly better: it switches
        ({4: 0.50, 5: 0.51, 6: 0.40}, 9, 5),  # last k out of range: the best
    ],
)
def test_the_number_of_segments_is_sticky(monkeypatch, scores, previous_k, chosen):
    monkeypatch.setattr(segmentation, "_silhouette", lambda kmeans, x, check: scores[kmeans.n_clusters])
    model = fit_micro_segments(customers(), k_min=4, k_max=6, previous_k=previous_k)
    assert model.k == chosen
