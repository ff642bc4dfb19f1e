"""The journey report: what one journey's campaigns and its self-optimizing policy earned
over a date range. What each figure means: docs/reports.md, "The journey report".

``admin/oscar_journeys/journey/<id>/report/`` (``admin:oscar_journeys_journey_report``),
for staff with the *view journey* permission; open it from the "report" column of the
journey list. It shows:

1. per campaign of the journey (its entry campaigns and follow-ups): decisions, sends, and
   the incremental value of a send over the customers who received nothing, from the
   randomized decisions only, inverse-propensity weighted; next to it the plain comparison
   with the campaign's holdout;
2. the journey's value per decision against the global control group;
3. what manual priority and the self-optimizing policy each earned per decision, both
   estimated from the self-optimizing decisions' log (off-policy evaluation);
4. the self-optimizing decisions per week.

Every figure comes from one query of the journey's decision rows (``values_list`` into
pandas) and one aggregate per campaign and outcome; the doubly-robust estimate also reads
the customers' features, one query per decision day (as learning does).

**A decision** here is one customer at one decision round: the rows of one customer with
the same ``decided_at``. Its *logged* row says what the customer received: the campaign
(outcome "send"), or nothing ("holdout", "control", "nothing"). Its *candidates* are the
campaigns the policy chose among: the logged row's ``candidates`` list and campaign (and,
in decisions logged before that list existed, the campaigns it outranked: skipped rows with
reason "outranked"; a customer given nothing then had a "nothing" row per due campaign). A
decision belongs to the journey when a logged row names one of the journey's campaigns.
``Decision.propensity`` is the probability, at the decision, that the customer receives
what the logged row records."""

import datetime as dt
import functools
import math
import operator
from statistics import NormalDist

import numpy as np
import pandas as pd
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.db.models import Count, Exists, OuterRef, Q
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from ..charts import line_chart
from ..ml.uplift import difference_in_means
from ..models import Campaign, Decision, Journey
from ..optimizer import JourneyPolicy, ManualPriorityPolicy
from ..optimizer.evaluation import off_policy_value
from ..services import optimizing
from .report_figures import CONFIDENCE
from .reports import _base_context, date_range, uplift_row, verdict

LOGGED = (Decision.SEND, Decision.HOLDOUT, Decision.CONTROL, Decision.NOTHING)
RANDOMIZED = 1.0  # decisions with a propensity below this were drawn at random
ROW_COLUMNS = ["id", "customer_id", "campaign_id", "decided_at", "outcome", "policy", "propensity", "value", "closed",
               "candidates"]
DB_COLUMNS = ["id", "customer_id", "campaign_id", "decided_at", "outcome", "policy", "propensity", "attributed_value",
              "attribution_closed", "candidates"]


# --- the journey's decisions ----------------------------------------------------------------------


def decision_rows(campaign_ids, start, end):
    """Every logged and outranked row, decided in [start, end), of the decisions (customer,
    ``decided_at``) that have a logged row naming one of ``campaign_ids``, or a "nothing"
    row listing one of them among its ``candidates`` (the round logs "nothing" on the
    customer's first due step, which may be another journey's campaign). Two queries."""
    logged_here = Decision.objects.filter(
        customer_id=OuterRef("customer_id"), decided_at=OuterRef("decided_at"), campaign_id__in=campaign_ids,
        outcome__in=LOGGED,
    )  # fmt: skip
    in_range = Decision.objects.filter(decided_at__gte=start, decided_at__lt=end).order_by()
    rows = (
        in_range.filter(Q(outcome__in=LOGGED) | Q(outcome=Decision.SKIPPED, reason=Decision.OUTRANKED))
        .filter(Exists(logged_here))
        .values_list(*DB_COLUMNS)
    )
    elsewhere = in_range.filter(outcome=Decision.NOTHING).exclude(campaign_id__in=campaign_ids)
    if campaign_ids and connection.features.supports_json_field_contains:  # PostgreSQL: filtered there
        elsewhere = elsewhere.filter(functools.reduce(operator.or_, (Q(candidates__contains=[pk]) for pk in campaign_ids)))
    elsewhere = [row for row in elsewhere.values_list(*DB_COLUMNS) if set(row[-1] or ()) & set(campaign_ids)]
    frame = pd.DataFrame.from_records([*rows, *elsewhere], columns=ROW_COLUMNS)
    frame["value"] = frame["value"].astype("float64")
    frame["propensity"] = frame["propensity"].astype("float64")
    frame["decided_at"] = pd.to_datetime(frame["decided_at"], utc=True)
    return frame


def split_decisions(rows):
    """(logged, candidates) of ``decision_rows``.

    ``logged``: one row per decision: ``decision`` (0, 1, ... a key), ``customer_id``,
    ``decided_at``, ``outcome``, ``policy``, ``campaign_id`` (of the logged row),
    ``received`` (the campaign sent, NaN for nothing), ``propensity``, ``value``, ``closed``.
    ``candidates``: ``decision``, ``campaign_id``, one row per campaign the policy chose
    among (the logged row's ``candidates`` list, or the legacy outranked rows). Manual
    priority's outranked campaigns had no chance (it is deterministic), so a manual
    decision's only candidate is the campaign it chose."""
    rows = rows.copy()
    rows["decision"] = rows.groupby(["customer_id", "decided_at"], sort=True).ngroup()
    logged = rows[rows["outcome"].isin(LOGGED)].sort_values(["decision", "id"]).drop_duplicates("decision")
    logged = logged.reset_index(drop=True)
    logged["received"] = np.where(
        logged["outcome"] == Decision.SEND, logged["campaign_id"].astype("float64"), np.nan
    )
    policy = logged.set_index("decision")["policy"].reindex(rows["decision"]).to_numpy()
    manual = policy == ManualPriorityPolicy.name
    candidates = rows[(~manual | rows["outcome"].isin(LOGGED).to_numpy()) & rows["campaign_id"].notna().to_numpy()]
    listed = logged.loc[logged["policy"] != ManualPriorityPolicy.name, ["decision", "candidates"]]
    listed = listed.explode("candidates").dropna().rename(columns={"candidates": "campaign_id"})
    candidates = pd.concat([candidates[["decision", "campaign_id"]], listed], ignore_index=True)
    candidates = candidates.astype("int64").drop_duplicates().sort_values(["decision", "campaign_id"])
    return logged.drop(columns=["id", "candidates"]), candidates.reset_index(drop=True)


# --- 1. per campaign: inverse-propensity weighted incremental value -----------------------------


def _z(confidence):
    return NormalDist().inv_cdf((1 + confidence) / 2)


def hajek_mean(values, propensity):
    """Self-normalised (Hájek) inverse-propensity weighted mean of ``values``, weights
    1 / propensity: {"mean", "variance" (linearised: sum w²(y - mean)² / (sum w)²; None for
    fewer than two rows), "n", "effective_size" ((sum w)² / sum w²)}; mean None when empty."""
    values = np.asarray(values, dtype="float64")
    weights = 1.0 / np.asarray(propensity, dtype="float64")
    n = len(values)
    if n == 0:
        return {"mean": None, "variance": None, "n": 0, "effective_size": 0.0}
    total = weights.sum()
    mean = float((weights * values).sum() / total)
    variance = float((weights**2 * (values - mean) ** 2).sum() / total**2) if n >= 2 else None
    return {"mean": mean, "variance": variance, "n": n, "effective_size": float(total**2 / (weights**2).sum())}


def weighted_uplift(treated, control, *, confidence=CONFIDENCE):
    """Difference of two Hájek means (``hajek_mean`` results) with a normal interval from
    the sum of their variances: a dict like ``ml.uplift``'s (estimate, low, high, means,
    sizes), plus the effective sizes."""
    result = {
        "estimate": None, "low": None, "high": None,
        "treated_mean": treated["mean"], "control_mean": control["mean"],
        "n_treated": treated["n"], "n_control": control["n"],
        "treated_effective": treated["effective_size"], "control_effective": control["effective_size"],
        "confidence": confidence, "method": "ipw_hajek_normal",
    }  # fmt: skip
    if treated["mean"] is None or control["mean"] is None:
        return result
    result["estimate"] = treated["mean"] - control["mean"]
    if treated["variance"] is None or control["variance"] is None:
        return result
    se = math.sqrt(treated["variance"] + control["variance"])
    if se > 0:
        half = _z(confidence) * se
        result["low"], result["high"] = result["estimate"] - half, result["estimate"] + half
    return result


def campaign_rows(campaigns, logged, candidates, counts, *, confidence=CONFIDENCE):
    """One dict per campaign: counts by outcome, the weighted incremental value of a send
    over receiving nothing (randomized decisions in which the campaign was a candidate:
    sent it, or received nothing), and the plain send-vs-holdout comparison."""
    pairs = candidates.merge(logged[["decision", "outcome", "received", "propensity", "value"]], on="decision")
    pairs = pairs[pairs["propensity"] < RANDOMIZED]
    out = []
    for campaign in campaigns:
        mine = pairs[pairs["campaign_id"] == campaign.pk]
        treated = mine[mine["received"] == campaign.pk]
        control = mine[mine["received"].isna()]
        weighted = weighted_uplift(
            hajek_mean(treated["value"], treated["propensity"]),
            hajek_mean(control["value"], control["propensity"]),
            confidence=confidence,
        )
        own = logged[logged["campaign_id"] == campaign.pk]
        held = own.loc[own["outcome"] == Decision.HOLDOUT, "value"]
        plain = None
        if len(held):
            plain = difference_in_means(own.loc[own["outcome"] == Decision.SEND, "value"], held, confidence=confidence)
        by_outcome = counts.get(campaign.pk, {})
        out.append({
            "campaign": campaign,
            "decisions": sum(by_outcome.values()),
            "sent": by_outcome.get(Decision.SEND, 0),
            "nothing": sum(by_outcome.get(o, 0) for o in (Decision.HOLDOUT, Decision.CONTROL, Decision.NOTHING)),
            "weighted": {**weighted, "verdict": verdict(weighted)},
            "holdout": None if plain is None else {**uplift_row(plain), "n_treated": plain["n_treated"],
                                                   "n_control": plain["n_control"]},
        })  # fmt: skip
    return out


def outcome_counts(campaign_ids, start, end):
    """{campaign id: {outcome: decisions}} in [start, end): one aggregate query."""
    counts = {}
    rows = (
        Decision.objects.filter(campaign_id__in=campaign_ids, decided_at__gte=start, decided_at__lt=end)
        .values("campaign_id", "outcome").annotate(n=Count("id")).order_by()
    )  # fmt: skip
    for row in rows:
        counts.setdefault(row["campaign_id"], {})[row["outcome"]] = row["n"]
    return counts


def listed_counts(rows, campaign_ids, counts):
    """Add to ``counts`` ({campaign id: {outcome: decisions}}) the campaigns that the logged
    rows of ``decision_rows`` list among their candidates without being logged on them:
    as "nothing" when the decision chose nothing (the customer was due for the campaign and
    received nothing), else as "skipped" (outranked). Rounds before 0007 wrote a row of its
    own for each, which ``outcome_counts`` counts already."""
    listed = rows.loc[rows["outcome"].isin(LOGGED), ["campaign_id", "outcome", "candidates"]]
    listed = listed.explode("candidates").dropna(subset=["candidates"])
    mine = listed["candidates"].isin(list(campaign_ids)).to_numpy()
    listed = listed[mine & (listed["candidates"].astype("float64") != listed["campaign_id"].astype("float64")).to_numpy()]
    pairs = pd.DataFrame({
        "campaign_id": listed["candidates"].astype("int64").to_numpy(),
        "outcome": np.where(listed["outcome"] == Decision.NOTHING, Decision.NOTHING, Decision.SKIPPED),
    })
    for (campaign_id, name), n in pairs.value_counts().items():
        by_outcome = counts.setdefault(int(campaign_id), {})
        by_outcome[name] = by_outcome.get(name, 0) + int(n)
    return counts


# --- 2. the journey against the global control group --------------------------------------------


def control_comparison(logged, campaign_ids, *, confidence=CONFIDENCE):
    """Value per decision of the journey's sends against its global-control decisions (both
    stand for "a campaign was chosen"; the control draw is independent of the choice)."""
    mine = logged[logged["campaign_id"].isin(list(campaign_ids))]
    sent = mine.loc[mine["outcome"] == Decision.SEND, "value"]
    control = mine.loc[mine["outcome"] == Decision.CONTROL, "value"]
    result = difference_in_means(sent, control, confidence=confidence)
    return {**uplift_row(result), "n_sent": len(sent), "n_control": len(control),
            "sent_mean": result["treated_mean"], "control_mean": result["control_mean"]}  # fmt: skip


# --- 3. manual priority against the self-optimizing policy, off-policy ---------------------------


def manual_choices(candidates):
    """{decision: campaign id} manual priority would have sent among the candidates."""
    ids = candidates["campaign_id"].unique().tolist()
    priorities = pd.DataFrame.from_records(
        list(Campaign.objects.filter(pk__in=ids).values_list("pk", "priority")), columns=["campaign_id", "priority"]
    )
    known = candidates[candidates["campaign_id"].isin(priorities["campaign_id"])]
    if not len(known):
        return pd.Series(dtype="float64")
    eligible = known.rename(columns={"decision": "customer_id"})
    chosen = ManualPriorityPolicy(priorities).decide(None, eligible, None)
    return pd.Series(chosen["campaign_id"].to_numpy(dtype="float64"), index=chosen["customer_id"].to_numpy())


def features_at_decisions(logged):
    """The policy's features of each logged decision's customer, as the decision saw them
    (``optimizing.features_at_decisions``), indexed by the decision key (named
    ``customer_id``, the name the policy joins on)."""
    frame = optimizing.features_at_decisions(logged["customer_id"], logged["decided_at"])
    return frame.set_axis(pd.Index(logged["decision"].to_numpy(), name="customer_id"))


def reward_model(policy, logged, candidates):
    """Uplift the policy predicts per (decision, candidate campaign): a Series indexed by
    (decision, campaign id)."""
    eligible = candidates.rename(columns={"decision": "customer_id"})
    predicted = policy.predict(features_at_decisions(logged), eligible)
    return predicted.set_index(["customer_id", "campaign_id"])["uplift"].astype("float64")


def policy_comparison(logged, candidates, *, confidence=CONFIDENCE):
    """Manual priority and the self-optimizing policy on the self-optimizing decisions'
    log: {"n", "rows": [{"key", "policy", "method_label", and the estimate dict}], "dr_missing": reason or None,
    "model_version"}; None when there is no such decision."""
    logged = logged[logged["policy"] == JourneyPolicy.name].reset_index(drop=True)
    if not len(logged):
        return None
    candidates = candidates[candidates["decision"].isin(logged["decision"])]
    manual = manual_choices(candidates).reindex(logged["decision"]).to_numpy()
    received = logged["received"].to_numpy()
    # Manual priority always sends its choice: probability 1 for that campaign, else 0
    # (a logged "nothing" is never what manual priority does).
    target = np.where(~np.isnan(received) & (received == manual), 1.0, 0.0)
    frame = logged[["propensity", "value"]]
    rows = [
        {"policy": _("Manual priority"), "method_label": _("Inverse propensity (IPS)"), "key": "manual_ips",
         **off_policy_value(frame, target, method="ips", confidence=confidence)},
    ]  # fmt: skip
    version = optimizing.latest_version()
    dr_missing = None
    if version is None:
        dr_missing = gettext(
            "No version of the self-optimizing policy has been learned yet, so there is no reward model for the "
            "doubly robust estimate: only the inverse-propensity estimate is shown."
        )
    else:
        uplift = reward_model(optimizing.policy_of(version), logged, candidates)
        nothing = np.isnan(received)
        baseline = float(logged.loc[nothing, "value"].mean()) if nothing.any() else 0.0

        def q(campaigns):
            keys = pd.MultiIndex.from_arrays(
                [logged["decision"].to_numpy(), np.nan_to_num(campaigns, nan=-1).astype("int64")]
            )
            return baseline + np.nan_to_num(uplift.reindex(keys).to_numpy(dtype="float64"), nan=0.0)

        rows.append({
            "policy": _("Manual priority"), "method_label": _("Doubly robust"), "key": "manual_dr",
            **off_policy_value(frame, target, method="dr", reward_logged=q(received), reward_target=q(manual),
                               confidence=confidence),
        })  # fmt: skip
    rows.append({
        "policy": _("Self-optimizing (as it ran)"), "method_label": _("Observed mean"), "key": "journey",
        **off_policy_value(frame, logged["propensity"].to_numpy(), method="ips", confidence=confidence),
    })  # fmt: skip
    return {"n": len(logged), "rows": rows, "dr_missing": dr_missing, "model_version": version}


# --- 4. autonomous decisions per week -----------------------------------------------------------


def weekly_decisions(logged, first, last):
    """(weeks (Mondays), decisions, sends) of the self-optimizing decisions per week of the
    shop's time zone, every week from ``first``'s to ``last``'s, zeros included."""
    start_week = first - dt.timedelta(days=first.weekday())
    weeks = [start_week + dt.timedelta(weeks=i) for i in range((last - start_week).days // 7 + 1)]
    mine = logged[logged["policy"] == JourneyPolicy.name]
    days = mine["decided_at"].dt.tz_convert(timezone.get_current_timezone()).dt.date
    monday = days.map(lambda d: d - dt.timedelta(days=d.weekday()))
    decisions = monday.value_counts()
    sends = monday[(mine["outcome"] == Decision.SEND).to_numpy()].value_counts()
    return weeks, [int(decisions.get(w, 0)) for w in weeks], [int(sends.get(w, 0)) for w in weeks]


# --- the page -------------------------------------------------------------------------------------


def journey_campaigns(journey):
    """The journey's campaigns (entries and follow-ups), by priority, highest first."""
    ids, _links = optimizing.journey_frames([journey])
    return list(Campaign.objects.filter(pk__in=[int(i) for i in ids]).order_by("-priority", "name"))


def journey_figures(journey, *, start, end, first, last, confidence=CONFIDENCE):
    """Everything the report shows, as template context (see the module docstring)."""
    campaigns = journey_campaigns(journey)
    ids = [c.pk for c in campaigns]
    counts = outcome_counts(ids, start, end)
    rows = decision_rows(ids, start, end)
    if not len(rows) and not counts:
        return {"empty": True, "campaign_rows": []}
    counts = listed_counts(rows, ids, counts)
    logged, candidates = split_decisions(rows)
    weeks, decided, sent = weekly_decisions(logged, first, last)
    return {
        "empty": False,
        "decisions": len(logged),
        "open_windows": int((~logged["closed"].astype(bool)).sum()),
        "campaign_rows": campaign_rows(campaigns, logged, candidates, counts, confidence=confidence),
        "control": control_comparison(logged, ids, confidence=confidence),
        "policies": policy_comparison(logged, candidates, confidence=confidence),
        "weeks": list(zip(weeks, decided, sent)),
        "week_chart": line_chart(weeks, decided, title=_("Self-optimizing decisions per week")),
    }


def report_view(model_admin):
    """The report of one journey, bound to the journey admin."""

    def view(request, object_id):
        journey = get_object_or_404(Journey, pk=object_id)
        if not model_admin.has_view_permission(request, journey):
            raise PermissionDenied
        form, first, last, start, end = date_range(request)
        context = {
            **_base_context(model_admin, request, _("Report: %(journey)s") % {"journey": journey}),
            "journey": journey,
            "form": form,
            "first_day": first,
            "last_day": last,
            **journey_figures(journey, start=start, end=end, first=first, last=last),
        }
        request.current_app = model_admin.admin_site.name
        return TemplateResponse(request, "oscar_journeys/admin/journey_report.html", context)

    return view
