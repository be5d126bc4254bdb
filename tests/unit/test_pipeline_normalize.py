"""Normalizer: every quarantine reason, and the cases that must pass."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tickstream.calendar import ist_ns
from tickstream.model import Depth, DepthLevel, Tick
from tickstream.pipeline.counters import PipelineCounters
from tickstream.pipeline.normalize import NormalizeConfig, Normalizer, Reason

DAY = dt.date(2025, 3, 3)  # Monday, a trading day
NS = 1_000_000_000
T0 = ist_ns(DAY, 10, 0)


def tick(**kw: Any) -> Tick:
    base: dict[str, Any] = {
        "exchange": "NSE",
        "token": 2885,
        "symbol": "RELIANCE",
        "source": "kite",
        "ts_exchange": T0,
        "ts_recv": T0,
        "ltp": 1250.5,
    }
    base.update(kw)
    if "ts_recv" not in kw:
        base["ts_recv"] = base["ts_exchange"]
    return Tick(**base)


def test_normalize_good_tick_returns_none() -> None:
    # Arrange
    counters = PipelineCounters()
    norm = Normalizer(counters=counters)
    # Act
    reason = norm.check(tick(volume=10, bid=1250.45, ask=1250.5, high=1260.0, low=1240.0))
    # Assert
    assert reason is None
    assert counters.quarantined == {}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"exchange": "NYSE"}, Reason.UNKNOWN_EXCHANGE),
        ({"ltp": float("nan")}, Reason.NON_FINITE),
        ({"atp": float("inf")}, Reason.NON_FINITE),
        ({"low_52w": float("-inf")}, Reason.NON_FINITE),
        (
            {"depth": Depth(bids=(DepthLevel(float("nan"), 5, 1),), asks=())},
            Reason.NON_FINITE,
        ),
        ({"ts_exchange": T0 + 6 * NS, "ts_recv": T0}, Reason.TS_FUTURE),
        ({"ts_exchange": T0 - 601 * NS, "ts_recv": T0}, Reason.TS_PAST),
        ({"high": 100.0, "low": 101.0}, Reason.HIGH_BELOW_LOW),
        ({"bid": 1251.0, "ask": 1250.0}, Reason.CROSSED_BOOK),
        ({"ltp": -1.0}, Reason.NON_POSITIVE_LTP),
    ],
)
def test_normalize_bad_field_is_quarantined_with_reason(
    fields: dict[str, Any], expected: Reason
) -> None:
    # Arrange
    counters = PipelineCounters()
    norm = Normalizer(counters=counters)
    # Act
    reason = norm.check(tick(**fields))
    # Assert
    assert reason is expected
    assert counters.quarantined == {expected.value: 1}


def test_normalize_huge_but_finite_floats_pass() -> None:
    norm = Normalizer()
    assert norm.check(tick(ltp=1e308, atp=1e308)) is None


def test_normalize_tolerances_are_configurable() -> None:
    norm = Normalizer(NormalizeConfig(max_future_ns=10 * NS, max_past_ns=NS))
    assert norm.check(tick(ts_exchange=T0 + 9 * NS, ts_recv=T0)) is None
    assert norm.check(tick(ts_exchange=T0 - 2 * NS, ts_recv=T0)) is Reason.TS_PAST


def test_normalize_crossed_book_in_preopen_passes() -> None:
    norm = Normalizer()
    ts = ist_ns(DAY, 9, 5)
    assert norm.check(tick(ts_exchange=ts, bid=1251.0, ask=1250.0)) is None


def test_normalize_empty_book_side_is_not_crossed() -> None:
    norm = Normalizer()
    assert norm.check(tick(bid=1251.0, ask=0.0)) is None


def test_normalize_zero_ltp_before_first_trade_passes_after_is_quarantined() -> None:
    # Arrange
    norm = Normalizer()
    # Act
    before = norm.check(tick(ltp=0.0))
    traded = norm.check(tick(ltp=10.0, ts_exchange=T0 + NS))
    after = norm.check(tick(ltp=0.0, ts_exchange=T0 + 2 * NS))
    # Assert
    assert (before, traded, after) == (None, None, Reason.NON_POSITIVE_LTP)


def test_normalize_negative_price_on_commodity_exchange_passes() -> None:
    norm = Normalizer()
    assert norm.check(tick(exchange="MCX", ltp=-37.63)) is None


def test_normalize_decreasing_volume_same_day_is_quarantined() -> None:
    norm = Normalizer()
    assert norm.check(tick(volume=1000)) is None
    assert norm.check(tick(volume=900, ts_exchange=T0 + NS)) is Reason.VOLUME_DECREASED


def test_normalize_volume_reset_on_new_ist_day_is_a_new_baseline() -> None:
    # Arrange
    norm = Normalizer()
    next_day = ist_ns(dt.date(2025, 3, 4), 9, 15)
    # Act
    first = norm.check(tick(volume=5_000_000))
    reset = norm.check(tick(volume=120, ts_exchange=next_day))
    lower = norm.check(tick(volume=100, ts_exchange=next_day + NS))
    # Assert
    assert (first, reset, lower) == (None, None, Reason.VOLUME_DECREASED)


def test_normalize_late_tick_with_lower_volume_passes_higher_is_quarantined() -> None:
    norm = Normalizer()
    assert norm.check(tick(volume=1000, ts_exchange=T0 + 5 * NS)) is None
    assert norm.check(tick(volume=990, ts_exchange=T0 + 4 * NS)) is None
    assert norm.check(tick(volume=1001, ts_exchange=T0 + 3 * NS)) is Reason.VOLUME_DECREASED


def test_normalize_quarantined_tick_does_not_move_volume_baseline() -> None:
    # Arrange
    norm = Normalizer()
    norm.check(tick(volume=1000))
    # Act: a bad tick with a huge volume, then a normal one
    bad = norm.check(tick(volume=10**9, ts_exchange=T0 + NS, high=1.0, low=2.0))
    good = norm.check(tick(volume=1010, ts_exchange=T0 + 2 * NS))
    # Assert
    assert (bad, good) == (Reason.HIGH_BELOW_LOW, None)


def test_normalize_volume_state_is_per_source() -> None:
    norm = Normalizer()
    assert norm.check(tick(volume=1000, source="kite")) is None
    assert norm.check(tick(volume=990, source="angelone", ts_exchange=T0 + NS)) is None


def test_normalize_counts_each_reason_separately() -> None:
    counters = PipelineCounters()
    norm = Normalizer(counters=counters)
    for t in (tick(exchange="X"), tick(exchange="Y"), tick(ltp=float("nan"))):
        norm.check(t)
    assert counters.quarantined == {"unknown_exchange": 2, "non_finite": 1}


def test_normalize_clock_offset_shifts_the_time_checks() -> None:
    # Arrange: a simulated exchange clock running one hour behind the wall clock
    offset = -3600 * NS
    norm = Normalizer(NormalizeConfig(clock_offset_ns=offset))
    # Act
    on_time = norm.check(tick(ts_exchange=T0 + offset, ts_recv=T0))
    unshifted = norm.check(tick(ts_exchange=T0, ts_recv=T0, token=1))
    # Assert
    assert (on_time, unshifted) == (None, Reason.TS_FUTURE)
