"""ManualPriorityPolicy on small frames: the highest priority wins, ties go to the lowest id,
and the output has the shape of issue 5's JourneyPolicy.decide."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from oscar_journeys.optimizer import ManualPriorityPolicy

NOW = dt.datetime(2025, 5, 1, 12, tzinfo=dt.timezone.utc)
CAMPAIGNS = pd.DataFrame({"campaign_id": [1, 2, 3, 4], "priority": [10, 50, 50, 90]})


def eligible(*pairs):
    return pd.DataFrame(pairs, columns=["customer_id", "campaign_id"])


def test_highest_priority_wins_per_customer():
    decided = ManualPriorityPolicy(CAMPAIGNS).decide(
        pd.DataFrame(), eligible((7, 1), (7, 2), (8, 4), (8, 1), (9, 1)), NOW
    )
    assert list(decided["customer_id"]) == [7, 8, 9]
    assert list(decided["campaign_id"]) == [2, 4, 1]


def test_equal_priorities_go_to_the_lowest_campaign_id():
    decided = ManualPriorityPolicy(CAMPAIGNS).decide(None, eligible((5, 3), (5, 2)), NOW)
    assert decided["campaign_id"].tolist() == [2]


def test_output_has_the_journey_policy_shape():
    decided = ManualPriorityPolicy(CAMPAIGNS).decide(None, eligible((5, 3), (6, 1)), NOW, seed=3)
    assert list(decided.columns) == ["customer_id", "campaign_id", "propensity", "expected_value", "control"]
    assert decided["propensity"].tolist() == [1.0, 1.0]
    assert decided["expected_value"].isna().all()
    assert decided["control"].dtype == bool and not decided["control"].any()


def test_empty_eligible_gives_an_empty_frame():
    decided = ManualPriorityPolicy(CAMPAIGNS).decide(None, eligible(), NOW)
    assert len(decided) == 0 and "campaign_id" in decided


def test_an_unknown_campaign_is_an_error_naming_it():
    with pytest.raises(ValueError, match=r"\[99\]"):
        ManualPriorityPolicy(CAMPAIGNS).decide(None, eligible((1, 99)), NOW)


def test_the_campaigns_frame_is_checked():
    with pytest.raises(ValueError, match="priority"):
        ManualPriorityPolicy(pd.DataFrame({"campaign_id": [1]}))
    with pytest.raises(ValueError, match="more than once"):
        ManualPriorityPolicy(pd.DataFrame({"campaign_id": [1, 1], "priority": [1, 2]}))


def test_large_input_is_decided_in_one_pass():
    rng = np.random.default_rng(0)
    n = 200_000
    frame = eligible()
    frame = pd.DataFrame({"customer_id": rng.integers(0, 50_000, n), "campaign_id": rng.integers(1, 5, n)})
    decided = ManualPriorityPolicy(CAMPAIGNS).decide(None, frame, NOW)
    best = (
        frame.merge(CAMPAIGNS, on="campaign_id")
        .sort_values(["customer_id", "priority", "campaign_id"], ascending=[True, False, True])
        .drop_duplicates("customer_id")
    )
    assert decided["campaign_id"].tolist() == best["campaign_id"].tolist()
