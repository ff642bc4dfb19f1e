"""How fast a decision round of a self-optimizing journey decides, and writes what it decided.

The issue's figure: 500,000 customers with 4 eligible campaigns each, decided in at most
10 s in the core, and at most 60 s end to end with the Decisions written to PostgreSQL, on
a 2-core machine.

Generated (not timed; its time is printed apart) in a fresh database: ``--customers`` N
customers, each with an email address, consent to email marketing (a ``Consent`` row: the
email policy is soft opt-in, and these customers have no account and no order) and a time
zone in which ``NOW`` (12:00 UTC) is outside the channel's quiet hours (21:00-08:00); one
email channel (console backend: the round only queues); ``--campaigns`` campaigns of one step
with a template each, holdout 0, the first half "after a purchase" (due 3 days after the
order), the second half follow-ups of the first half (a journey's ``FollowUp`` links), all
in one active Journey in self-optimizing mode; one due active Enrollment per customer and
campaign, keyed and with the context the triggers write (4N rows); a daily snapshot per
customer of the day before (features, segments and predictions, through
``snapshots.snapshot_replace``) so that ``policy_features`` reads real numbers; the app's
default frequency caps (``defaults.FREQUENCY_CAPS``: 1 email a day, 3 a week; nobody has
a message yet, so none binds) and no exclusion rule; and a learned ``PolicyVersion``: a
``JourneyPolicy`` on the journey's campaigns and follow-ups, ``learn``-ed on 200,000
synthetic logged decisions (uniformly random choices, as ``bench_optimizer.speed``, with
a small true uplift per campaign) with synthetic features, stored as
``optimizing.policy_learn`` stores a version.

Timed (PostgreSQL: after ANALYZE and CHECKPOINT):

1. The core: ``JourneyPolicy.decide`` on the N customers' features (``policy_features``,
   read before the clock starts) and their N x campaigns eligible pairs, with the journey's
   options; the median of 3. Target: <= 10 s.
2. End to end in one process: ``decision_round(now=NOW, enqueue=False)``: exits, claim, plan
   (channels and consent, quiet hours, caps, the policy with its feature read), the insert
   of the Decisions and Messages, the enrollments' advance, the commit; with the round's
   ``timings`` per phase, a breakdown (some of the round's functions, wrapped with a clock in
   the child: the policy's feature read and decide, the reachability read, the outbox's
   CSV, COPY and INSERT, the enrollments' UPDATE; "a > b" is b called inside a), the
   decisions written per outcome, the messages queued, the decisions made by the journey's
   policy, and the WAL the server wrote meanwhile. Target: <= 60 s.
3. With ``--workers N`` (PostgreSQL), on fresh data: the same round as the beat tick runs
   it, ``decision_round_shard`` per customer-id range of DECISION_SHARD_SIZE taken by N
   worker processes (``bench_delivery.sharded_round``), from the first shard handed out to
   the last committed. Target: <= 60 s.

    python benchmarks/bench_journeys.py [--customers 500000] [--campaigns 4] [--workers 2]
        [--database postgres|sqlite]

Each run is its own process on a fresh database: a throw-away PostgreSQL database
`journeys_bench_journeys` on 127.0.0.1 (user postgres), or a temporary SQLite file (a quick
small run; no workers there).
"""

import argparse
import copy
import datetime as dt
import functools
import json
import os
import pickle
import statistics
import time

import _common
import bench_delivery
import numpy as np
import pandas as pd

DATABASE = "journeys_bench_journeys"
NOW = dt.datetime(2025, 6, 2, 12, 0, tzinfo=dt.timezone.utc)  # a Monday, noon UTC
CHUNK = 100_000  # customers generated and inserted at once
LOGGED = 200_000  # synthetic logged decisions the policy learns from
# Blank is the shop's (Europe/London); at NOW every one of them is between 12:00 and 15:00.
TIME_ZONES = ("", "Europe/London", "Europe/Madrid", "Europe/Berlin", "Europe/Helsinki", "UTC")
QUIET = (dt.time(21), dt.time(8))
POST_PURCHASE_DELAY_DAYS = 3
FOLLOW_UP_DAYS = 14
CATEGORIES = [f"Category {n:02d}" for n in range(40)]
TEXT = "Hi {{ customer.first_name }}, something for you: {{ shop.url }}\nUnsubscribe: {{ unsubscribe_url }}"
HTML = "<p>Hi {{ customer.first_name }}, <a href=\"{{ shop.url }}\">something for you</a>.</p>" \
       "<p><a href=\"{{ unsubscribe_url }}\">Unsubscribe</a></p>"


# --- synthetic customers' features ----------------------------------------------------------------


def shop_features(n, seed):
    """A snapshot's features, segments and predictions (``schema.FEATURES`` and ``SCORES``)
    for customers 1 to ``n``, derived from the simulated population's features
    (``simulation.synthetic_features``: customer types, recency, orders, basket, discount
    share, clicks, views, tenure) so that they hang together."""
    from oscar_journeys.ml import schema
    from oscar_journeys.simulation import synthetic_features

    sim = synthetic_features(n, seed=seed)
    rng = np.random.default_rng([seed, 7])
    frequency = sim["frequency"].to_numpy().round().astype("int64")
    bought = frequency > 0
    tenure = sim["tenure_days"].to_numpy()
    recency = np.where(bought, np.minimum(sim["recency_days"].to_numpy(), tenure), np.nan)
    average = np.where(bought, sim["monetary"].to_numpy(), np.nan)
    first = np.where(bought, recency + (tenure - recency) * rng.uniform(0.3, 1.0, n), np.nan)
    between = np.where(frequency > 1, (first - recency) / np.maximum(frequency - 1, 1), np.nan)
    orders_90d = rng.poisson(frequency * 90.0 / np.maximum(tenure, 90.0))
    views = sim["other_category_views"].to_numpy().round().astype("int64") + rng.poisson(3, n)
    clicks = sim["email_click_rate"].to_numpy()
    top = rng.integers(0, len(CATEGORIES), (n, 3))
    categories = np.asarray(CATEGORIES, dtype=object)
    expected = frequency / np.maximum(tenure, 30.0) * 365.0
    churn = np.where(bought, 1.0 - np.exp(-np.nan_to_num(recency) / 180.0), np.nan)
    stage = np.where(~bought, schema.PROSPECT, np.where(churn > 0.6, schema.AT_RISK, schema.ACTIVE))
    scores = rng.integers(1, 6, (n, 3)).astype(str)
    next_order = np.where(frequency > 1, np.maximum(between - np.nan_to_num(recency), 1.0).round(), np.nan)
    frame = pd.DataFrame({
        "customer_id": np.arange(1, n + 1, dtype="int64"),
        "tenure_days": tenure,
        "frequency": frequency,
        "monetary": np.nan_to_num(average) * frequency,
        "avg_order_value": average,
        "recency_days": recency,
        "first_order_days": first,
        "avg_days_between_orders": between,
        "orders_90d": orders_90d,
        "revenue_90d": orders_90d * np.nan_to_num(average),
        "days_since_last_engagement": np.minimum(np.nan_to_num(recency, nan=365.0), rng.exponential(20.0, n)),
        "product_views_30d": views,
        "basket_additions_30d": rng.poisson(0.5 + views / 10.0),
        "searches_30d": rng.poisson(2.0, n),
        "logins_30d": rng.poisson(3.0, n),
        "open_basket_value": np.where(rng.random(n) < 0.2, np.nan_to_num(average) * rng.random(n), 0.0),
        "cancellations": rng.binomial(frequency, 0.03),
        "returns": rng.binomial(frequency, np.clip(sim["discount_order_share"].to_numpy() * 0.2, 0, 1)),
        "messages_opened_90d": rng.poisson(6.0 * (0.2 + 3.0 * clicks)),
        "messages_clicked_90d": rng.poisson(18.0 * clicks),
        "favourite_category": categories[top[:, 0]],
        "favourite_categories": [list(row) for row in categories[top]],
        "lifecycle_stage": stage,
        "rfm_score": np.where(bought, np.char.add(np.char.add(scores[:, 0], scores[:, 1]), scores[:, 2]), ""),
        "rfm_segment": np.where(bought, np.asarray(schema.RFM_SEGMENTS, dtype=object)[rng.integers(0, 11, n)], ""),
        "micro_segment": pd.array(rng.integers(0, 20, n), dtype="Int64"),
        "churn_probability": churn,
        "prob_alive": 1.0 - churn,
        "expected_orders": expected,
        "clv": expected * np.nan_to_num(average),
        "next_order_days": next_order,
    })
    return frame


def training_data(campaign_ids, seed=1):
    """``LOGGED`` logged decisions, each a uniformly random choice among the campaigns and
    nothing (propensity 1 / (K + 1), as ``bench_optimizer.speed``), and their features (the
    policy's columns): values drawn as there, the response rate 2 points higher per campaign
    (a small true uplift the policy can find)."""
    from oscar_journeys.services.optimizing import POLICY_FEATURES

    rng = np.random.default_rng(seed)
    k = len(campaign_ids)
    chosen = rng.integers(0, k + 1, LOGGED)
    ids = np.asarray([0, *campaign_ids], dtype="int64")
    responds = rng.random(LOGGED) < 0.15 + 0.02 * chosen
    outcomes = pd.DataFrame({
        "customer_id": np.arange(1, LOGGED + 1),
        "campaign_id": pd.array(ids[chosen], dtype="Int64"),
        "decided_at": pd.Timestamp(NOW - dt.timedelta(days=30)),
        "propensity": np.full(LOGGED, 1.0 / (k + 1)),
        "value": rng.gamma(0.3, 40.0, LOGGED) * responds,
    })
    outcomes.loc[chosen == 0, "campaign_id"] = pd.NA
    features = shop_features(LOGGED, seed=seed + 100)[list(POLICY_FEATURES)].astype("float64")
    return outcomes, features


# --- in the child process: generating -------------------------------------------------------------


def _reset_sequence(model):
    from django.core.management.color import no_style
    from django.db import connection

    with connection.cursor() as cursor:
        for sql in connection.ops.sequence_reset_sql(no_style(), [model]):
            cursor.execute(sql)


def generate(customers, n_campaigns):
    """The shop of the module docstring; returns the journey, the policy version and the
    (customer, campaign) pairs enrolled, in enrollment id order (the claim's)."""
    from django.db import transaction

    from oscar_journeys.defaults import FREQUENCY_CAPS
    from oscar_journeys.models import (
        Campaign, CampaignChannel, CampaignStep, Channel, Consent, Customer, Enrollment, FollowUp, FrequencyCap,
        Journey, MessageTemplate,
    )
    from oscar_journeys.models import campaigns as c
    from oscar_journeys.services import bulk, snapshots
    from oscar_journeys.services.triggers.base import insert_enrollments

    channel = Channel.objects.create(
        name="Email", kind="email", backend="oscar_journeys.channels.console.ConsoleChannel",
        options={"from_email": "Shop <shop@example.com>"}, quiet_hours_start=QUIET[0], quiet_hours_end=QUIET[1],
    )
    for kind, most, days in FREQUENCY_CAPS:
        FrequencyCap.objects.create(channel_kind=kind, max_messages=most, period_days=days)
    entries = max(1, (n_campaigns + 1) // 2)
    campaigns = []
    for j in range(n_campaigns):
        follow_up = j >= entries
        campaign = Campaign.objects.create(
            name=f"{'Follow-up' if follow_up else 'After a purchase'} {j + 1}",
            trigger=c.FOLLOW_UP if follow_up else c.POST_PURCHASE, priority=80 - 10 * j, holdout_percent=0,
            created_at=NOW - dt.timedelta(days=90),
        )
        CampaignChannel.objects.create(campaign=campaign, channel=channel, order=0)
        step = CampaignStep.objects.create(
            campaign=campaign, position=1, delay_value=0 if follow_up else POST_PURCHASE_DELAY_DAYS,
            delay_unit=c.HOURS if follow_up else c.DAYS,
        )
        MessageTemplate.objects.create(step=step, channel=channel, subject=f"{campaign.name}", body_text=TEXT,
                                       body_html=HTML)
        campaigns.append(campaign)
    journey = Journey.objects.create(name="Bench journey", mode=Journey.OPTIMIZED, active=True)
    journey.campaigns.set(campaigns[:entries])
    for j in range(entries, n_campaigns):
        FollowUp.objects.create(journey=journey, campaign=campaigns[j - entries], follow_up=campaigns[j],
                                delay_days=FOLLOW_UP_DAYS)

    as_of = snapshots.shop_yesterday(NOW)
    everyone = shop_features(customers, seed=3)
    rng = np.random.default_rng(0)
    for start in range(1, customers + 1, CHUNK):
        ids = np.arange(start, min(start + CHUNK, customers + 1), dtype="int64")
        n = len(ids)
        with transaction.atomic():
            bulk.insert_ignoring_conflicts(
                Customer,
                pd.DataFrame({
                    "id": ids, "email": [f"customer{i}@example.com" for i in ids], "phone": "",
                    "first_name": [f"C{i}" for i in ids], "last_name": "",
                    "time_zone": np.asarray(TIME_ZONES, dtype=object)[ids % len(TIME_ZONES)], "language": "",
                }),
                constants={"created_at": NOW - dt.timedelta(days=400), "updated_at": NOW - dt.timedelta(days=400)},
            )
            bulk.insert_ignoring_conflicts(
                Consent, pd.DataFrame({"customer_id": ids}),
                constants={"channel_kind": "email", "granted": True, "source": "bench", "wording": "",
                           "changed_at": NOW - dt.timedelta(days=400)},
            )
            # The order each "after a purchase" enrollment is about, placed 3 days ago, and
            # the earlier message each follow-up comes after (14 days ago).
            ordered = pd.Series(pd.Timestamp(NOW - dt.timedelta(days=POST_PURCHASE_DELAY_DAYS))
                                - pd.to_timedelta(rng.integers(1, 3600, n), unit="s"))
            for j, campaign in enumerate(campaigns):
                if j < entries:
                    numbers = (1_000_000 * (j + 1) + ids).astype(str)
                    frame = pd.DataFrame({
                        "customer_id": ids, "trigger_key": "order:" + pd.Series(numbers),
                        "triggered_at": ordered,
                        "context": [json.dumps({"order_number": number, "order_id": None}) for number in numbers],
                        "next_due_at": ordered + pd.Timedelta(days=POST_PURCHASE_DELAY_DAYS),
                    })
                else:
                    after = campaigns[j - entries].pk
                    messages = (10_000_000 * (j + 1) + ids).astype(str)
                    due = ordered - pd.Timedelta(days=1)
                    frame = pd.DataFrame({
                        "customer_id": ids, "trigger_key": "after:" + pd.Series(messages), "triggered_at": due,
                        "context": [f'{{"after_campaign": {after}, "message_id": {m}}}' for m in messages],
                        "next_due_at": due,
                    })
                insert_enrollments(frame, campaign_id=campaign.pk, now=NOW - dt.timedelta(days=4))
        snapshots.snapshot_replace(
            everyone.iloc[start - 1: start - 1 + n].assign(as_of=as_of), days=[as_of],
            customer_range=(int(ids[0]), int(ids[-1]) + 1), now=NOW - dt.timedelta(hours=10), training_run=1,
        )
    _reset_sequence(Customer)
    version = store_policy(journey)
    order = Enrollment.objects.order_by("id").values_list("customer_id", "campaign_id")
    pairs = pd.DataFrame.from_records(list(order.iterator(chunk_size=50_000)), columns=["customer_id", "campaign_id"])
    return journey, version, pairs


def store_policy(journey):
    """A ``JourneyPolicy`` on the journey's campaigns, learned on synthetic outcomes, stored
    as the latest ``PolicyVersion`` the way ``optimizing.policy_learn`` stores one (it has no
    storage helper of its own). Returns the version number."""
    from django.utils import timezone

    from oscar_journeys.models import PolicyVersion
    from oscar_journeys.optimizer import JourneyPolicy
    from oscar_journeys.services import decision_data, optimizing

    members, follow_ups = optimizing.journey_frames([journey])
    config = decision_data.load_config()
    campaigns = config.campaigns[config.campaigns["campaign_id"].isin(members)]
    policy = JourneyPolicy(campaigns[["campaign_id", "priority"]].assign(prior_value=0.0), follow_ups)
    outcomes, features = training_data(sorted(members))
    started = timezone.now()
    policy.learn(outcomes, features)
    number = 1
    policy.version = number
    PolicyVersion.objects.create(
        version=number, status=PolicyVersion.SUCCEEDED, started_at=started, finished_at=timezone.now(),
        learned_until=outcomes["decided_at"].max().to_pydatetime(), outcomes=len(outcomes),
        summary=[
            {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in row.items()}
            for row in policy.summary().to_dict("records")
        ],
        artifact=pickle.dumps(policy),
    )
    return number


def _wal(connection):
    """(WAL position in bytes, checkpoints so far) of the whole PostgreSQL server (other
    databases' writes count too); None elsewhere."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint, "
                       "checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter")
        return cursor.fetchone()


def _settle(connection):
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
            # The generator writes a lot of WAL: flush it now, so that the checkpoint it
            # makes due does not land in the timed part.
            cursor.execute("CHECKPOINT")


# --- in the child process: timing ----------------------------------------------------------------


class _Probe:
    """Seconds spent in some functions of the round (wrapped in this process only), to
    split its phases: a call inside another wrapped one is counted under "outer > inner"."""

    def __init__(self):
        self.seconds = {}
        self.stack = []

    def wrap(self, owner, name, label):
        original = getattr(owner, name, None)
        if original is None:  # renamed since: not measured
            return

        @functools.wraps(original)
        def timed(*args, **kwargs):
            path = " > ".join([*self.stack, label])
            self.stack.append(label)
            since = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[path] = self.seconds.get(path, 0.0) + time.perf_counter() - since
                self.stack.pop()

        setattr(owner, name, timed)


def run_round(database_url, customers, n_campaigns):
    bench_delivery.django_setup(database_url)
    from django.db import connection
    from django.db.models import Count

    from oscar_journeys.models import Decision, Message
    from oscar_journeys.optimizer import JourneyPolicy
    from oscar_journeys.services import bulk, decision_data, decision_plan, decisions, optimizing
    from oscar_journeys.services.decisions import decision_round

    started = time.perf_counter()
    journey, version, pairs = generate(customers, n_campaigns)
    generated = time.perf_counter() - started
    _settle(connection)

    probe = _Probe()
    probe.wrap(decision_plan, "_prioritise", "prioritise")
    probe.wrap(optimizing, "policy_features", "policy features read")
    probe.wrap(JourneyPolicy, "decide", "policy decide")
    probe.wrap(optimizing, "base_policy", "policy version load")
    probe.wrap(decision_data, "reachability", "reachability read")
    probe.wrap(decision_plan, "_defer", "quiet hours")
    probe.wrap(decision_plan, "_apply_caps", "caps")
    probe.wrap(decision_data, "update_enrollments", "update enrollments")
    probe.wrap(bulk, "insert_rows_with_children", "insert statement")
    probe.wrap(bulk, "copy_to_temp", "copy to temp")
    probe.wrap(bulk, "_copy", "COPY")
    probe.wrap(bulk, "_csv", "csv")
    probe.wrap(decisions, "_write_outbox", "outbox")

    wal = _wal(connection)
    started = time.perf_counter()
    result = decision_round(now=NOW, enqueue=False)
    seconds = time.perf_counter() - started
    if wal is not None:
        after = _wal(connection)
        wal = {"wal_gb": round((after[0] - wal[0]) / 1e9, 2), "checkpoints": after[1] - wal[1]}
        with connection.cursor() as cursor:  # the settings that matter most at this size (docs/settings.md)
            cursor.execute("SELECT current_setting('shared_buffers'), current_setting('max_wal_size')")
            wal["settings"] = "shared_buffers {}, max_wal_size {}".format(*cursor.fetchone())
    inside = {k: round(v, 2) for k, v in probe.seconds.items()}

    written = dict(Decision.objects.values_list("outcome").annotate(n=Count("id")).order_by("outcome"))
    by_policy = Decision.objects.filter(policy=JourneyPolicy.name, model_version=str(version)).count()
    queued = Message.objects.filter(status=Message.QUEUED).count()

    # The core, on what the round read: the features of the day and the eligible pairs (in
    # the claim's order), with the journey's options as the round sets them.
    policy = copy.copy(optimizing.policy_of(version))
    _, follow_ups = optimizing.journey_frames([journey])
    policy.set_options(follow_ups=follow_ups, discount=journey.discount, depth=journey.depth,
                       exploration=journey.exploration, holdout=getattr(journey, "holdout", None))
    read = time.perf_counter()
    features = optimizing.policy_features(np.unique(pairs["customer_id"].to_numpy()), now=NOW)
    read = time.perf_counter() - read
    core = []
    for seed in range(3):
        began = time.perf_counter()
        decided = policy.decide(features, pairs, NOW, seed=seed)
        core.append(time.perf_counter() - began)
    sent = int(decided["campaign_id"].notna().sum())
    return {
        "vendor": connection.vendor, "generated": generated, "customers": customers, "campaigns": n_campaigns,
        "enrolled": len(pairs), "feature_columns": features.shape[1], "feature_read": read,
        "core": core, "core_decided": len(decided), "core_sent": sent,
        "round": seconds, "round_inner": result.seconds, "due": result.due,
        "timings": {k: round(v, 2) for k, v in result.timings.items()},
        "inside": inside,
        "outcomes": dict(result.outcomes), "reasons": dict(result.reasons), "written": written,
        "deferred": result.deferred, "completed": result.completed, "messages": result.messages, "queued": queued,
        "by_policy": by_policy, "busy": result.busy, "wal": wal,
    }


def run_sharded(database_url, customers, n_campaigns, workers):
    bench_delivery.django_setup(database_url)
    from django.db import connection

    from oscar_journeys import app_settings
    from oscar_journeys.models import Decision, Message
    from oscar_journeys.services.decision_data import due_customer_ranges

    started = time.perf_counter()
    generate(customers, n_campaigns)
    generated = time.perf_counter() - started
    _settle(connection)
    shards = due_customer_ranges(now=NOW, shard_size=int(app_settings.DECISION_SHARD_SIZE))
    connection.close()
    sharded = bench_delivery.sharded_round(database_url, NOW, shards, workers)
    written = Decision.objects.count()
    queued = Message.objects.filter(status=Message.QUEUED).count()
    return {"generated": generated, "written": written, "queued": queued, **sharded}


# --- the parent: one child process per database (see _common) ------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=500_000)
    parser.add_argument("--campaigns", type=int, default=4)
    parser.add_argument("--workers", type=int, default=0,
                        help="also time the round as N worker processes deciding the shards (PostgreSQL)")
    parser.add_argument("--database", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        if options.workers:
            got = run_sharded(options.child, options.customers, options.campaigns, options.workers)
        else:
            got = run_round(options.child, options.customers, options.campaigns)
        print(json.dumps(got))
        return
    database, n, k = options.database, options.customers, options.campaigns
    with _common.scratch_database(database, DATABASE) as url:
        got = _common.run_child(__file__, url, "--customers", n, "--campaigns", k, label=database)
    core = statistics.median(got["core"])
    print(f"[{database}] generated {n:,} customers, {got['enrolled']:,} due enrollments in {k} campaigns of a "
          f"self-optimizing journey, snapshots, a policy learned on {LOGGED:,} decisions "
          f"in {got['generated']:.0f} s (not timed)", flush=True)
    print(f"[{database}] core: JourneyPolicy.decide {got['core_decided']:,} customers x {k} eligible campaigns "
          f"({got['feature_columns']} features; {got['core_sent']:,} given a campaign) in {core:.2f} s "
          f"(median of 3: {', '.join(f'{s:.2f}' for s in got['core'])}; features read in "
          f"{got['feature_read']:.2f} s, not counted); target <= 10 s", flush=True)
    print(f"[{database}] end to end: decision_round {got['due']:,} due steps -> {sum(got['written'].values()):,} "
          f"decisions written {got['written']}, {got['queued']:,} messages queued, "
          f"{got['by_policy']:,} decided by the journey's policy, {got['deferred']:,} deferred, in "
          f"{got['round']:.2f} s ({got['timings']}; breakdown: {got['inside']}); skipped {got['reasons']}; "
          f"target <= 60 s  [load avg {os.getloadavg()[0]:.1f}"
          + (f"; server-wide during the round: {got['wal']['wal_gb']} GB of WAL, {got['wal']['checkpoints']} "
             f"checkpoints; server: {got['wal']['settings']}" if got["wal"] else "") + "]", flush=True)
    if options.workers and database == "postgres":
        with _common.scratch_database(database, DATABASE) as url:
            got = _common.run_child(__file__, url, "--customers", n, "--campaigns", k, "--workers", options.workers,
                                    label=f"{database} with workers")
        print(f"[{database}] with {got['workers']} workers: {got['shards']} decision_round_shard tasks "
              f"{got['seconds']:.2f} s, {got['decisions']:,} decisions ({got['written']:,} written), "
              f"{got['messages']:,} messages queued ({got['queued']:,}); target <= 60 s  "
              f"[data generated in {got['generated']:.0f} s]", flush=True)


if __name__ == "__main__":
    main()
