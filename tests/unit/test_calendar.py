from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import textwrap

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tickstream import calendar as cal

NS = 10**9
D = dt.date(2026, 11, 20)  # a Friday


def test_ist_ns_0915_is_0345_utc() -> None:
    ts = cal.ist_ns(D, 9, 15)
    assert dt.datetime.fromtimestamp(ts / NS, tz=dt.UTC) == dt.datetime(
        2026, 11, 20, 3, 45, tzinfo=dt.UTC
    )


@pytest.mark.parametrize(
    ("exchange", "open_", "close"),
    [
        ("NSE", (9, 15), (15, 30)),
        ("NFO", (9, 15), (15, 30)),
        ("BSE", (9, 15), (15, 30)),
        ("INDICES", (9, 15), (15, 30)),
        ("MCX", (9, 0), (23, 30)),
        ("CDS", (9, 0), (17, 0)),
    ],
)
def test_session_hours_per_exchange(
    exchange: str, open_: tuple[int, int], close: tuple[int, int]
) -> None:
    s = cal.session_for(exchange, D)
    assert s is not None
    assert s.open_ns == cal.ist_ns(D, *open_)
    assert s.close_ns == cal.ist_ns(D, *close)


def test_nse_preopen_0900_to_0908() -> None:
    s = cal.session_for("NSE", D)
    assert s is not None
    assert s.in_preopen(cal.ist_ns(D, 9, 0))
    assert s.in_preopen(cal.ist_ns(D, 9, 7, 59))
    assert not s.in_preopen(cal.ist_ns(D, 9, 8))
    assert not s.contains(cal.ist_ns(D, 9, 14, 59))


@pytest.mark.parametrize(
    "day",
    [
        dt.date(2026, 11, 21),
        dt.date(2026, 11, 22),
        dt.date(2026, 11, 24),
        dt.date(2026, 1, 26),
        dt.date(2025, 10, 21),
        dt.date(2025, 12, 25),
    ],
)
def test_session_weekend_or_holiday_none(day: dt.date) -> None:
    assert cal.session_for("NSE", day) is None
    assert cal.bucket_start("NSE", cal.ist_ns(day, 10, 0), 60 * NS) is None


def test_holidays_file_has_2025_and_2026_weekdays_only() -> None:
    hs = cal.holidays()
    assert dt.date(2026, 3, 3) in hs and dt.date(2025, 2, 26) in hs
    assert all(h.weekday() < 5 for h in hs)
    assert {h.year for h in hs} == {2025, 2026}


@pytest.mark.parametrize(
    ("h", "m", "s", "interval_s", "expected"),
    [
        (9, 15, 0, 300, (9, 15)),
        (9, 19, 59, 300, (9, 15)),
        (9, 20, 0, 300, (9, 20)),
        (9, 23, 7, 300, (9, 20)),
        (15, 29, 59, 300, (15, 25)),
        (10, 14, 59, 3600, (9, 15)),
        (10, 15, 0, 3600, (10, 15)),
        (14, 0, 0, 86400, (9, 15)),
        (9, 15, 30, 60, (9, 15)),
        (9, 16, 0, 900, (9, 15)),
        (9, 30, 0, 900, (9, 30)),
    ],
)
def test_bucket_start_aligned_to_session_open(
    h: int, m: int, s: int, interval_s: int, expected: tuple[int, int]
) -> None:
    start = cal.bucket_start("NSE", cal.ist_ns(D, h, m, s), interval_s * NS)
    assert start == cal.ist_ns(D, *expected)


@pytest.mark.parametrize(("h", "m"), [(9, 14), (9, 0), (15, 30), (15, 45), (3, 0), (23, 59)])
def test_bucket_start_outside_session_none(h: int, m: int) -> None:
    assert cal.bucket_start("NSE", cal.ist_ns(D, h, m), 60 * NS) is None


def test_bucket_start_unknown_exchange_raises() -> None:
    with pytest.raises(ValueError, match="unknown exchange 'XYZ'"):
        cal.bucket_start("XYZ", cal.ist_ns(D, 10, 0), NS)


@given(st.integers(0, 22_500 * NS - 1), st.sampled_from([1, 60, 300, 900, 3600]))
def test_bucket_start_contains_ts_and_is_on_grid(offset: int, interval_s: int) -> None:
    open_ns = cal.ist_ns(D, 9, 15)
    ts = open_ns + offset
    start = cal.bucket_start("NSE", ts, interval_s * NS)
    assert start is not None
    assert start <= ts < start + interval_s * NS
    assert (start - open_ns) % (interval_s * NS) == 0


@given(st.integers(0, 4_102_444_800 * NS))
def test_ist_date_matches_aware_datetime(ts: int) -> None:
    expected = dt.datetime.fromtimestamp(ts // NS, tz=cal.IST).date()
    assert cal.ist_date(ts) == expected


def test_ist_datetime_is_aware_ist() -> None:
    d = cal.ist_datetime(cal.ist_ns(D, 9, 15))
    assert d.utcoffset() == dt.timedelta(hours=5, minutes=30)
    assert (d.hour, d.minute) == (9, 15)


_PROBE = textwrap.dedent("""
    import datetime as dt
    from tickstream import calendar as cal
    d = dt.date(2026, 11, 20)
    out = []
    for h, m in [(9, 15), (9, 23), (12, 0), (15, 29), (15, 30), (3, 0)]:
        ts = cal.ist_ns(d, h, m)
        out.append((ts, cal.bucket_start("NSE", ts, 300 * 10**9), str(cal.ist_date(ts)),
                    cal.in_session("NSE", ts), cal.ist_datetime(ts).isoformat()))
    print(out)
""")


def test_calendar_identical_under_three_timezones() -> None:
    outputs = set()
    for tz in ("UTC", "Asia/Kolkata", "America/New_York"):
        env = dict(os.environ, TZ=tz)
        res = subprocess.run(
            [sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, check=True
        )
        outputs.add(res.stdout)
    assert len(outputs) == 1
    assert "2026-11-20T09:15:00+05:30" in outputs.pop()
