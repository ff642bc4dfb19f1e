"""The self-optimizing policy in the shop: which customers it decides, the features it reads,
the version it runs, and learning from the attributed decisions.

- ``round_policy(config, now=...)``: the chooser a decision round uses. A customer with at
  least one due campaign in an active self-optimizing journey is decided by the latest
  ``PolicyVersion`` (``optimizer.JourneyPolicy``) with that journey's follow-up graph and
  options; everyone else by manual priority. Consent, caps, exclusions, quiet hours and the
  global control group hold the same for both (``decision_plan``); the campaigns' own random
  holdouts are replaced, for the policy's customers, by the policy's own random hold-out.
- ``policy_learn(now=...)``: a new ``PolicyVersion`` from the decisions whose attribution
  window has closed since the last version, each with the customer's features of the day
  it was decided (the snapshots are a timeline).

``Decision.propensity`` is the probability, at the decision, that the customer receives what
the decision records: the campaign for a send, nothing for a hold-out, control or nothing.
That is what learning and the off-policy reports weigh by.
"""

import copy
import datetime as dt
import functools
import logging
import pickle

import numpy as np
import pandas as pd
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from ..ml import audience
from ..models import Decision, FollowUp, Journey, PolicyVersion
from ..optimizer import JourneyPolicy, ManualPriorityPolicy
from . import target_groups

logger = logging.getLogger(__name__)

# What the policy reads of a customer: the numeric snapshot features and scores.
POLICY_FEATURES = tuple(
    name for name, field in audience.TARGET_FIELDS.items()
    if field.kind in ("int", "float") and name not in audience.CUSTOMER_FIELDS
)
LEARNED_OUTCOMES = (Decision.SEND, Decision.HOLDOUT, Decision.CONTROL, Decision.NOTHING)


def policy_features(customer_ids, *, now):
    """The policy's features of these customers as a decision at ``now`` sees them: from
    the latest snapshot of a shop day that ended before ``now`` (missing: NaN, which the
    policy fills with its training medians). Never the snapshot of ``now``'s own day: built
    once that day is over, it holds what followed the decision (the order it led to, say),
    so learning from it would read the outcome into the features."""
    fields = {name: audience.TARGET_FIELDS[name] for name in POLICY_FEATURES}
    before = timezone.localdate(now) - dt.timedelta(days=1)
    frame = target_groups.rule_frame(customer_ids, fields, now=now, snapshot_day=before)
    return frame[list(POLICY_FEATURES)].astype("float64")


# --- the journeys and the policy's versions ---------------------------------------------------


def journey_frames(journeys):
    """(campaigns, follow_ups) frames of ``journeys`` for ``JourneyPolicy``."""
    ids = [j.pk for j in journeys]
    links = pd.DataFrame.from_records(
        list(FollowUp.objects.filter(journey_id__in=ids).values_list("campaign_id", "follow_up_id", "delay_days",
                                                                       "condition")),
        columns=["campaign_id", "follow_up_id", "delay_days", "condition"],
    )
    campaigns = set(links["campaign_id"]) | set(links["follow_up_id"])
    for journey in journeys:
        campaigns |= {c.pk for c in journey.campaigns.all()}
    return campaigns, links.drop_duplicates(["campaign_id", "follow_up_id"])


def latest_version():
    return (
        PolicyVersion.objects.filter(status=PolicyVersion.SUCCEEDED, artifact__isnull=False)
        .order_by("-version").values_list("version", flat=True).first()
    )


@functools.lru_cache(maxsize=2)
def policy_of(version):
    """The fitted policy of ``version`` (unpickled once per process)."""
    artifact = PolicyVersion.objects.filter(version=version).values_list("artifact", flat=True).get()
    return pickle.loads(bytes(artifact))


def _campaign_frame(config):
    return config.campaigns[["campaign_id", "priority"]].assign(prior_value=0.0)


def base_policy(config):
    """The latest learned policy, or (before any) a policy with only its priors."""
    version = latest_version()
    if version is None:
        return JourneyPolicy(_campaign_frame(config))
    return policy_of(version)


class RoundPolicy:
    """A decision round's chooser: the learned policy for the customers of self-optimizing
    journeys, manual priority for the others. ``decide`` returns the policy decision frame
    plus ``policy``, ``model_version`` and ``nothing_propensity`` (the probability the
    customer receives nothing, from the policy) per customer."""

    name = "manual"

    def __init__(self, config, *, now):
        self.config = config
        self.now = now
        self.manual = ManualPriorityPolicy(config.campaigns[["campaign_id", "priority"]])
        self.journeys = [
            (journey, *journey_frames([journey]))
            for journey in Journey.objects.filter(active=True, mode=Journey.OPTIMIZED).prefetch_related("campaigns")
        ]
        self._learned = None

    @property
    def learned(self):
        if self._learned is None:
            self._learned = base_policy(self.config)
        return self._learned

    def decide(self, features, eligible, now, seed=None):
        manual_rows = np.ones(len(eligible), dtype=bool)
        parts = []
        if self.journeys:
            customers = eligible["customer_id"].to_numpy(dtype="int64")
            campaigns = eligible["campaign_id"].to_numpy(dtype="int64")
            # Each customer goes to the optimized journey holding most of their due campaigns.
            counts = np.zeros((len(self.journeys), len(eligible)))
            for j, (_, members, _) in enumerate(self.journeys):
                counts[j] = np.isin(campaigns, list(members))
            per_customer = pd.DataFrame(counts.T, columns=range(len(self.journeys))).groupby(customers).sum()
            best = per_customer.to_numpy().argmax(axis=1)
            covered = per_customer.to_numpy().max(axis=1) > 0
            owner = pd.Series(np.where(covered, best, -1), index=per_customer.index)
            row_owner = owner.reindex(customers).to_numpy()
            for j, (journey, _, follow_ups) in enumerate(self.journeys):
                rows = row_owner == j
                if not rows.any():
                    continue
                manual_rows &= ~rows
                parts.append(self._decide_journey(journey, follow_ups, eligible[rows], now, seed))
        if manual_rows.any():
            chosen = self.manual.decide(None, eligible[manual_rows], now)
            parts.append(chosen.assign(policy=ManualPriorityPolicy.name, model_version="", nothing_propensity=0.0))
        decided = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
        return decided.sort_values("customer_id", kind="stable").reset_index(drop=True)

    def _decide_journey(self, journey, follow_ups, eligible, now, seed):
        policy = copy.copy(self.learned)
        policy.set_options(
            follow_ups=follow_ups, discount=journey.discount, depth=journey.depth, exploration=journey.exploration,
            holdout=journey.holdout,
        )
        ids = np.unique(eligible["customer_id"].to_numpy(dtype="int64"))
        features = policy_features(ids, now=now)
        chosen = policy.decide(features, eligible, now, seed=seed)
        return chosen.assign(policy=JourneyPolicy.name, model_version=str(policy.version))


def round_policy(config, *, now):
    return RoundPolicy(config, now=now)


# --- learning ------------------------------------------------------------------------------------


def _outcomes(since, until):
    """The learnable decisions decided in (since, until] whose attribution has closed."""
    rows = Decision.objects.filter(
        outcome__in=LEARNED_OUTCOMES, attribution_closed=True, decided_at__lte=until, propensity__lt=1.0,
    )
    if since is not None:
        rows = rows.filter(decided_at__gt=since)
    frame = pd.DataFrame.from_records(
        list(rows.order_by("decided_at", "id").values_list("customer_id", "campaign_id", "outcome", "decided_at",
                                                          "propensity", "attributed_value")),
        columns=["customer_id", "campaign_id", "outcome", "decided_at", "propensity", "value"],
    )
    received = frame["outcome"] == Decision.SEND
    frame["campaign_id"] = frame["campaign_id"].astype("Int64").where(received, pd.NA)
    frame["value"] = frame["value"].astype("float64")
    frame["decided_at"] = pd.to_datetime(frame["decided_at"], utc=True)
    # One outcome per customer and round: decisions logged before 0007 gave a customer who
    # received nothing a "nothing" row per due campaign.
    return frame.drop_duplicates(["customer_id", "decided_at"]).drop(columns="outcome").reset_index(drop=True)


def features_at_decisions(customer_ids, decided_at):
    """Row for row (a frame indexed 0..n-1), the policy's features of each customer as a
    decision at the matching ``decided_at`` saw them (``policy_features``): one read per
    shop day."""
    ids = np.asarray(customer_ids, dtype="int64")
    decided_at = pd.Series(pd.to_datetime(decided_at, utc=True))
    days = decided_at.dt.tz_convert(timezone.get_default_timezone()).dt.normalize()
    parts = []
    for day, rows in days.groupby(days, sort=True).indices.items():
        frame = policy_features(np.unique(ids[rows]), now=day.to_pydatetime())
        parts.append(frame.reindex(ids[rows]).set_axis(rows))
    features = pd.concat(parts).sort_index() if parts else pd.DataFrame(columns=list(POLICY_FEATURES))
    return features.reset_index(drop=True)


def policy_learn(*, now=None):
    """Fit a new policy version from the decisions closed since the last one (the first
    version learns from every closed decision); return the new ``PolicyVersion`` (failed,
    with its error, when the fit raised; then rounds keep the last good one)."""
    now = now or timezone.now()
    previous = latest_version()
    base = policy_of(previous) if previous is not None else None
    since = PolicyVersion.objects.filter(version=previous).values_list("learned_until", flat=True).first()
    with transaction.atomic():
        number = (PolicyVersion.objects.aggregate(v=Max("version"))["v"] or 0) + 1
        run = PolicyVersion.objects.create(version=number, started_at=now)
    try:
        outcomes = _outcomes(since, now)
        from . import decision_data

        config = decision_data.load_config()
        policy = copy.deepcopy(base) if base is not None else JourneyPolicy(_campaign_frame(config))
        policy.add_campaigns(_campaign_frame(config))
        if len(outcomes):
            policy.learn(outcomes, features_at_decisions(outcomes["customer_id"], outcomes["decided_at"]))
        run.summary = [
            {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in row.items()}
            for row in policy.summary().to_dict("records")
        ]
        policy.version = number  # what the rounds log as the decisions' model version
        run.outcomes = len(outcomes)
        run.learned_until = outcomes["decided_at"].max().to_pydatetime() if len(outcomes) else since
        run.artifact = pickle.dumps(policy)
        run.status = PolicyVersion.SUCCEEDED
    except Exception as exc:  # recorded on the version; rounds keep the last good one
        logger.exception("policy version %s failed", number)
        run.status, run.error = PolicyVersion.FAILED, f"{type(exc).__name__}: {exc}"
    run.finished_at = timezone.now()
    run.save()
    return run


__all__ = ["POLICY_FEATURES", "RoundPolicy", "policy_features", "policy_learn", "round_policy"]
