"""The decision round's plan: what each claimed enrollment step gets, on frames.

``build_plan(due, config, now=..., policy=...)`` takes the claimed enrollments (one row each,
``decision_data.CLAIM_COLUMNS``) and the configuration (``decision_data.Config``) and
returns the frame ``decisions.py`` writes: per row the outcome and reason of the decision
to write (None: no decision this round), the channel, template and address, and the action
on the enrollment. The steps are those of the round (see ``decisions.py``): campaign
running, audience, exclusions, channel with consent, quiet hours and send window, caps, the
policy's choice, then control group and holdout.
"""

import contextlib

import numpy as np
import pandas as pd
from django.utils import timezone

from .. import app_settings
from ..ml import rules
from ..models import Decision
from ..optimizer import ManualPriorityPolicy
from . import decision_data as data

SKIPPED, SEND, HOLDOUT, CONTROL = Decision.SKIPPED, Decision.SEND, Decision.HOLDOUT, Decision.CONTROL


def _skip(plan, mask, reason):
    """Mark the still-open rows in ``mask`` skipped for ``reason``."""
    mask = np.asarray(mask, dtype=bool) & plan["open"].to_numpy()
    plan.loc[mask, ["outcome", "reason"]] = [SKIPPED, reason]
    plan.loc[mask, "open"] = False


def build_plan(due, config, *, now, policy, clock=None):
    """Return ``due`` with, per row: ``outcome`` / ``reason`` (a decision to write, or None),
    ``channel_id``, ``template_id``, ``address``, ``defer_to`` (deferred rows), ``action``
    ("advance", "defer", "exit", "complete") and the holdout draw."""
    plan = due.merge(config.steps, on=["campaign_id", "step"], how="left")
    plan = plan.merge(config.campaigns, on="campaign_id", how="left")
    plan["outcome"] = None
    plan["reason"] = ""
    plan["channel_id"] = np.nan
    plan["template_id"] = np.nan
    plan["address"] = ""
    plan["channel_kind"] = None
    plan["defer_to"] = pd.Series(pd.NaT, index=plan.index, dtype="datetime64[ns, UTC]")
    plan["propensity"] = 1.0
    plan["nothing_propensity"] = 0.0
    plan["expected_value"] = np.nan
    plan["policy_control"] = False
    plan["policy"] = ManualPriorityPolicy.name
    plan["model_version"] = ""
    plan["candidates"] = "[]"
    # A step the campaign no longer has (deleted while the enrollment waited) ends it.
    plan["open"] = plan["delay"].notna().to_numpy()
    plan["action"] = np.where(plan["open"], "advance", "complete")

    running = plan["running_from"].isna() | (plan["running_from"] <= now)
    running &= plan["running_until"].isna() | (plan["running_until"] > now)
    running &= plan["active"].fillna(False).astype(bool)
    not_running = plan["open"] & ~running
    _skip(plan, not_running, Decision.NOT_RUNNING)
    plan.loc[not_running, "action"] = "exit"

    _skip(plan, ~data.audience_mask(plan, config, now=now), Decision.NOT_IN_AUDIENCE)
    _skip(plan, data.excluded_mask(plan, config, now=now), Decision.EXCLUDED)
    with clock("channels") if clock else contextlib.nullcontext():
        _choose_channels(plan, config)
    _defer(plan, config, now=now)
    _apply_caps(plan, config, now=now)
    _prioritise(plan, config, now=now, policy=policy)

    draw = np.zeros(len(plan), dtype=bool)
    for campaign_id, rows in plan.groupby("campaign_id").indices.items():  # one draw per campaign
        draw[rows] = rules.in_group(
            plan["enrollment_id"].to_numpy()[rows],
            seed=app_settings.RANDOMIZATION_SEED,
            salt=rules.holdout_salt(campaign_id),
            percent=float(plan["holdout_percent"].iloc[rows[0]] or 0),
        )
    plan["held_out"] = plan["held_out"].where(plan["held_out"].notna(), pd.Series(draw, index=plan.index))
    chosen = plan["open"].to_numpy()
    control = chosen & rules.in_group(
        plan["customer_id"].to_numpy(),
        seed=app_settings.RANDOMIZATION_SEED,
        salt=rules.CONTROL_SALT,
        percent=float(app_settings.GLOBAL_CONTROL_PERCENT or 0),
    )
    learned = (plan["policy"] != ManualPriorityPolicy.name).to_numpy()
    # The policy's customers are held out by its own random draw, instead of the campaign's.
    held = np.where(learned, plan["policy_control"].to_numpy(dtype=bool), plan["held_out"].astype(bool).to_numpy())
    holdout = chosen & ~control & held
    plan.loc[chosen, "outcome"] = SEND
    plan.loc[control, "outcome"] = CONTROL
    plan.loc[holdout, "outcome"] = HOLDOUT
    plan["propensity"] = _received_propensity(plan, learned)
    return plan


def _received_propensity(plan, learned):
    """The probability, at the decision, that the customer receives what each row's
    decision records (the campaign for a send; nothing otherwise), counting every random
    draw on the way: the global control group (share g), then the campaign holdout (share
    h; manual priority) or the policy's own choice and hold-out (``propensity`` of a send,
    ``nothing_propensity``). Rows with no decision keep 1.0."""
    g = float(app_settings.GLOBAL_CONTROL_PERCENT or 0) / 100.0
    h = plan["holdout_percent"].fillna(0).to_numpy(dtype="float64") / 100.0
    outcome = plan["outcome"].to_numpy(dtype=object)
    sent = outcome == SEND
    nothing = np.isin(outcome, [HOLDOUT, CONTROL, Decision.NOTHING])
    policy_send = plan["propensity"].to_numpy(dtype="float64")
    policy_nothing = plan["nothing_propensity"].to_numpy(dtype="float64")
    send_p = np.where(learned, (1 - g) * policy_send, (1 - g) * (1 - h))
    nothing_p = np.where(learned, g + (1 - g) * policy_nothing, g + (1 - g) * h)
    return np.where(sent, send_p, np.where(nothing, nothing_p, 1.0))


def _choose_channels(plan, config):
    """The first usable channel of each open row's campaign, or the reason there is none."""
    rows = plan.loc[plan["open"], ["campaign_id", "step", "customer_id"]].reset_index(names="row")
    if not len(rows):
        return
    options = rows.merge(config.channels, on="campaign_id").merge(
        config.templates, on=["campaign_id", "step", "channel_id"]
    )
    # 0 usable, 1 suppressed, 2 no consent, 3 unreachable: a row's best code says why.
    options["code"] = 3
    options["address"] = ""
    if len(options):
        reach = data.reachability(options["customer_id"].unique(), options["kind"].unique())
        for kind in options["kind"].unique():
            on_kind = (options["kind"] == kind).to_numpy()
            found = reach.reindex(options.loc[on_kind, "customer_id"].to_numpy())
            address = found[f"{kind}_address"].fillna("").to_numpy(dtype=object)
            consent = found[f"{kind}_consent"].fillna(False).to_numpy(dtype=bool)
            suppressed = found[f"{kind}_suppressed"].fillna(False).to_numpy(dtype=bool)
            code = np.where(address == "", 3, np.where(suppressed, 1, np.where(~consent, 2, 0)))
            options.loc[on_kind, "code"] = code
            options.loc[on_kind, "address"] = address
    options = options.sort_values(["row", "code", "order", "cc_id"], kind="stable")
    best = options.drop_duplicates("row").set_index("row")
    code = best["code"].reindex(rows["row"]).fillna(3).to_numpy(dtype=int)
    usable = rows["row"].to_numpy()[code == 0]
    picked = best.loc[usable]
    plan.loc[usable, "channel_id"] = picked["channel_id"].to_numpy(dtype="float64")
    plan.loc[usable, "template_id"] = picked["template_id"].to_numpy(dtype="float64")
    plan.loc[usable, "address"] = picked["address"].to_numpy(dtype=object)
    plan.loc[usable, "channel_kind"] = picked["kind"].to_numpy(dtype=object)
    for value, reason in ((1, Decision.SUPPRESSED), (2, Decision.NO_CONSENT), (3, Decision.UNREACHABLE)):
        mask = np.zeros(len(plan), dtype=bool)
        mask[rows["row"].to_numpy()[code == value]] = True
        _skip(plan, mask, reason)


def _defer(plan, config, *, now):
    """Rows due in quiet hours or outside the send window wait (no decision)."""
    open_rows = plan.index[plan["open"]]
    if not len(open_rows):
        return
    rows = plan.loc[open_rows]
    quiet = config.channel_quiet.reindex(rows["channel_id"].astype("int64").to_numpy())
    windows = pd.DataFrame(
        {
            "quiet_start": quiet["quiet_start"].to_numpy(dtype=object),
            "quiet_end": quiet["quiet_end"].to_numpy(dtype=object),
            "window_start": rows["window_start"].to_numpy(dtype=object),
            "window_end": rows["window_end"].to_numpy(dtype=object),
        }
    )
    allowed = rules.next_allowed(
        now, rows["time_zone"].to_numpy(dtype=object), windows, default_tz=timezone.get_default_timezone()
    )
    later = allowed > pd.Timestamp(now)
    deferred = open_rows[later]
    plan.loc[deferred, "defer_to"] = allowed[later]
    plan.loc[deferred, "action"] = "defer"
    plan.loc[deferred, "open"] = False


def _apply_caps(plan, config, *, now):
    open_rows = plan.index[plan["open"]]
    if not len(open_rows) or not len(config.caps):
        return
    candidates = plan.loc[open_rows, ["customer_id", "channel_kind"]]
    history = data.recent_messages(candidates["customer_id"].to_numpy(), config.caps, now=now)
    counts = rules.cap_counts(candidates, history, config.caps, now=now)
    mask = np.zeros(len(plan), dtype=bool)
    mask[plan.index.get_indexer(open_rows[rules.capped(counts, config.caps)])] = True
    _skip(plan, mask, Decision.CAPPED)


def _prioritise(plan, config, *, now, policy):
    """One campaign per customer, chosen by the policy (default manual priority). The winner
    carries the policy's propensity, expected value and its own random hold-out
    (``control``); a customer for whom the policy chose nothing gets one ``nothing``
    decision (on the first of their due steps). That one row also lists, in
    ``candidates``, every campaign chosen among. The customer's other due steps are
    outranked: no decision row of their own, and they move on like a decided step. Each
    row gets the policy's name and model version (``optimizing.RoundPolicy`` mixes manual
    and learned customers)."""
    from .optimizing import round_policy

    policy = policy or round_policy(config, now=now)
    name = getattr(policy, "name", type(policy).__name__)
    open_rows = plan.index[plan["open"]]
    if not len(open_rows):
        return
    rows = plan.loc[open_rows, ["customer_id", "campaign_id", "enrollment_id"]]
    # The round's policy reads its own features (``optimizing.RoundPolicy``); a policy given
    # by the caller gets an empty frame indexed by the customers.
    features = pd.DataFrame(index=pd.Index(rows["customer_id"].unique(), name="customer_id"))
    chosen = policy.decide(features, rows[["customer_id", "campaign_id"]].drop_duplicates(), now)
    chosen = chosen.assign(**{
        column: chosen[column] if column in chosen else default
        for column, default in (("policy", name), ("model_version", ""), ("nothing_propensity", np.nan))
    })
    # What the policy logs for a customer it gave nothing: the probability of that.
    chosen["nothing_propensity"] = chosen["nothing_propensity"].where(
        chosen["nothing_propensity"].notna() | chosen["campaign_id"].notna(), chosen["propensity"]
    ).fillna(0.0)
    by_customer = chosen.set_index("customer_id")
    open_customers = rows["customer_id"].to_numpy()
    for column in ("policy", "model_version", "nothing_propensity"):
        plan.loc[open_rows, column] = by_customer[column].reindex(open_customers).to_numpy()
    # The logged row of each customer: the chosen campaign's step, or (nothing chosen) the
    # customer's first due step.
    rows = rows.reset_index(names="row")
    nothing = rows[rows["customer_id"].isin(chosen.loc[chosen["campaign_id"].isna(), "customer_id"])]
    nothing = nothing.sort_values("enrollment_id").drop_duplicates("customer_id")
    plan.loc[nothing["row"].to_numpy(), "outcome"] = Decision.NOTHING
    chosen = chosen[chosen["campaign_id"].notna()].astype({"customer_id": "int64", "campaign_id": "int64"})
    winners = (
        rows.merge(chosen, on=["customer_id", "campaign_id"])
        .sort_values("enrollment_id")
        .drop_duplicates("customer_id")
    )
    rows_won = winners["row"].to_numpy()
    plan.loc[rows_won, "propensity"] = winners["propensity"].to_numpy(dtype="float64")
    plan.loc[rows_won, "expected_value"] = winners["expected_value"].to_numpy(dtype="float64")
    plan.loc[rows_won, "policy_control"] = winners["control"].to_numpy(dtype=bool)
    logged = np.concatenate([rows_won, nothing["row"].to_numpy()])
    plan.loc[logged, "candidates"] = candidate_lists(rows["customer_id"], rows["campaign_id"]).reindex(
        plan.loc[logged, "customer_id"].to_numpy()
    ).to_numpy()
    outranked = np.zeros(len(plan), dtype=bool)
    outranked[plan.index.get_indexer(open_rows)] = True
    outranked[plan.index.get_indexer(logged)] = False
    plan.loc[outranked, "reason"] = Decision.OUTRANKED
    plan.loc[outranked | plan.index.isin(nothing["row"]), "open"] = False


def candidate_lists(customers, campaigns):
    """Per customer (the index, sorted), the JSON text of their distinct campaign ids,
    sorted: ``Decision.candidates`` as the bulk insert writes it. Built a position at a
    time over all customers (a customer has a few campaigns due), not a group at a time."""
    owner, campaign = np.asarray(customers, dtype="int64"), np.asarray(campaigns, dtype="int64")
    order = np.lexsort((campaign, owner))
    owner, campaign = owner[order], campaign[order]
    distinct = np.ones(len(owner), dtype=bool)
    distinct[1:] = (owner[1:] != owner[:-1]) | (campaign[1:] != campaign[:-1])
    owner, campaign = owner[distinct], campaign[distinct]
    names, codes = np.unique(campaign, return_inverse=True)  # few campaigns: each written once
    ids = names.astype(str).astype(object)[codes.reshape(-1)]
    index, first = np.unique(owner, return_index=True)
    position = np.arange(len(owner)) - np.repeat(first, np.diff(np.append(first, len(owner))))
    text = ids[first]
    for k in range(1, int(position.max(initial=0)) + 1):
        at = position == k
        where = np.searchsorted(index, owner[at])
        text[where] = text[where] + "," + ids[at]
    return pd.Series("[" + text + "]", index=index, dtype=object)
