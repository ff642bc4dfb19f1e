"""The rules every decision obeys, on arrays: random groups (global control group and
campaign holdouts), quiet hours and send windows in the customer's time zone, and
frequency caps. Pure numpy/pandas (no Django); the decision round feeds them frames.

Random groups are deterministic: the same (seed, salt, id) always lands on the same side,
so a customer stays in the global control group from one round to the next, and an
enrollment's holdout draw never changes. The seed and salt are hashed once with BLAKE2b;
each id is then mixed with that key by the SplitMix64 finaliser, a bijective 64-bit mix, in
numpy (a million ids take a few milliseconds, where hashing each id with hashlib would be a
Python loop per customer).
"""

import datetime as dt
import hashlib
import zoneinfo

import numpy as np
import pandas as pd

CONTROL_SALT = "control"
DAY_US = 86_400 * 10**6
NONE = -1  # "no such time" in the microsecond arrays below

# --- random groups ----------------------------------------------------------------------

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def holdout_salt(campaign_id):
    """The salt of campaign ``campaign_id``'s holdout draw (on enrollment ids)."""
    return f"holdout:{campaign_id}"


def _key(seed, salt):
    digest = hashlib.blake2b(f"{seed}:{salt}".encode(), digest_size=8).digest()
    return np.uint64(int.from_bytes(digest, "little"))


def _mix(z):
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def uniform(ids, *, seed, salt):
    """A deterministic draw in [0, 1) per id. ``salt`` is one string, or one per id."""
    ids = np.asarray(ids, dtype="int64").astype("uint64")
    if isinstance(salt, str):
        keys = _key(seed, salt)
    else:
        codes, uniques = pd.factorize(np.asarray(salt, dtype=object))
        if len(codes) != len(ids):
            raise ValueError("give one salt, or one salt per id")
        keys = np.array([_key(seed, s) for s in uniques], dtype="uint64")[codes]
    with np.errstate(over="ignore"):
        z = _mix(ids * _GOLDEN + keys)
    return (z >> np.uint64(11)).astype("float64") * 2.0**-53


def in_group(ids, *, seed, salt, percent):
    """True for the ids that fall in the ``percent`` % group (``percent``: one number or
    one per id, 0 to 100). Raising the percentage only adds ids to the group."""
    percent = np.asarray(percent, dtype="float64")
    if np.any((percent < 0) | (percent > 100)):
        raise ValueError("percent must be between 0 and 100")
    return uniform(ids, seed=seed, salt=salt) < percent / 100.0


# --- quiet hours and send windows -----------------------------------------------------------


def time_of_day_us(values):
    """Microseconds after midnight of each value (``datetime.time``, or a number of
    seconds); NONE (-1) for None / NaN / NaT."""
    out = np.full(len(values), NONE, dtype="int64")
    for i, value in enumerate(values):  # one column of a few distinct times, per call site
        if isinstance(value, dt.time):
            out[i] = ((value.hour * 60 + value.minute) * 60 + value.second) * 10**6 + value.microsecond
        elif value is not None and not pd.isna(value):
            out[i] = int(round(float(value) * 10**6)) % DAY_US
    return out


def _column_us(windows, name):
    if name not in windows:
        return np.full(len(windows), NONE, dtype="int64")
    column = windows[name]
    if pd.api.types.is_numeric_dtype(column):
        seconds = column.to_numpy(dtype="float64")
        return np.where(np.isnan(seconds), NONE, np.round(np.nan_to_num(seconds) * 10**6) % DAY_US).astype("int64")
    codes, uniques = pd.factorize(column.astype(object), use_na_sentinel=True)
    mapped = time_of_day_us(list(uniques))
    return np.where(codes < 0, NONE, mapped[np.maximum(codes, 0)] if len(mapped) else NONE)


def _within(t, start, end):
    """t in the daily interval [start, end), which wraps past midnight when start > end;
    an interval with start == end, or NONE ends, is empty."""
    plain = (start <= t) & (t < end)
    wrapped = (t >= start) | (t < end)
    return np.where(start < end, plain, np.where(start > end, wrapped, False)) & (start != NONE) & (end != NONE)


def allowed_at(t, quiet_start, quiet_end, window_start, window_end):
    """Whether local time of day ``t`` (microseconds) is outside the quiet hours and inside
    the send window (no window: all day)."""
    no_window = (window_start == NONE) | (window_end == NONE) | (window_start == window_end)
    in_window = no_window | _within(t, window_start, window_end)
    return in_window & ~_within(t, quiet_start, quiet_end)


def _zone(name, default):
    if not name or not isinstance(name, str):
        return default
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return default


def _earliest_delta(t, qs, qe, ws, we):
    """Smallest delay (microseconds, < one day) after local time ``t`` at which sending is
    allowed; -1 where no time of day is allowed. The next allowed moment is now or the
    start of an allowed stretch, and every stretch starts at a window start or a quiet end."""
    best = np.full(len(t), -1, dtype="int64")
    for start in (None, ws, qe):
        if start is None:
            delta = np.zeros(len(t), dtype="int64")
        else:
            delta = np.where(start == NONE, -1, (start - t) % DAY_US)
        ok = (delta >= 0) & allowed_at((t + np.maximum(delta, 0)) % DAY_US, qs, qe, ws, we)
        best = np.where(ok & ((best < 0) | (delta < best)), delta, best)
    return best


def next_allowed(now_utc, tz_names, windows, *, default_tz):
    """The first instant at or after ``now_utc`` at which each row may be sent.

    - ``now_utc``: one aware instant for every row, or one per row;
    - ``tz_names``: the customer's IANA time zone per row; blank or unknown names use
      ``default_tz`` (a name or a tzinfo: the shop's time zone);
    - ``windows``: DataFrame, one row per row, with columns ``quiet_start``, ``quiet_end``
      (the channel's quiet hours, which may wrap past midnight, e.g. 21:00-08:00) and
      ``window_start``, ``window_end`` (the campaign's send window); values are
      ``datetime.time``, None, or seconds after midnight. A missing column means none.

    Returns a ``DatetimeIndex`` in UTC (equal to ``now_utc`` where sending is allowed now).
    Times are wall-clock times of the customer's zone (zoneinfo), so DST is honoured: a
    time skipped by the spring change moves forward, a repeated one takes its later
    instant. When the send window lies wholly within the quiet hours the quiet hours win
    and the window is ignored."""
    n = len(windows)
    default = default_tz if isinstance(default_tz, dt.tzinfo) else zoneinfo.ZoneInfo(default_tz)
    if isinstance(now_utc, (dt.datetime, pd.Timestamp)):
        now = pd.DatetimeIndex(np.full(n, pd.Timestamp(now_utc).as_unit("ns").value), tz="UTC")
    else:
        now = pd.DatetimeIndex(pd.to_datetime(now_utc, utc=True)).as_unit("ns")
    if len(now) != n or len(tz_names) != n:
        raise ValueError("now_utc (when an array), tz_names and windows need one row each")
    qs, qe = _column_us(windows, "quiet_start"), _column_us(windows, "quiet_end")
    ws, we = _column_us(windows, "window_start"), _column_us(windows, "window_end")
    names = pd.Series(np.asarray(tz_names, dtype=object)).fillna("")
    codes, uniques = pd.factorize(names)
    zones = [_zone(name, default) for name in uniques]
    result = now.asi8.copy()
    for code, zone in enumerate(zones):  # one pass per distinct time zone, not per customer
        rows = np.flatnonzero(codes == code)
        result[rows] = _next_in_zone(now[rows], zone, qs[rows], qe[rows], ws[rows], we[rows])
    return pd.DatetimeIndex(result.view("datetime64[ns]"), tz="UTC")


def _next_in_zone(now, zone, qs, qe, ws, we):
    ns = now.asi8.copy()
    pending = np.ones(len(ns), dtype=bool)
    for _ in range(3):  # a DST shift can land just inside quiet hours: look again from there
        idx = np.flatnonzero(pending)
        if not len(idx):
            break
        local = pd.DatetimeIndex(ns[idx].view("datetime64[ns]"), tz="UTC").tz_convert(zone).tz_localize(None)
        t = (local.asi8 - local.normalize().asi8) // 1000
        delta = _earliest_delta(t, qs[idx], qe[idx], ws[idx], we[idx])
        impossible = delta < 0  # the window lies within the quiet hours: quiet hours win
        if impossible.any():
            none = np.full(int(impossible.sum()), NONE, dtype="int64")
            delta[impossible] = _earliest_delta(t[impossible], qs[idx][impossible], qe[idx][impossible], none, none)
        delta = np.maximum(delta, 0)
        moving = delta > 0
        if not moving.any():
            break
        target = pd.DatetimeIndex((local.asi8[moving] + delta[moving] * 1000).view("datetime64[ns]"))
        shifted = target.tz_localize(zone, ambiguous=np.zeros(len(target), dtype=bool), nonexistent="shift_forward")
        ns[idx[moving]] = np.maximum(shifted.tz_convert("UTC").asi8, ns[idx[moving]])
        pending[:] = False
        pending[idx[moving]] = True
    return ns


# --- frequency caps ---------------------------------------------------------------------------


def cap_counts(candidates, history, caps, *, now):
    """Messages each candidate's customer already has within each cap's period.

    - ``candidates``: one row per possible send, columns ``customer_id``, ``channel_kind``;
    - ``history``: one row per recent message (queued, sending or sent), columns
      ``customer_id``, ``channel_kind``, ``at`` (aware datetimes);
    - ``caps``: one row per cap, columns ``channel_kind`` ("" for all channels),
      ``max_messages``, ``period_days``.

    Returns a frame aligned with ``candidates``: ``channel_kind`` and one column ``cap_<i>``
    per cap row (its position) holding the count within that cap's period, on that cap's
    channel kind (all kinds for ""), for the candidate's customer."""
    out = pd.DataFrame({"channel_kind": candidates["channel_kind"].to_numpy(dtype=object)})
    customers = candidates["customer_id"].to_numpy(dtype="int64")
    at = pd.DatetimeIndex(pd.to_datetime(history["at"], utc=True)) if len(history) else pd.DatetimeIndex([], tz="UTC")
    now = pd.Timestamp(now)
    for i, cap in enumerate(caps.itertuples(index=False)):  # a few caps
        since = now - pd.Timedelta(days=int(cap.period_days))
        mask = np.asarray(at >= since) & np.asarray(at <= now)
        if cap.channel_kind:
            mask &= history["channel_kind"].to_numpy(dtype=object) == cap.channel_kind
        per_customer = pd.Series(history["customer_id"].to_numpy(dtype="int64")[mask]).value_counts()
        out[f"cap_{i}"] = per_customer.reindex(customers, fill_value=0).to_numpy(dtype="int64")
    return out


def capped(counts, caps):
    """True for the candidates that one more message would take over a cap that applies
    to them (a cap on all channels, or on the candidate's channel kind). ``counts`` is what
    ``cap_counts`` returns, with any messages already chosen in this round added in."""
    kinds = counts["channel_kind"].to_numpy(dtype=object)
    out = np.zeros(len(counts), dtype=bool)
    for i, cap in enumerate(caps.itertuples(index=False)):
        applies = np.ones(len(counts), dtype=bool) if not cap.channel_kind else kinds == cap.channel_kind
        out |= applies & (counts[f"cap_{i}"].to_numpy(dtype="int64") + 1 > int(cap.max_messages))
    return out
