"""ml.rules: random groups, quiet hours and send windows in the customer's zone, caps."""

import datetime as dt
import zoneinfo

import numpy as np
import pandas as pd
import pytest

from oscar_journeys.ml import rules

UTC = dt.timezone.utc
T = dt.time


def windows(quiet=(None, None), window=(None, None), n=1):
    return pd.DataFrame(
        {
            "quiet_start": [quiet[0]] * n,
            "quiet_end": [quiet[1]] * n,
            "window_start": [window[0]] * n,
            "window_end": [window[1]] * n,
        }
    )


def local(instant, zone):
    return pd.Timestamp(instant).tz_convert(zoneinfo.ZoneInfo(zone))


def one(now, zone, quiet=(None, None), window=(None, None), default="Europe/London"):
    return rules.next_allowed(now, [zone], windows(quiet, window), default_tz=default)[0]


# --- random groups -------------------------------------------------------------------------


def test_groups_are_deterministic_and_near_their_share():
    ids = np.arange(1, 200_001)
    first = rules.in_group(ids, seed="s", salt="control", percent=5)
    again = rules.in_group(ids, seed="s", salt="control", percent=5)
    assert (first == again).all()
    assert abs(first.mean() - 0.05) < 0.003


def test_a_larger_percent_only_adds_members():
    ids = np.arange(10_000)
    small = rules.in_group(ids, seed="s", salt="control", percent=10)
    large = rules.in_group(ids, seed="s", salt="control", percent=30)
    assert (large | ~small).all() and large.sum() > small.sum()


def test_salts_and_seeds_draw_independent_groups():
    ids = np.arange(100_000)
    control = rules.in_group(ids, seed="s", salt="control", percent=50)
    holdout = rules.in_group(ids, seed="s", salt=rules.holdout_salt(3), percent=50)
    reseeded = rules.in_group(ids, seed="other", salt="control", percent=50)
    assert abs((control & holdout).mean() - 0.25) < 0.01
    assert abs((control & reseeded).mean() - 0.25) < 0.01


def test_one_salt_per_id_matches_one_call_per_salt():
    ids = np.arange(1000)
    salts = np.where(ids % 2 == 0, "holdout:1", "holdout:2")
    mixed = rules.uniform(ids, seed="s", salt=salts)
    assert np.allclose(mixed[::2], rules.uniform(ids[::2], seed="s", salt="holdout:1"))
    assert np.allclose(mixed[1::2], rules.uniform(ids[1::2], seed="s", salt="holdout:2"))


def test_uniform_draws_cover_zero_to_one_evenly():
    draws = rules.uniform(np.arange(100_000), seed="x", salt="y")
    assert draws.min() >= 0 and draws.max() < 1
    counts, _ = np.histogram(draws, bins=10, range=(0, 1))
    assert counts.min() > 9_500 and counts.max() < 10_500


@pytest.mark.parametrize("percent", [-1, 101])
def test_percent_out_of_range_is_refused(percent):
    with pytest.raises(ValueError, match="between 0 and 100"):
        rules.in_group([1], seed="s", salt="c", percent=percent)


def test_zero_and_hundred_percent():
    ids = np.arange(1000)
    assert not rules.in_group(ids, seed="s", salt="c", percent=0).any()
    assert rules.in_group(ids, seed="s", salt="c", percent=100).all()


# --- quiet hours and windows --------------------------------------------------------------------


def test_allowed_now_returns_now():
    now = dt.datetime(2025, 6, 2, 12, tzinfo=UTC)
    assert one(now, "Europe/Madrid", quiet=(T(21), T(8))) == now


def test_quiet_hours_wrapping_midnight_defer_to_their_end():
    # 21:30 in Madrid (CEST, UTC+2): quiet until 08:00 the next morning.
    now = dt.datetime(2025, 6, 2, 19, 30, tzinfo=UTC)
    result = one(now, "Europe/Madrid", quiet=(T(21), T(8)))
    assert result == pd.Timestamp("2025-06-03 06:00", tz="UTC")
    # 07:59 local: a minute to wait; 08:00 local: at once.
    assert one(dt.datetime(2025, 6, 3, 5, 59, tzinfo=UTC), "Europe/Madrid", quiet=(T(21), T(8))) == pd.Timestamp(
        "2025-06-03 06:00", tz="UTC"
    )
    assert one(dt.datetime(2025, 6, 3, 6, 0, tzinfo=UTC), "Europe/Madrid", quiet=(T(21), T(8))) == pd.Timestamp(
        "2025-06-03 06:00", tz="UTC"
    )


def test_quiet_hours_within_one_day():
    now = dt.datetime(2025, 6, 2, 12, 30, tzinfo=UTC)  # 12:30 in London is 13:30 BST
    assert one(now, "Europe/London", quiet=(T(13), T(14))) == pd.Timestamp("2025-06-02 13:00", tz="UTC")


def test_send_window_waits_for_the_next_opening():
    now = dt.datetime(2025, 1, 10, 18, tzinfo=UTC)  # 13:00 in New York
    assert one(now, "America/New_York", window=(T(9), T(12))) == pd.Timestamp("2025-01-11 14:00", tz="UTC")
    early = dt.datetime(2025, 1, 10, 12, tzinfo=UTC)  # 07:00 in New York
    assert one(early, "America/New_York", window=(T(9), T(12))) == pd.Timestamp("2025-01-10 14:00", tz="UTC")


def test_send_window_and_quiet_hours_together():
    # Window 07:00-22:00, quiet 21:00-08:00: allowed 08:00-21:00.
    now = dt.datetime(2025, 1, 10, 6, 30, tzinfo=UTC)  # 07:30 in Paris (CET)
    assert one(now, "Europe/Paris", quiet=(T(21), T(8)), window=(T(7), T(22))) == pd.Timestamp(
        "2025-01-10 07:00", tz="UTC"
    )


def test_window_wholly_inside_quiet_hours_yields_to_the_quiet_hours():
    now = dt.datetime(2025, 1, 10, 23, tzinfo=UTC)
    result = one(now, "UTC", quiet=(T(21), T(8)), window=(T(22), T(23)))
    assert result == pd.Timestamp("2025-01-11 08:00", tz="UTC")


def test_blank_or_unknown_zone_uses_the_shop_zone():
    now = dt.datetime(2025, 1, 10, 22, tzinfo=UTC)
    frame = windows(quiet=(T(21), T(8)), n=3)
    result = rules.next_allowed(now, ["", None, "Mars/Olympus"], frame, default_tz="Asia/Tokyo")
    # 07:00 in Tokyo: quiet until 08:00 local, 23:00 UTC.
    assert list(result) == [pd.Timestamp("2025-01-10 23:00", tz="UTC")] * 3


def test_spring_forward_gap_moves_forward():
    # London, 2025-03-30: 01:00 GMT jumps to 02:00 BST. Quiet until 01:30, which never happens.
    now = dt.datetime(2025, 3, 30, 0, 45, tzinfo=UTC)  # 00:45 GMT
    result = one(now, "Europe/London", quiet=(T(0), T(1, 30)))
    assert result >= now
    assert local(result, "Europe/London").time() >= T(1, 30)
    assert result == pd.Timestamp("2025-03-30 01:00", tz="UTC")  # 02:00 BST


def test_fall_back_repeated_hour_takes_the_later_instant_and_stays_out_of_quiet_hours():
    # London, 2025-10-26: 02:00 BST goes back to 01:00 GMT; 01:30 happens twice.
    now = dt.datetime(2025, 10, 25, 23, 15, tzinfo=UTC)  # 00:15 BST
    result = one(now, "Europe/London", quiet=(T(0), T(1, 30)))
    assert result == pd.Timestamp("2025-10-26 01:30", tz="UTC")  # 01:30 GMT
    assert local(result, "Europe/London").time() == T(1, 30)


def test_one_instant_per_row_and_seconds_as_times():
    nows = pd.to_datetime(["2025-01-10 22:00", "2025-01-10 12:00"], utc=True)
    frame = pd.DataFrame({"quiet_start": [21 * 3600.0, 21 * 3600.0], "quiet_end": [8 * 3600.0, 8 * 3600.0]})
    result = rules.next_allowed(nows, ["UTC", "UTC"], frame, default_tz="UTC")
    assert list(result) == [pd.Timestamp("2025-01-11 08:00", tz="UTC"), pd.Timestamp("2025-01-10 12:00", tz="UTC")]


def _allowed_locally(instant, zone, qs, qe, ws, we):
    t = local(instant, zone).time()

    def within(a, b):
        if a is None or b is None or a == b:
            return None
        return (a <= t < b) if a < b else (t >= a or t < b)

    quiet = within(qs, qe)
    window = within(ws, we)
    return not quiet and window is not False


ZONES = ["Europe/London", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "America/Santiago",
         "Pacific/Chatham", "Europe/Madrid", "America/Sao_Paulo", "UTC"]


def test_property_every_allowed_time_is_outside_quiet_hours_and_the_earliest():
    rng = np.random.default_rng(7)
    n = 3000
    start = pd.Timestamp("2024-01-01", tz="UTC").value
    span = pd.Timedelta(days=730).value
    nows = pd.to_datetime(start + rng.integers(0, span, n), utc=True).floor("min")
    zones = rng.choice(ZONES, n)

    def times(k, allow_none):
        minutes = rng.integers(0, 24 * 4, k) * 15
        out = [T(int(m // 60), int(m % 60)) for m in minutes]
        if allow_none:
            out = [None if rng.random() < 0.3 else t for t in out]
        return out

    qs, qe = times(n, True), times(n, False)
    qe = [None if s is None else e for s, e in zip(qs, qe)]
    ws, we = times(n, True), times(n, False)
    we = [None if s is None else e for s, e in zip(ws, we)]
    frame = pd.DataFrame({"quiet_start": qs, "quiet_end": qe, "window_start": ws, "window_end": we})
    result = rules.next_allowed(nows, zones, frame, default_tz="UTC")
    for i in range(n):
        now, got, zone = nows[i], result[i], zones[i]
        assert got >= now
        assert got - now < pd.Timedelta(hours=26), (now, zone, frame.iloc[i].tolist(), got)
        window_inside_quiet = not any(
            _allowed_locally(now + pd.Timedelta(minutes=15 * k), zone, qs[i], qe[i], ws[i], we[i]) for k in range(96)
        )
        w_start, w_end = (None, None) if window_inside_quiet else (ws[i], we[i])
        assert _allowed_locally(got, zone, qs[i], qe[i], w_start, w_end), (now, zone, frame.iloc[i].tolist(), got)
        if got > now:  # the earliest: a minute before was not allowed
            before = got - pd.Timedelta(minutes=1)
            assert before < now or not _allowed_locally(before, zone, qs[i], qe[i], w_start, w_end), (
                now, zone, frame.iloc[i].tolist(), got
            )


# --- caps ------------------------------------------------------------------------------------------


NOW = pd.Timestamp("2025-05-10 12:00", tz="UTC")
CAPS = pd.DataFrame(
    {"channel_kind": ["", "", "sms"], "max_messages": [1, 3, 1], "period_days": [1, 7, 30]}
)


def history(*rows):
    return pd.DataFrame(
        [(c, k, NOW - pd.Timedelta(hours=h)) for c, k, h in rows], columns=["customer_id", "channel_kind", "at"]
    )


def test_caps_count_within_each_period_and_kind():
    hist = history((1, "email", 2), (2, "email", 30), (2, "email", 60), (2, "email", 100), (3, "sms", 24 * 20))
    candidates = pd.DataFrame({"customer_id": [1, 2, 3, 3, 4], "channel_kind": ["email", "email", "sms", "email", "sms"]})
    counts = rules.cap_counts(candidates, hist, CAPS, now=NOW)
    assert counts["cap_0"].tolist() == [1, 0, 0, 0, 0]
    assert counts["cap_1"].tolist() == [1, 3, 0, 0, 0]
    assert counts["cap_2"].tolist() == [0, 0, 1, 1, 0]
    assert rules.capped(counts, CAPS).tolist() == [True, True, True, False, False]


def test_messages_after_now_do_not_count():
    hist = history((1, "email", -2))
    counts = rules.cap_counts(pd.DataFrame({"customer_id": [1], "channel_kind": ["email"]}), hist, CAPS, now=NOW)
    assert not rules.capped(counts, CAPS).any()


def test_no_caps_caps_nothing():
    empty = CAPS.iloc[0:0]
    counts = rules.cap_counts(pd.DataFrame({"customer_id": [1], "channel_kind": ["email"]}), history(), empty, now=NOW)
    assert rules.capped(counts, empty).tolist() == [False]
