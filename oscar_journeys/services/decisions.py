"""The decision round: what each due enrollment step gets, written with its outbox message.

``decision_round(now=..., customer_range=(lo, hi))`` takes the active enrollments whose next
step is due (after ``triggers.enrollments_exit_due`` has let go of those whose exit condition
holds), and on frames, for all of them at once:

1. skips steps whose campaign is not running, whose customer is not in the campaign's
   audience (latest snapshot features, ``ml.audience``) or is excluded by a rule (an event
   of the rule's type within its days);
2. picks the channel: the campaign's first channel (``CampaignChannel.order``) that is
   enabled, has a template for the step, and reaches the customer with consent on an
   address not suppressed (``services.consent.reachability``); none: skipped, with the
   reason;
3. defers (no decision; ``next_due_at`` moves) the steps due in the channel's quiet hours
   or outside the campaign's send window, in the customer's time zone (``ml.rules``);
4. skips the steps a frequency cap forbids (``ml.rules``; a capped step is not retried);
5. lets the policy (``optimizer.ManualPriorityPolicy``) choose one campaign per customer;
   the others are skipped as outranked;
6. for the chosen one: the global control group gets a ``control`` decision, a held-out
   enrollment (drawn once, deterministically, stored on ``Enrollment.held_out``) a
   ``holdout`` decision, everyone else a ``send`` decision and a queued ``Message``.

Control and holdout are drawn after every other rule, so they stand for "would have been
sent": uplift compares like with like. Decisions, messages and the enrollments' advance are
written in one transaction, in bulk; the send tasks are queued once it commits. On
PostgreSQL the due enrollments are claimed with ``SELECT ... FOR UPDATE SKIP LOCKED``, so
two rounds running at once never decide the same step.
"""

import contextlib
import logging
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from django.db import transaction
from django.utils import timezone

from .. import app_settings
from ..ml import rules
from ..models import Decision, Enrollment, Message
from ..models.delivery import message_idempotency_key
from ..optimizer import ManualPriorityPolicy
from . import decision_data as data

logger = logging.getLogger(__name__)

SKIPPED, SEND, HOLDOUT, CONTROL = Decision.SKIPPED, Decision.SEND, Decision.HOLDOUT, Decision.CONTROL


@dataclass
class RoundResult:
    """What one round did. ``outcomes``: decisions written per outcome; ``reasons``: skipped
    decisions per reason; ``message_ids``: the messages queued."""

    due: int = 0
    exited: dict = field(default_factory=dict)
    outcomes: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    deferred: int = 0
    completed: int = 0
    message_ids: list = field(default_factory=list)
    seconds: float = 0.0
    timings: dict = field(default_factory=dict)  # seconds per phase, for benchmarks and logs

    @property
    def decisions(self):
        return sum(self.outcomes.values())

    @property
    def messages(self):
        return len(self.message_ids)

    def as_dict(self):
        return {
            "due": self.due,
            "exited": sum(self.exited.values()),
            "decisions": self.decisions,
            **{f"decisions_{k}": v for k, v in sorted(self.outcomes.items())},
            **{f"skipped_{k}": v for k, v in sorted(self.reasons.items())},
            "deferred": self.deferred,
            "completed": self.completed,
            "messages": self.messages,
        }


def decision_round(*, now=None, customer_range=None, enqueue=True, policy=None):
    """Decide every active enrollment step due at ``now`` (for customers ``lo <= id < hi``
    with ``customer_range=(lo, hi)``); return a RoundResult. With ``enqueue`` the new
    messages' send tasks are queued when the transaction commits (``journeys_run`` sends
    them in process instead). ``policy``: a policy with ``decide()``; default manual
    priority."""
    from .triggers import enrollments_exit_due

    now = now or timezone.now()
    started = time.monotonic()
    result = RoundResult()
    clock = _Clock(result.timings)
    with clock("exits"):
        result.exited = enrollments_exit_due(now=now, customer_range=customer_range) or {}
    with transaction.atomic():
        with clock("claim"):
            due = data.claim_due(now=now, customer_range=customer_range)
        result.due = len(due)
        if len(due):
            config = data.load_config()
            with clock("plan"):
                plan = _plan(due, config, now=now, policy=policy, clock=clock)
            with clock("write"):
                _write(plan, config, now=now, result=result)
            if enqueue and result.message_ids:
                _enqueue(result.message_ids)
        committing = time.monotonic()
    result.timings["commit"] = time.monotonic() - committing  # with the send tasks' publishing
    result.seconds = time.monotonic() - started
    logger.info(
        "decision round %s: %d due, %s, %d deferred, %d messages in %.2fs",
        customer_range or "all", result.due, dict(result.outcomes), result.deferred, result.messages, result.seconds,
    )
    return result


class _Clock:
    """``with clock("name"):`` adds the seconds spent inside to ``timings["name"]``."""

    def __init__(self, timings):
        self.timings = timings

    @contextlib.contextmanager
    def __call__(self, name):
        since = time.monotonic()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.monotonic() - since


def _enqueue(message_ids):
    from ..tasks import enqueue_on_commit, messages_send

    size = max(1, int(app_settings.SEND_BATCH_SIZE))
    for start in range(0, len(message_ids), size):
        enqueue_on_commit(messages_send, list(message_ids[start : start + size]))


# --- the plan: one row per claimed enrollment, on frames -----------------------------------------


def _skip(plan, mask, reason):
    """Mark the still-open rows in ``mask`` skipped for ``reason``."""
    mask = np.asarray(mask, dtype=bool) & plan["open"].to_numpy()
    plan.loc[mask, ["outcome", "reason"]] = [SKIPPED, reason]
    plan.loc[mask, "open"] = False


def _plan(due, config, *, now, policy, clock=None):
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
    plan["expected_value"] = np.nan
    plan["policy_control"] = False
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
    plan["policy"] = _prioritise(plan, config, now=now, policy=policy)

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
    held = plan["held_out"].astype(bool).to_numpy() | plan["policy_control"].to_numpy(dtype=bool)
    holdout = chosen & ~control & held
    plan.loc[chosen, "outcome"] = SEND
    plan.loc[control, "outcome"] = CONTROL
    plan.loc[holdout, "outcome"] = HOLDOUT
    return plan


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
    """One campaign per customer, chosen by the policy (default manual priority); the
    customer's other due steps are outranked. The winners carry the policy's propensity,
    expected value and its own random hold-out (``control``); a customer for whom the
    policy chose nothing gets ``nothing`` decisions. Returns the policy's name."""
    policy = policy or ManualPriorityPolicy(config.campaigns[["campaign_id", "priority"]])
    name = getattr(policy, "name", type(policy).__name__)
    open_rows = plan.index[plan["open"]]
    if not len(open_rows):
        return name
    rows = plan.loc[open_rows, ["customer_id", "campaign_id", "enrollment_id"]]
    # Features are not read for manual priority; a learning policy (issue 5) gets its own.
    features = pd.DataFrame(index=pd.Index(rows["customer_id"].unique(), name="customer_id"))
    chosen = policy.decide(features, rows[["customer_id", "campaign_id"]].drop_duplicates(), now)
    nothing = plan.index.isin(open_rows) & plan["customer_id"].isin(
        chosen.loc[chosen["campaign_id"].isna(), "customer_id"]
    ).to_numpy()
    plan.loc[nothing, "outcome"] = Decision.NOTHING
    plan.loc[nothing, "open"] = False
    chosen = chosen[chosen["campaign_id"].notna()].astype({"customer_id": "int64", "campaign_id": "int64"})
    winners = (
        rows.reset_index(names="row")
        .merge(chosen, on=["customer_id", "campaign_id"])
        .sort_values("enrollment_id")
        .drop_duplicates("customer_id")
    )
    rows_won = winners["row"].to_numpy()
    plan.loc[rows_won, "propensity"] = winners["propensity"].to_numpy(dtype="float64")
    plan.loc[rows_won, "expected_value"] = winners["expected_value"].to_numpy(dtype="float64")
    plan.loc[rows_won, "policy_control"] = winners["control"].to_numpy(dtype=bool)
    mask = np.zeros(len(plan), dtype=bool)
    mask[plan.index.get_indexer(open_rows)] = True
    mask[plan.index.get_indexer(rows_won)] = False
    _skip(plan, mask, Decision.OUTRANKED)
    return name


# --- writing ---------------------------------------------------------------------------------------


def _write(plan, config, *, now, result):
    decided = plan[plan["outcome"].notna()]
    ids = _write_decisions(decided, now=now)
    sends = decided[decided["outcome"] == SEND]
    result.message_ids = _write_messages(sends, ids, now=now)
    result.outcomes.update(decided["outcome"].tolist())
    result.reasons.update(decided.loc[decided["outcome"] == SKIPPED, "reason"].tolist())
    result.deferred, result.completed = _advance(plan, config, now=now)


def _ints(series):
    """Python ints (None for missing): what the bulk insert writes."""
    return [None if v != v else int(v) for v in series.to_numpy(dtype="float64")]


def _write_decisions(decided, *, now):
    """Insert the decisions (a step already decided is skipped: unique (enrollment, step));
    return {(enrollment id, step): decision id} of those inserted here."""
    if not len(decided):
        return {}
    enrollments, steps = decided["enrollment_id"].tolist(), decided["step"].tolist()
    inserted = data.insert_rows(
        Decision,
        {
            "customer_id": decided["customer_id"].tolist(), "campaign_id": decided["campaign_id"].tolist(),
            "enrollment_id": enrollments, "step": steps, "decided_at": now, "outcome": decided["outcome"].tolist(),
            "reason": decided["reason"].tolist(), "channel_id": _ints(decided["channel_id"]),
            "policy": str(decided["policy"].iloc[0])[:32], "propensity": decided["propensity"].tolist(),
            "expected_value": [None if v != v else float(v) for v in decided["expected_value"].tolist()],
        },
        returning=("enrollment", "step", "id"),
    )
    if inserted is None:  # not PostgreSQL: read them back
        return data.decision_ids(enrollments, steps, decided_at=now)
    return {(enrollment, step): pk for enrollment, step, pk in inserted}


def _write_messages(sends, decision_ids, *, now):
    """Insert one queued message per send decision inserted by this round; return their ids."""
    sends = sends[[(e, s) in decision_ids for e, s in zip(sends["enrollment_id"].tolist(), sends["step"].tolist())]]
    if not len(sends):
        return []
    keys = [
        message_idempotency_key(customer_id=c, campaign_id=k, step=s, trigger_key=t)
        for c, k, s, t in zip(
            sends["customer_id"].tolist(), sends["campaign_id"].tolist(), sends["step"].tolist(),
            sends["trigger_key"].tolist(),
        )
    ]
    inserted = data.insert_rows(
        Message,
        {
            "decision_id": [decision_ids[(e, s)] for e, s in zip(sends["enrollment_id"].tolist(), sends["step"].tolist())],
            "customer_id": sends["customer_id"].tolist(), "campaign_id": sends["campaign_id"].tolist(),
            "enrollment_id": sends["enrollment_id"].tolist(), "step": sends["step"].tolist(),
            "channel_id": _ints(sends["channel_id"]), "template_id": _ints(sends["template_id"]),
            "idempotency_key": keys, "recipient": sends["address"].tolist(), "status": Message.QUEUED,
            "send_after": now, "created_at": now,
        },
        returning=("id",),
    )
    if inserted is None:
        return data.queued_message_ids(keys, send_after=now)
    return sorted(pk for (pk,) in inserted)


def _advance(plan, config, *, now):
    """Move every claimed enrollment on: to its next step (due ``delay`` after the trigger,
    and never sooner after this step than the campaign spaces them, so a deferred step
    pushes the following ones too), to its end, or to its deferred time; and store the
    holdout draw. The new values are computed here on the frame and written in bulk.
    Returns (deferred, completed)."""
    plan = plan.merge(
        config.steps.rename(columns={"step": "next", "delay": "next_delay"}).assign(step=lambda f: f["next"] - 1),
        on=["campaign_id", "step"], how="left",
    )
    action = plan["action"].to_numpy(dtype=object)
    has_next = plan["next"].notna().to_numpy()
    advancing = (action == "advance") & has_next
    completed = (action == "complete") | ((action == "advance") & ~has_next)
    on_schedule = plan["triggered_at"] + plan["next_delay"]
    spaced = pd.Timestamp(now) + (plan["next_delay"] - plan["delay"])
    due = on_schedule.where(on_schedule >= spaced, spaced)
    due = due.where(advancing, plan["defer_to"].where(action == "defer"))
    status = np.where(completed, Enrollment.COMPLETED, np.where(action == "exit", Enrollment.EXITED, Enrollment.ACTIVE))
    update = pd.DataFrame({
        "id": plan["enrollment_id"].to_numpy(dtype="int64"),
        "status": status,
        "next_step": np.where(advancing, plan["next"].fillna(0), plan["step"]).astype("int64"),
        "next_due_at": due,
        "exit_reason": np.where(action == "exit", "campaign_ended", ""),
        "held_out": plan["held_out"].astype(bool).to_numpy(),
    })
    data.update_enrollments(update)
    return int((action == "defer").sum()), int(completed.sum())
