"""Run a policy in a simulated world, day after day, and count what it earned.

Each day of a run:

1. the eligible pairs: the world's base triggers of the day (the same for every policy),
   plus the follow-ups due that day (from what this policy's customers actually received);
2. ``policy.decide(world.features(ids, now), eligible, now, seed=...)``: one decision per
   eligible customer;
3. the world draws what each customer did after what they received: the chosen campaign,
   or nothing when the policy chose nothing or held the customer out (``control``);
4. the outcomes are logged (with the features at decision, row for row) and the follow-ups
   of each received campaign are scheduled;
5. every ``learn_every`` days, before deciding, a policy with a ``learn`` method learns from
   the outcomes whose attribution window (``attribution_days`` after the decision) has
   closed since it last learned.

The count is exact where it can be: the world knows each customer's type, so the true
expected incremental value of every decision (E[value | received] - E[value | nothing]) is
added up without noise, next to the realized value the draws gave. Time is the ``start``
argument plus the day index; nothing here reads the clock or sleeps (except to time the
run), and a run is reproducible from the world's seed and ``seed``.
"""

import datetime as dt
import time

import numpy as np
import pandas as pd

from ..optimizer.manual import DECISION_COLUMNS

#: The columns ``learn`` receives (the logged outcomes of the common policy interface).
LEARN_COLUMNS = ("customer_id", "campaign_id", "decided_at", "propensity", "value")

CONDITIONS = ("any", "responded", "not_responded")



def _whole(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be a whole number, {minimum} or more, got {value!r}")
    return int(value)


def day_seed(seed, day):
    """The seed handed to ``policy.decide`` on day ``day`` of a run with ``seed``: one
    independent stream per day, the same in every run with the same seed."""
    return int(np.random.SeedSequence([seed, day]).generate_state(1, dtype=np.uint32)[0])


class RunResult:
    """What a run produced.

    - ``daily``: one row per day: ``day``, ``now``, ``decisions`` (customers decided on),
      ``pairs`` (eligible pairs), ``sends`` (received a campaign), ``controls`` (held
      out), ``nothing`` (the policy chose nothing), ``incremental_value`` (true expected),
      ``realized_value`` (what the draws gave, sends and nothing alike), ``baseline_value``
      (true expected value had nobody received anything), ``learned`` (rows learned from
      before that day's decisions).
    - ``outcomes``: one row per decision, the logged data: the five columns ``learn``
      receives (``customer_id``, ``campaign_id`` = what was received, NA for nothing or
      control; ``decided_at``, ``propensity``, ``value``), then ``day``,
      ``chosen_campaign_id`` (the decision's campaign, also for control rows),
      ``control``, ``responded``, ``expected_value`` (the policy's own estimate), and the
      world's truth, never shown to a policy: ``true_value`` (E[value | received]),
      ``true_baseline`` (E[value | nothing]), ``true_uplift`` (their difference) and
      ``hidden_type``.
    - ``features``: the features at decision, row for row with ``outcomes``.
    - ``eligible``: every eligible pair offered: ``day``, ``customer_id``, ``campaign_id``.
    - ``policy_name``, ``start``, ``days``, ``learn_calls``, ``seconds`` (wall time)."""

    def __init__(self, *, policy_name, start, days, daily, outcomes, features, eligible, learn_calls, seconds):
        self.policy_name = policy_name
        self.start = start
        self.days = days
        self.daily = daily
        self.outcomes = outcomes
        self.features = features
        self.eligible = eligible
        self.learn_calls = learn_calls
        self.seconds = seconds

    def summary(self, from_day=0):
        """Totals from day ``from_day`` on (0: the whole run), as a dict:
        ``incremental_value`` (true expected), ``realized_value``, ``baseline_value``,
        ``realized_incremental`` (realized minus baseline: the noisy measure of the same
        thing), ``decisions``, ``sends``, ``controls``, ``per_decision`` (incremental value
        per decision), ``from_day``, ``days``."""
        from_day = _whole(from_day, "from_day", 0)
        rows = self.daily[self.daily["day"] >= from_day]
        decisions = int(rows["decisions"].sum())
        incremental = float(rows["incremental_value"].sum())
        realized = float(rows["realized_value"].sum())
        baseline = float(rows["baseline_value"].sum())
        return {
            "policy": self.policy_name,
            "from_day": from_day,
            "days": int(len(rows)),
            "decisions": decisions,
            "sends": int(rows["sends"].sum()),
            "controls": int(rows["controls"].sum()),
            "incremental_value": incremental,
            "realized_value": realized,
            "baseline_value": baseline,
            "realized_incremental": realized - baseline,
            "per_decision": incremental / decisions if decisions else 0.0,
        }

    @property
    def totals(self):
        """``summary()`` of the whole run."""
        return self.summary(0)

    def by_type(self, from_day=0):
        """Per hidden type (from day ``from_day`` on): ``decisions``, ``sends``,
        ``incremental_value`` (true expected) and ``per_decision``."""
        from_day = _whole(from_day, "from_day", 0)
        rows = self.outcomes[self.outcomes["day"] >= from_day]
        grouped = rows.assign(sent=rows["campaign_id"].notna()).groupby("hidden_type")
        table = pd.DataFrame(
            {
                "decisions": grouped.size(),
                "sends": grouped["sent"].sum(),
                "incremental_value": grouped["true_uplift"].sum(),
            }
        )
        table["per_decision"] = table["incremental_value"] / table["decisions"]
        return table

    def __repr__(self):
        s = self.totals
        return (
            f"<RunResult {self.policy_name}: {self.days} days, {s['decisions']} decisions, "
            f"incremental {s['incremental_value']:.0f}>"
        )


def _check_follow_ups(follow_ups):
    frame = follow_ups.copy()
    missing = {"campaign_id", "follow_up_id", "delay_days"} - set(frame.columns)
    if missing:
        raise ValueError(f"world.follow_ups lacks column(s) {sorted(missing)}")
    if "condition" not in frame.columns:
        frame["condition"] = "any"
    frame["condition"] = frame["condition"].fillna("any")
    unknown = set(frame["condition"]) - set(CONDITIONS)
    if unknown:
        raise ValueError(f"world.follow_ups has unknown condition(s) {sorted(unknown)}")
    if (frame["delay_days"] < 1).any():
        raise ValueError("world.follow_ups: delay_days must be 1 or more")
    return frame


def _campaign_floats(column):
    """A campaign id column (ints, floats with NaN, nullable Int64, objects with None) as
    float64 with NaN for nothing."""
    series = pd.Series(column.to_numpy() if isinstance(column, pd.Series) else column)
    if series.dtype == object:
        numbers = pd.to_numeric(series, errors="coerce")
        if (series.notna() & numbers.isna()).any():
            raise ValueError("policy decisions: campaign_id must be a campaign id or None")
        series = numbers
    return series.astype("Float64").to_numpy(dtype="float64", na_value=np.nan)


def _check_decisions(decisions, customers, pair_customers, pair_campaigns):
    """The policy's decisions as arrays aligned with ``customers`` (sorted unique ids):
    chosen campaign (NaN for nothing), control, propensity, expected value. Raises
    ValueError when the policy broke the interface."""
    if not isinstance(decisions, pd.DataFrame):
        raise ValueError("policy.decide must return a DataFrame")
    missing = set(DECISION_COLUMNS) - set(decisions.columns)
    if missing:
        raise ValueError(f"policy decisions lack column(s) {sorted(missing)}")
    ids = decisions["customer_id"].to_numpy(dtype="int64")
    order = np.argsort(ids, kind="stable")
    ids = ids[order]
    if len(ids) != len(customers) or np.any(ids != customers):
        raise ValueError("policy decisions must hold exactly one row per eligible customer")
    chosen = _campaign_floats(decisions["campaign_id"])[order]
    control = decisions["control"].fillna(False).to_numpy(dtype=bool)[order]
    propensity = pd.to_numeric(decisions["propensity"]).to_numpy(dtype="float64")[order]
    if not np.all((propensity > 0) & (propensity <= 1)):
        raise ValueError("policy decisions: propensity must be in (0, 1]")
    expected = pd.to_numeric(decisions["expected_value"]).to_numpy(dtype="float64", na_value=np.nan)[order]
    sent = ~np.isnan(chosen)
    if sent.any():
        picked = chosen[sent]
        if np.any(picked != np.round(picked)):
            raise ValueError("policy decisions: campaign_id must be a whole number")
        picked = picked.astype("int64")
        width = int(max(pair_campaigns.max(), np.abs(picked).max())) + 1
        keys = pair_customers * width + pair_campaigns  # sorted: the pairs are sorted
        wanted = customers[sent] * width + picked
        at = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
        if np.any(keys[at] != wanted):
            raise ValueError("policy chose a campaign the customer is not eligible for")
    return chosen, control, propensity, expected


def _day_pairs(base, due):
    """The day's eligible pairs: the base triggers plus the follow-ups due, without
    repeats, sorted by customer then campaign (two arrays)."""
    customers = np.concatenate([base["customer_id"].to_numpy(dtype="int64")] + [c for c, _ in due])
    campaigns = np.concatenate([base["campaign_id"].to_numpy(dtype="int64")] + [a for _, a in due])
    order = np.lexsort((campaigns, customers))
    customers, campaigns = customers[order], campaigns[order]
    keep = np.ones(len(order), dtype=bool)
    keep[1:] = (customers[1:] != customers[:-1]) | (campaigns[1:] != campaigns[:-1])
    return customers[keep], campaigns[keep]


def _schedule(pending, follow_ups, day, customers, received, responded):
    """Add to ``pending`` (day -> list of pair arrays) the follow-ups of what the customers
    received on ``day``: only a campaign actually received opens its follow-ups."""
    for follow in follow_ups.itertuples(index=False):
        hit = received == follow.campaign_id
        if follow.condition == "responded":
            hit &= responded
        elif follow.condition == "not_responded":
            hit &= ~responded
        if hit.any():
            ids = np.full(int(hit.sum()), int(follow.follow_up_id), dtype="int64")
            pending.setdefault(day + int(follow.delay_days), []).append((customers[hit], ids))


class _Log:
    """The decisions logged so far, one array per column and day, and the features at
    decision; ``rows_through[d]``: the number of rows logged up to and including day d."""

    COLUMNS = ("day", "customer_id", "campaign_id", "propensity", "value", "chosen", "control", "responded",
               "expected_value", "true_value", "true_baseline")

    def __init__(self, start):
        self.start = pd.Timestamp(start)
        self.chunks = {name: [] for name in self.COLUMNS}
        self.features = []
        self.feature_columns = []
        self.rows_through = []

    def add(self, features, **columns):
        for name in self.COLUMNS:
            self.chunks[name].append(columns[name])
        self.features.append(features.to_numpy(dtype="float64"))
        self.feature_columns = list(features.columns)
        self.close_day(len(columns["day"]))

    def close_day(self, rows=0):
        self.rows_through.append((self.rows_through[-1] if self.rows_through else 0) + rows)

    def column(self, name, begin=0, stop=None):
        if not self.chunks[name]:
            return np.array([], dtype=bool if name in ("control", "responded") else "float64")
        return np.concatenate(self.chunks[name])[begin:stop]

    def campaign(self, name, begin=0, stop=None):
        return pd.array(self.column(name, begin, stop), dtype="Float64").astype("Int64")

    def decided_at(self, begin=0, stop=None):
        return self.start + pd.to_timedelta(self.column("day", begin, stop).astype("int64"), unit="D")

    def feature_frame(self, begin=0, stop=None):
        matrix = np.concatenate(self.features) if self.features else np.empty((0, len(self.feature_columns)))
        return pd.DataFrame(matrix[begin:stop], columns=self.feature_columns)

    def for_learning(self, begin, stop):
        """Rows [begin, stop) as ``learn`` takes them: (outcomes, features), row for row."""
        outcomes = pd.DataFrame(
            {
                "customer_id": self.column("customer_id", begin, stop).astype("int64"),
                "campaign_id": self.campaign("campaign_id", begin, stop),
                "decided_at": self.decided_at(begin, stop),
                "propensity": self.column("propensity", begin, stop),
                "value": self.column("value", begin, stop),
            }
        )
        return outcomes, self.feature_frame(begin, stop)

    def outcomes(self, types):
        customers = self.column("customer_id").astype("int64")
        true_value, true_baseline = self.column("true_value"), self.column("true_baseline")
        return pd.DataFrame(
            {
                "customer_id": customers,
                "campaign_id": self.campaign("campaign_id"),
                "decided_at": self.decided_at(),
                "propensity": self.column("propensity"),
                "value": self.column("value"),
                "day": self.column("day").astype("int64"),
                "chosen_campaign_id": self.campaign("chosen"),
                "control": self.column("control").astype(bool),
                "responded": self.column("responded").astype(bool),
                "expected_value": self.column("expected_value"),
                "true_value": true_value,
                "true_baseline": true_baseline,
                "true_uplift": true_value - true_baseline,
                "hidden_type": types.reindex(customers).to_numpy(),
            }
        )


def run(world, policy, *, start, days, learn_every=7, attribution_days=7, seed=0):
    """Run ``policy`` in ``world`` for ``days`` days from ``start`` (a date or datetime:
    day d's decisions are made at ``start + d days``). ``policy``: any object with
    ``decide(features, eligible, now, seed=None)`` and, optionally, ``learn(outcomes,
    features)``. ``seed`` seeds the policy's draws (one stream per day). Returns a
    RunResult."""
    if not callable(getattr(policy, "decide", None)):
        raise ValueError("policy must have a decide(features, eligible, now, seed=None) method")
    if not isinstance(start, dt.date):
        raise ValueError(f"start must be a date or a datetime, got {start!r}")
    days = _whole(days, "days", 1)
    learn_every = _whole(learn_every, "learn_every", 1)
    attribution_days = _whole(attribution_days, "attribution_days", 0)
    seed = _whole(seed, "seed", 0)
    follow_ups = _check_follow_ups(world.follow_ups)
    learns = callable(getattr(policy, "learn", None))

    began = time.perf_counter()
    log = _Log(start)
    pending = {}  # day -> list of (customer ids, campaign ids) of the follow-ups due that day
    eligible_chunks, daily = [], []
    learned_rows, learn_calls = 0, 0
    for day in range(days):
        now = start + dt.timedelta(days=day)

        # Learn, before deciding, from the decisions whose attribution window has closed.
        learned_today = 0
        closed_day = min(day - attribution_days, day - 1)
        if learns and day > 0 and day % learn_every == 0 and closed_day >= 0:
            stop = log.rows_through[closed_day]
            if stop > learned_rows:
                policy.learn(*log.for_learning(learned_rows, stop))
                learn_calls += 1
                learned_today, learned_rows = stop - learned_rows, stop

        pair_customers, pair_campaigns = _day_pairs(world.triggers(day), pending.pop(day, []))
        eligible_chunks.append((np.full(len(pair_customers), day), pair_customers, pair_campaigns))
        customers = np.unique(pair_customers)
        n = len(customers)
        row = {"day": day, "now": now, "decisions": n, "pairs": len(pair_customers), "sends": 0, "controls": 0,
               "nothing": 0, "incremental_value": 0.0, "realized_value": 0.0, "baseline_value": 0.0,
               "learned": learned_today}
        daily.append(row)
        if n == 0:
            log.close_day()
            continue

        features = world.features(customers, now)
        eligible = pd.DataFrame({"customer_id": pair_customers, "campaign_id": pair_campaigns})
        decisions = policy.decide(features, eligible, now, seed=day_seed(seed, day))
        chosen, control, propensity, expected = _check_decisions(decisions, customers, pair_customers, pair_campaigns)
        control &= ~np.isnan(chosen)  # held out of nothing is nothing
        received = np.where(control, np.nan, chosen)

        response = world.respond(customers, received, day)
        value, responded = response["value"].to_numpy(), response["responded"].to_numpy()
        true_value = world.expected_value(customers, received)
        true_baseline = world.expected_value(customers, np.full(n, np.nan))
        _schedule(pending, follow_ups, day, customers, received, responded)

        log.add(
            features, day=np.full(n, day), customer_id=customers, campaign_id=received, propensity=propensity,
            value=value, chosen=chosen, control=control, responded=responded, expected_value=expected,
            true_value=true_value, true_baseline=true_baseline,
        )
        row.update(
            sends=int((~np.isnan(received)).sum()),
            controls=int(control.sum()),
            nothing=int(np.isnan(chosen).sum()),
            incremental_value=float((true_value - true_baseline).sum()),
            realized_value=float(value.sum()),
            baseline_value=float(true_baseline.sum()),
        )

    return RunResult(
        policy_name=getattr(policy, "name", type(policy).__name__),
        start=start,
        days=days,
        daily=pd.DataFrame(daily),
        outcomes=log.outcomes(world.types),
        features=log.feature_frame(),
        eligible=pd.DataFrame(
            {
                "day": np.concatenate([d for d, _, _ in eligible_chunks]),
                "customer_id": np.concatenate([c for _, c, _ in eligible_chunks]),
                "campaign_id": np.concatenate([a for _, _, a in eligible_chunks]),
            }
        ),
        learn_calls=learn_calls,
        seconds=time.perf_counter() - began,
    )
