"""The nightly chain end to end: training runs, scored snapshots, stage changes on the
timeline, stable micro-segment numbers, the task and the command, and stage-change
campaigns."""

import datetime as dt
import io
import pickle
from unittest import mock

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.db.models import Count, F

from oscar_journeys import tasks
from oscar_journeys.ml import schema
from oscar_journeys.models import Campaign, CampaignStep, Enrollment, Event, MicroSegment, Snapshot, TrainingRun
from oscar_journeys.selectors import snapshots_frame
from oscar_journeys.services import nightly
from oscar_journeys.services.nightly import models_of, nightly_train
from oscar_journeys.services.snapshots import shop_day_end, snapshot_build
from oscar_journeys.services.triggers import triggers_scan
from tests.integration.nightly_data import make_shop

pytestmark = pytest.mark.django_db

UTC = dt.timezone.utc
DAY = dt.date(2025, 6, 30)
NOW = dt.datetime(2025, 7, 1, 2, 15, tzinfo=UTC)


@pytest.fixture(autouse=True)
def fresh_model_cache():
    nightly.models_of.cache_clear()  # versions restart in each test database
    yield
    nightly.models_of.cache_clear()


@pytest.fixture
def kinds(db):
    return make_shop(end=shop_day_end(DAY))


def test_training_stores_a_versioned_run_with_its_metrics_and_segments(kinds):
    run = nightly_train(as_of=DAY, now=NOW)
    assert (run.version, run.status, run.as_of) == (1, TrainingRun.SUCCEEDED, DAY)
    assert run.customers == 360 and run.finished_at is not None
    metrics = run.metrics
    # Lapsing customers are told apart from loyal ones far better than by chance.
    assert metrics["churn_auc"] > 0.7
    assert 0 <= metrics["churn_brier"] < 0.25
    assert 0 < metrics["recency_auc"] <= 1
    assert metrics["clv_holdout_rows"] > 0 and metrics["clv_orders_mae"] >= 0
    assert 4 <= metrics["segments"] <= 10
    assert run.params["skipped"] == {}
    assert set(run.params) >= {"lifecycle", "rfm", "clv"}
    segments = MicroSegment.objects.filter(active=True)
    assert segments.count() == metrics["segments"]
    assert sorted(segments.values_list("number", flat=True)) == list(range(1, metrics["segments"] + 1))
    assert all(s.first_run_id == run.pk == s.last_run_id and s.size > 0 and s.description for s in segments)
    assert pickle.loads(bytes(run.artifact)).churn is not None
    assert nightly_train(as_of=DAY, now=NOW).version == 2


def test_the_build_scores_every_row_with_the_latest_run(kinds):
    run = nightly_train(as_of=DAY, now=NOW)
    result = snapshot_build(as_of=DAY, now=NOW)
    assert result.training_run == run.version and result.rows == 360
    frame = snapshots_frame(as_of=DAY, scores=True)
    assert (frame["lifecycle_stage"] != "").all()
    browsers = frame["customer_id"].isin(kinds["browsers"])
    assert (frame.loc[browsers, "lifecycle_stage"] == schema.PROSPECT).all()
    assert frame.loc[browsers, "churn_probability"].isna().all()
    buyers = frame[frame["frequency"] > 0]
    assert buyers["churn_probability"].between(0, 1).all()
    assert buyers["clv"].notna().all() and (buyers["rfm_score"].str.len() == 3).all()
    assert frame["micro_segment"].notna().all()
    # Stored = what the models compute on the same features.
    expected = models_of(run.version).score(frame[list(schema.SNAPSHOT_COLUMNS)])
    for name in ("lifecycle_stage", "rfm_segment"):
        assert frame[name].tolist() == expected[name].tolist()
    np.testing.assert_allclose(frame["churn_probability"], expected["churn_probability"], rtol=1e-6)
    np.testing.assert_allclose(frame["clv"], expected["clv"], rtol=1e-6)
    days = expected["next_order_days"].round()
    np.testing.assert_array_equal(frame["next_order_days"].isna(), days.isna())
    np.testing.assert_allclose(frame["next_order_days"].dropna(), days.dropna())
    assert set(Snapshot.objects.values_list("training_run", flat=True)) == {run.version}
    # The lapsing customers are mostly at risk or churned, the loyal ones mostly not.
    lapsing = frame[frame["customer_id"].isin(kinds["lapsing"])]
    loyal = frame[frame["customer_id"].isin(kinds["loyal"])]
    gone = [schema.AT_RISK, schema.CHURNED]
    assert lapsing["lifecycle_stage"].isin(gone).mean() > 0.6 > loyal["lifecycle_stage"].isin(gone).mean()
    assert lapsing["churn_probability"].mean() > loyal["churn_probability"].mean() + 0.3


def test_without_a_training_run_the_scores_stay_empty(kinds):
    result = snapshot_build(as_of=DAY, now=NOW)
    assert result.training_run is None and result.rows == 360
    assert set(Snapshot.objects.values_list("lifecycle_stage", flat=True)) == {""}
    assert not Snapshot.objects.filter(churn_probability__isnull=False).exists()


def stage_events():
    return Event.objects.filter(type=schema.LIFECYCLE_STAGE_CHANGED)


def test_stage_changes_are_recorded_once_against_the_day_before(kinds):
    nightly_train(as_of=DAY, now=NOW)
    first = DAY - dt.timedelta(days=20)
    snapshot_build(as_of=first, now=NOW)
    assert not stage_events().exists()  # nothing scored before: no changes to record
    result = snapshot_build(as_of=DAY, backfill_days=19, now=NOW)
    changes = list(stage_events().values_list("customer_id", "occurred_at", "payload", "source"))
    assert result.stage_changes == len(changes) > 0
    stored = {
        (day, cid): stage for cid, day, stage in Snapshot.objects.values_list("customer_id", "as_of", "lifecycle_stage")
    }
    for cid, at, payload, source in changes:
        day = (at - dt.timedelta(microseconds=1)).astimezone(shop_day_end(DAY).tzinfo).date()
        assert at == shop_day_end(day) and source == "journeys"
        assert stored[(day, cid)] == payload["to"] != payload["from"] == stored.get((day - dt.timedelta(days=1), cid), "")
    # Every change between two stored days is there, once.
    expected = sum(
        1 for (day, cid), stage in stored.items()
        if day > first and stored.get((day - dt.timedelta(days=1), cid), "") not in ("", stage)
    )
    assert expected == len([c for c in changes if c[2]["from"]])
    again = snapshot_build(as_of=DAY, backfill_days=19, now=NOW)
    assert stage_events().count() == len(changes) and again.stage_changes == len(changes)
    assert not stage_events().values("customer", "occurred_at").annotate(n=Count("pk")).filter(n__gt=1).exists()


def test_retraining_keeps_the_segment_numbers_and_names(kinds):
    # The service hands the stored centres to the fit, stores what it matched under the same
    # numbers and keeps the owner's names (the matching itself, on shifted and resampled
    # data, is tested in tests/unit/ml/test_segmentation.py).
    first = nightly_train(as_of=DAY, now=NOW)
    snapshot_build(as_of=DAY, now=NOW)
    before = snapshots_frame(as_of=DAY, scores=True).set_index("customer_id")["micro_segment"]
    largest = MicroSegment.objects.order_by("-size").first()
    MicroSegment.objects.filter(pk=largest.pk).update(name="Weekend runners")
    # Numbers a first fit would not give (it counts 1..k): only the matching can hand them out.
    MicroSegment.objects.update(number=F("number") + 10)
    with mock.patch.object(nightly, "fit_nightly", wraps=nightly.fit_nightly) as fit:
        run = nightly_train(as_of=DAY, now=NOW)
    previous = fit.call_args.kwargs["previous_segments"]
    assert set(previous) == set(MicroSegment.objects.values_list("number", flat=True))
    assert fit.call_args.kwargs["previous_k"] == first.metrics["segments"]
    snapshot_build(as_of=DAY, now=NOW)
    after = snapshots_frame(as_of=DAY, scores=True).set_index("customer_id")["micro_segment"]
    assert after.reindex(before.index).equals(before + 10)
    kept = MicroSegment.objects.get(pk=largest.pk)
    assert kept.name == "Weekend runners" and kept.active and kept.first_run == first and kept.last_run == run
    assert MicroSegment.objects.filter(active=True, last_run=run).count() == run.metrics["segments"]


def test_a_failed_training_is_recorded_and_raised(kinds):
    with mock.patch.object(nightly, "fit_nightly", side_effect=RuntimeError("disk on fire")):
        with pytest.raises(RuntimeError):
            nightly_train(as_of=DAY, now=NOW)
    run = TrainingRun.objects.get()
    assert run.status == TrainingRun.FAILED and "disk on fire" in run.error and not run.artifact
    assert nightly.latest_models() is None


def test_a_young_shop_trains_what_its_data_allows(make_customer):
    from oscar_journeys.services.timeline import timeline_record_event

    for n in range(3):
        customer = make_customer()
        timeline_record_event(customer=customer, type="order_placed", occurred_at=shop_day_end(DAY) - dt.timedelta(days=n + 1), value=10)
    run = nightly_train(as_of=DAY, now=NOW)
    assert run.status == TrainingRun.SUCCEEDED
    assert {"churn", "clv", "micro_segments", "rfm"} <= set(run.params["skipped"])
    snapshot_build(as_of=DAY, now=NOW)
    assert set(Snapshot.objects.values_list("lifecycle_stage", flat=True)) == {schema.NEW}
    assert not Snapshot.objects.filter(churn_probability__isnull=False).exists()


def test_the_nightly_task_trains_then_builds_every_shard(kinds, settings):
    settings.OSCAR_JOURNEYS_SNAPSHOT_SHARD_SIZE = 100
    tasks.nightly_run(DAY.isoformat())
    run = TrainingRun.objects.get()
    assert Snapshot.objects.filter(as_of=DAY, training_run=run.version).count() == 360


def test_the_nightly_task_still_builds_when_the_training_fails(kinds):
    with mock.patch.object(nightly, "fit_nightly", side_effect=RuntimeError("no")):
        tasks.nightly_run(DAY.isoformat())
    assert TrainingRun.objects.get().status == TrainingRun.FAILED
    assert Snapshot.objects.filter(as_of=DAY).count() == 360


def test_the_command_trains_scores_and_reports(kinds):
    out = io.StringIO()
    call_command("journeys_nightly", as_of=DAY.isoformat(), stdout=out)
    text = out.getvalue()
    assert "Training run 1" in text and "churn AUC" in text and "shard 1/1" in text
    assert Snapshot.objects.filter(as_of=DAY, training_run=1).count() == 360
    out = io.StringIO()
    call_command("journeys_nightly", "--as-of", DAY.isoformat(), "--no-training", stdout=out)
    assert TrainingRun.objects.count() == 1 and "training run 1" in out.getvalue()


def test_the_command_refuses_bad_input(kinds):
    with pytest.raises(CommandError, match="not a date"):
        call_command("journeys_nightly", as_of="30/06/2025")
    with pytest.raises(CommandError, match="no successful training run"):
        call_command("journeys_nightly", "--as-of", DAY.isoformat(), "--no-training")


def test_a_stage_change_campaign_enrolls_who_entered_the_stage_once(kinds):
    nightly_train(as_of=DAY, now=NOW)
    snapshot_build(as_of=DAY, backfill_days=10, now=NOW)
    campaign = Campaign.objects.create(
        name="Became at risk", trigger="stage_changed", lifecycle_stage=schema.AT_RISK,
        created_at=NOW - dt.timedelta(days=60),
    )
    CampaignStep.objects.create(campaign=campaign, position=1, delay_value=0, delay_unit="hours")
    entered = set(
        stage_events().filter(payload__to=schema.AT_RISK).values_list("customer_id", flat=True)
    )
    assert entered
    created = triggers_scan(now=NOW)
    assert created[campaign.pk] == len(entered)
    assert set(Enrollment.objects.filter(campaign=campaign).values_list("customer_id", flat=True)) == entered
    enrollment = Enrollment.objects.filter(campaign=campaign).first()
    assert enrollment.context["to"] == schema.AT_RISK and enrollment.trigger_key.startswith("stage:at_risk:")
    assert triggers_scan(now=NOW)[campaign.pk] == 0
