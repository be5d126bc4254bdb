"""Deterministic simulator history: validity, sessions, aggregation, continuity, volume shape."""

from __future__ import annotations

import datetime as dt
import itertools
import os
import time
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickstream.calendar import ist_date, ist_datetime, ist_midnight_ns, ist_ns, session_for
from tickstream.model import Instrument
from tickstream.sim.history import Bar, bars, day_arrays, ist_stamp, reference_price
from tickstream.sim.universe import default_universe, reference_prices

UNIVERSE = default_universe()
PRICES = reference_prices()
RELIANCE = next(i for i in UNIVERSE if i.symbol == "RELIANCE")
NIFTY = next(i for i in UNIVERSE if i.symbol == "NIFTY 50")
OPTION = next(i for i in UNIVERSE if i.instrument_type == "CE")
DAY = dt.date(2025, 9, 1)  # a Monday, NSE open


def _day_bars(inst: Instrument, day: dt.date, interval_s: int = 60) -> list[Bar]:
    ref = reference_price(inst, PRICES)
    return bars(inst, interval_s, ist_midnight_ns(day), ist_ns(day, 23, 59), ref)


def _on_grid(price: float, tick: float) -> bool:
    return abs(round(price / tick) * tick - price) < 1e-6


def test_bars_same_request_twice_identical() -> None:
    # Arrange / Act
    first = _day_bars(RELIANCE, DAY)
    second = _day_bars(RELIANCE, DAY)
    # Assert
    assert first == second
    assert first != _day_bars(RELIANCE, DAY + dt.timedelta(days=1))


def test_bars_minute_day_are_the_whole_session_in_order() -> None:
    session = session_for("NSE", DAY)
    assert session is not None
    # Act
    got = _day_bars(RELIANCE, DAY)
    # Assert
    assert len(got) == 375
    assert got[0].start_ns == ist_ns(DAY, 9, 15)
    assert got[-1].start_ns == ist_ns(DAY, 15, 29)
    assert [b.start_ns for b in got] == [session.open_ns + k * 60 * 10**9 for k in range(375)]


@pytest.mark.parametrize("day", [dt.date(2025, 8, 30), dt.date(2025, 8, 31), dt.date(2025, 10, 2)])
def test_bars_weekend_or_holiday_no_bars(day: dt.date) -> None:
    assert _day_bars(RELIANCE, day) == []


@settings(max_examples=25, deadline=None)
@given(
    inst=st.sampled_from(UNIVERSE),
    day=st.dates(min_value=dt.date(2024, 1, 1), max_value=dt.date(2026, 6, 30)),
)
def test_bars_any_instrument_day_valid_ohlc_on_tick_grid(inst: Instrument, day: dt.date) -> None:
    tick = inst.tick_size or 0.05
    # Act
    got = _day_bars(inst, day)
    # Assert
    for b in got:
        assert 0 < b.low <= min(b.open, b.close) <= max(b.open, b.close) <= b.high
        assert all(_on_grid(p, tick) for p in (b.open, b.high, b.low, b.close))
        assert b.volume >= 0
    assert (got == []) == (session_for(inst.exchange, day) is None)


def test_bars_minute_opens_continue_previous_minute_close() -> None:
    got = _day_bars(RELIANCE, DAY)
    assert all(a.close == b.open for a, b in itertools.pairwise(got))


@pytest.mark.parametrize("inst", [RELIANCE, NIFTY, OPTION], ids=lambda i: i.symbol)
def test_bars_day_bar_is_aggregate_of_its_minute_bars(inst: Instrument) -> None:
    minutes = _day_bars(inst, DAY)
    # Act
    (day_bar,) = _day_bars(inst, DAY, 86_400)
    # Assert
    assert day_bar == Bar(
        start_ns=ist_midnight_ns(DAY),
        open=minutes[0].open,
        high=max(b.high for b in minutes),
        low=min(b.low for b in minutes),
        close=minutes[-1].close,
        volume=sum(b.volume for b in minutes),
        oi=minutes[-1].oi,
    )


@pytest.mark.parametrize("interval_s", [180, 300, 600, 900, 1800, 3600])
def test_bars_intraday_interval_is_aggregate_aligned_to_open(interval_s: int) -> None:
    minutes = _day_bars(RELIANCE, DAY)
    step = interval_s // 60
    # Act
    got = _day_bars(RELIANCE, DAY, interval_s)
    # Assert
    groups = [minutes[k : k + step] for k in range(0, len(minutes), step)]
    assert [b.start_ns for b in got] == [g[0].start_ns for g in groups]
    assert [b.high for b in got] == [max(m.high for m in g) for g in groups]
    assert [b.low for b in got] == [min(m.low for m in g) for g in groups]
    assert [b.close for b in got] == [g[-1].close for g in groups]
    assert [b.volume for b in got] == [sum(m.volume for m in g) for g in groups]
    assert got[0].start_ns == ist_ns(DAY, 9, 15)


def test_bars_next_day_open_near_previous_close() -> None:
    start, end = ist_midnight_ns(dt.date(2025, 1, 1)), ist_midnight_ns(dt.date(2025, 12, 31))
    ref = reference_price(RELIANCE, PRICES)
    # Act
    days = bars(RELIANCE, 86_400, start, end, ref)
    # Assert
    assert len(days) > 240
    gaps = [abs(b.open - a.close) / a.close for a, b in itertools.pairwise(days)]
    assert max(gaps) < 0.006
    closes = [b.close for b in days]
    assert 0.6 * ref < min(closes) and max(closes) < 1.4 * ref


def test_bars_volume_u_shaped_heavier_at_open_and_close() -> None:
    days = [DAY + dt.timedelta(days=k) for k in range(5)]  # Mon..Fri
    per_day = [_day_bars(RELIANCE, d) for d in days]
    # Act
    edge = sum(sum(b.volume for b in m[:30]) + sum(b.volume for b in m[-30:]) for m in per_day)
    middle = sum(sum(b.volume for b in m[172:232]) for m in per_day)
    # Assert: the same number of minutes (60) at the edges trade well over the midday ones
    assert edge > 2 * middle


def test_bars_index_has_no_volume_and_option_has_open_interest() -> None:
    index_bars = _day_bars(NIFTY, DAY)
    option_bars = _day_bars(OPTION, DAY)
    equity_bars = _day_bars(RELIANCE, DAY)
    assert {b.volume for b in index_bars} == {0}
    assert all(b.oi > 0 and b.oi % (OPTION.lot_size or 1) == 0 for b in option_bars)
    assert all(b.volume % (OPTION.lot_size or 1) == 0 for b in option_bars)
    assert {b.oi for b in equity_bars} == {0}


def test_bars_range_is_inclusive_on_bucket_starts() -> None:
    start, end = ist_ns(DAY, 9, 20), ist_ns(DAY, 9, 25)
    got = bars(RELIANCE, 60, start, end, reference_price(RELIANCE, PRICES))
    assert [b.start_ns for b in got] == [start + k * 60 * 10**9 for k in range(6)]
    assert ist_date(got[0].start_ns) == DAY


def test_bars_bad_interval_raises_value_error() -> None:
    with pytest.raises(ValueError, match="whole minutes"):
        bars(RELIANCE, 90, 0, 1, 100.0)


def test_reference_price_option_without_reference_uses_strike_fallback() -> None:
    assert reference_price(OPTION, {}) == (OPTION.strike or 0) * 0.01
    assert reference_price(RELIANCE, PRICES) == PRICES[RELIANCE.key]
    assert reference_price(RELIANCE, {}) == 100.0


@pytest.fixture
def set_tz() -> Iterator[None]:
    old = os.environ.get("TZ")
    yield
    if old is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = old
    time.tzset()


@pytest.mark.usefixtures("set_tz")
def test_bars_process_timezone_does_not_change_result() -> None:
    results = []
    for tz in ("UTC", "Asia/Kolkata", "America/New_York"):
        os.environ["TZ"] = tz
        time.tzset()
        day_arrays.cache_clear()
        results.append(bars(OPTION, 300, ist_ns(DAY, 0), ist_ns(DAY, 23), 250.0))
    assert results[0] == results[1] == results[2]
    assert len(results[0]) == 75


@settings(max_examples=200, deadline=None)
@given(ts=st.integers(min_value=0, max_value=4_102_444_800).map(lambda s: s * 10**9))
def test_ist_stamp_any_second_equals_datetime_formatting(ts: int) -> None:
    moment = ist_datetime(ts)
    assert ist_stamp(ts, "+0530") == moment.strftime("%Y-%m-%dT%H:%M:%S%z")
    assert ist_stamp(ts, "+05:30") == moment.isoformat(timespec="seconds")
