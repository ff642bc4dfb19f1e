"""The nightly chain: snapshot, segments, predictions (docs/segments.md).

1. ``nightly_train(as_of=...)`` fits the models once, on a sample of customers: an even
   spread of customer-id ranges holding about ``OSCAR_JOURNEYS_TRAINING_SAMPLE_SIZE``
   customers. Their snapshots are computed from the events for the days the fit needs
   (``ml.nightly.nightly_days``: today, and one and two churn horizons back) and handed to
   ``ml.nightly.fit_nightly``. The result is a versioned ``TrainingRun`` with its metrics,
   the readable parameters and the fitted bundle (pickled); the micro-segments it found are
   stored as ``MicroSegment`` rows under their stable numbers.
2. ``snapshot_build`` (``services.snapshots``) scores every shard with the latest
   successful run while it computes the features, so each snapshot row is written once,
   with its lifecycle stage, RFM, micro-segment, churn probability, CLV and next order
   date. A customer whose stage differs from the day before gets a
   ``lifecycle_stage_changed`` event (``record_stage_changes``), which stage-change
   campaigns trigger on.

``tasks.nightly_run`` chains the two with Celery (one task per shard); ``manage.py
journeys_nightly --as-of DATE`` runs them in process.
"""

import datetime as dt
import functools
import json
import logging
import math
import pickle
import time
import traceback
from dataclasses import dataclass

import numpy as np
import pandas as pd
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from .. import app_settings
from ..ml import schema
from ..ml.features import iter_snapshots
from ..ml.lifecycle import transitions
from ..ml.nightly import fit_nightly, nightly_days
from ..models import Event, MicroSegment, TrainingRun
from ..selectors import customer_id_ranges, events_frame
from .bulk import insert_rows

logger = logging.getLogger(__name__)

SOURCE = "journeys"  # Event.source of the events the app records itself


# --- training -------------------------------------------------------------------------------


def training_ranges(*, as_of, sample_size=None, shard_size=None):
    """The customer-id ranges the training reads: all of them when they hold at most
    ``sample_size`` ids, else an even spread of them across the id space (old and new
    customers alike)."""
    from .snapshots import shop_day_end

    sample_size = int(sample_size or app_settings.TRAINING_SAMPLE_SIZE)
    shard_size = int(shard_size or min(app_settings.SNAPSHOT_SHARD_SIZE, max(1000, sample_size // 20)))
    ranges = customer_id_ranges(shard_size, until=shop_day_end(as_of))
    wanted = max(1, math.ceil(sample_size / shard_size))
    if len(ranges) <= wanted:
        return ranges
    picks = np.unique(np.linspace(0, len(ranges) - 1, wanted).round().astype(int))
    return [ranges[i] for i in picks]


def training_frames(*, as_of, ranges, days):
    """{day: snapshot frame of the customers in ``ranges``}, computed from the events."""
    from .snapshots import shop_day_end

    cutoffs = {day: pd.Timestamp(shop_day_end(day)) for day in days}
    if not ranges:  # no customer yet: empty frames
        return dict(iter_snapshots(pd.DataFrame(columns=list(schema.EVENT_COLUMNS)), cutoffs))
    parts = {day: [] for day in days}
    for lo, hi in ranges:
        events = events_frame(until=shop_day_end(as_of), customer_ids=(lo, hi))
        for day, frame in iter_snapshots(events, cutoffs):
            parts[day].append(frame)
    return {day: pd.concat(frames, ignore_index=True) for day, frames in parts.items()}


def nightly_train(*, as_of, now=None, sample_size=None):
    """Fit the nightly models as of the end of day ``as_of`` and store them as a new
    ``TrainingRun`` (status succeeded, or failed with the error, which is raised again).
    Returns the run."""
    now = now or timezone.now()
    started = time.perf_counter()
    run = _new_run(as_of, now)
    try:
        days = nightly_days(
            as_of,
            churn_horizon_days=int(app_settings.CHURN_HORIZON_DAYS),
            clv_horizon_days=int(app_settings.CLV_HORIZON_DAYS),
        )
        ranges = training_ranges(as_of=as_of, sample_size=sample_size)
        frames = training_frames(as_of=as_of, ranges=ranges, days=days)
        models, report = fit_nightly(
            frames,
            as_of=as_of,
            churn_horizon_days=int(app_settings.CHURN_HORIZON_DAYS),
            clv_horizon_days=int(app_settings.CLV_HORIZON_DAYS),
            lifecycle_overrides=app_settings.LIFECYCLE_THRESHOLDS or None,
            previous_segments=_previous_segments(),
            previous_k=MicroSegment.objects.filter(active=True).count() or None,
            k_min=int(app_settings.MICRO_SEGMENTS_MIN),
            k_max=int(app_settings.MICRO_SEGMENTS_MAX),
        )
        models.version = run.version
        with transaction.atomic():
            run.customers = int(report.metrics.get("customers", 0))
            run.metrics = _json_safe({**report.metrics, "seconds": round(time.perf_counter() - started, 2)})
            run.params = _json_safe({**report.params, "skipped": report.skipped})
            run.artifact = pickle.dumps(models, protocol=pickle.HIGHEST_PROTOCOL)
            run.status = TrainingRun.SUCCEEDED
            run.finished_at = timezone.now()
            run.save()
            _store_segments(run, models.segments)
    except Exception:
        run.status = TrainingRun.FAILED
        run.error = traceback.format_exc(limit=20)
        run.finished_at = timezone.now()
        run.save(update_fields=["status", "error", "finished_at"])
        raise
    logger.info("Training run %d (%s): %s", run.version, as_of, run.metrics)
    return run


def _new_run(as_of, now):
    for _ in range(5):
        version = (TrainingRun.objects.aggregate(v=Max("version"))["v"] or 0) + 1
        try:
            with transaction.atomic():
                return TrainingRun.objects.create(version=version, as_of=as_of, started_at=now)
        except IntegrityError:  # another training took the number: take the next one
            continue
    raise RuntimeError("could not allocate a training run version")


def _previous_segments():
    """{number: centroid} of every micro-segment found so far, for stable numbers."""
    return {number: centroid for number, centroid in MicroSegment.objects.values_list("number", "centroid") if centroid} or None


def _store_segments(run, segments):
    """Create or update the ``MicroSegment`` rows of the segments ``run`` found; the
    others are marked as not in the latest model (their names are kept)."""
    numbers = [] if segments is None else [int(n) for n in segments.numbers]
    if numbers:
        described = segments.describe()
        existing = {s.number: s for s in MicroSegment.objects.filter(number__in=numbers)}
        for number in numbers:
            segment = existing.get(number) or MicroSegment(number=number, first_run=run)
            segment.description = _json_safe(described.get(number, []))
            segment.centroid = _json_safe(segments.centroids.loc[number].to_dict())
            segment.size = int(segments.sizes.get(number, 0))
            segment.active = True
            segment.last_run = run
            segment.save()
    MicroSegment.objects.exclude(number__in=numbers).update(active=False)


def _json_safe(value):
    """``value`` with numpy scalars made plain and NaN / infinity made None."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return value


# --- scoring --------------------------------------------------------------------------------


def latest_models():
    """The fitted bundle of the latest successful training run, or None."""
    version = (
        TrainingRun.objects.filter(status=TrainingRun.SUCCEEDED, artifact__isnull=False)
        .order_by("-version")
        .values_list("version", flat=True)
        .first()
    )
    return None if version is None else models_of(version)


@functools.lru_cache(maxsize=2)
def models_of(version):
    """The fitted bundle of training run ``version`` (unpickled once per process)."""
    artifact = TrainingRun.objects.filter(version=version).values_list("artifact", flat=True).get()
    models = pickle.loads(bytes(artifact))
    models.version = version
    return models


@dataclass
class Scored:
    """One day of one shard, scored: the snapshot frame with the ``schema.SCORES``
    columns, and the stage changes since the day before (None when that day was not
    scored: a first run records no changes)."""

    frame: pd.DataFrame
    stages: pd.Series  # lifecycle stage by customer id
    changes: pd.DataFrame | None


def score_day(frame, models, previous):
    """Score one day's snapshot frame. ``previous``: the stages of the day before by
    customer id, or None when that day was not scored."""
    scores = models.score(frame, previous)
    scored = pd.concat([frame.reset_index(drop=True), scores.reset_index(drop=True)], axis=1)
    stages = pd.Series(scored["lifecycle_stage"].to_numpy(), index=scored["customer_id"].to_numpy())
    changes = None if previous is None else transitions(previous, stages)
    return Scored(scored, stages, changes)


def stored_stages(day, customer_range):
    """The stages stored for ``day`` in the range, by customer id; None when none of its
    rows was scored."""
    from ..models import Snapshot

    lo, hi = customer_range
    rows = Snapshot.objects.filter(as_of=day, customer_id__gte=lo, customer_id__lt=hi).exclude(lifecycle_stage="")
    pairs = list(rows.values_list("customer_id", "lifecycle_stage"))
    if not pairs:
        return None
    ids, stages = zip(*pairs)
    return pd.Series(stages, index=np.asarray(ids, dtype="int64"), dtype=object)


def record_stage_changes(changes, *, day, now):
    """Add a ``lifecycle_stage_changed`` event per change (payload ``{"from", "to"}``), at
    the end of ``day``; keyed by customer and day, so a rerun adds nothing."""
    from .snapshots import shop_day_end

    if changes is None or changes.empty:
        return 0
    customers = changes["customer_id"].astype("int64").tolist()
    at = shop_day_end(day)
    payloads = [json.dumps({"from": a, "to": b}) for a, b in zip(changes["from"], changes["to"])]
    with transaction.atomic():  # insert_rows' temporary table (PostgreSQL) lives until the commit
        _insert_changes(customers, day, at, payloads, now)
    return len(customers)


def _insert_changes(customers, day, at, payloads, now):
    insert_rows(
        Event,
        {
            "customer_id": customers,
            "recorded_for_id": customers,
            "idempotency_key": [f"stage:{c}:{day.isoformat()}" for c in customers],
            "payload": payloads,
            "type": schema.LIFECYCLE_STAGE_CHANGED,
            "source": SOURCE,
            "occurred_at": at,
            "recorded_at": now,
        },
    )
