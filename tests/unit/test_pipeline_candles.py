"""CandleBuilder: buckets, OHLCV, closing, partial/incomplete flags, late-tick revisions."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tickstream.calendar import bucket_start, ist_ns
from tickstream.model import Candle, Interval, Tick
from tickstream.pipeline.candles import CandleBuilder, CandleConfig
from tickstream.pipeline.counters import PipelineCounters

DAY = dt.date(2025, 3, 3)  # Monday
NS = 1_000_000_000
M1 = (Interval.M1,)


def at(h: int, m: int, s: float = 0) -> int:
    return ist_ns(DAY, h, m) + round(s * NS)


def tick(ts: int, ltp: float, volume: int | None = None, **kw: Any) -> Tick:
    base: dict[str, Any] = {
        "exchange": "NSE",
        "token": 2885,
        "symbol": "RELIANCE",
        "source": "kite",
        "ts_exchange": ts,
        "ts_recv": ts,
        "ltp": ltp,
        "volume": volume,
    }
    base.update(kw)
    return Tick(**base)


def builder(
    intervals: tuple[Interval, ...] = M1, grace: float = 1, lateness: float = 10
) -> tuple[CandleBuilder, PipelineCounters]:
    counters = PipelineCounters()
    cfg = CandleConfig(
        intervals=intervals, grace_ns=round(grace * NS), allowed_lateness_ns=round(lateness * NS)
    )
    return CandleBuilder(cfg, counters), counters


def feed(b: CandleBuilder, ticks: list[Tick]) -> list[Candle]:
    for t in ticks:
        b.add(t)
    return b.drain()


def run_all(b: CandleBuilder, ticks: list[Tick]) -> list[Candle]:
    """Feed ``ticks``, then flush: every event, in order."""
    events = feed(b, ticks)
    b.flush()
    return events + b.drain()


def test_candles_ohlcv_of_one_minute_bucket() -> None:
    # Arrange
    b, counters = builder()
    ticks = [
        tick(at(9, 14, 50), 99.0, 1000),  # pre-open side: baseline only
        tick(at(10, 0, 1), 100.0, 1100, oi=5),
        tick(at(10, 0, 20), 103.5, 1150, oi=6),
        tick(at(10, 0, 40), 98.25, 1300),
        tick(at(10, 0, 59), 101.0, 1320),
        tick(at(10, 1, 1), 101.5, 1330),  # next bucket; the 10:00 one closes at 10:01:01
    ]
    # Act
    events = feed(b, ticks)
    # Assert
    assert events == [
        Candle(
            exchange="NSE",
            token=2885,
            symbol="RELIANCE",
            interval=Interval.M1,
            start=at(10, 0),
            open=100.0,
            high=103.5,
            low=98.25,
            close=101.0,
            volume=320,
            oi=6,
            ticks=4,
        )
    ]
    assert counters.candles_emitted == {"1m": 1}


def test_candles_buckets_align_to_session_open_like_calendar() -> None:
    b, _ = builder((Interval.M5, Interval.H1))
    ts = at(10, 17, 3)
    b.add(tick(ts, 10.0))
    c5 = b.current(("NSE", 2885), Interval.M5)
    c60 = b.current(("NSE", 2885), Interval.H1)
    assert c5 is not None and c60 is not None
    assert c5.start == at(10, 15) == bucket_start("NSE", ts, Interval.M5.nanos)
    assert c60.start == at(10, 15) == bucket_start("NSE", ts, Interval.H1.nanos)


def test_candles_last_hour_bucket_closes_at_session_close() -> None:
    b, _ = builder((Interval.H1,))
    b.add(tick(at(15, 20), 10.0))
    b.on_timer(at(15, 31))
    events = b.drain()
    assert [(c.start, c.close) for c in events] == [(at(15, 15), 10.0)]


def test_candles_quiet_instrument_closes_on_other_instruments_watermark() -> None:
    # Arrange
    b, _ = builder(grace=2)
    b.add(tick(at(10, 0, 30), 50.0, token=1))
    # Act
    b.add(tick(at(10, 1, 1.5), 70.0, token=2))  # before end + grace
    early = b.drain()
    b.add(tick(at(10, 1, 2), 71.0, token=2))  # reaches end + grace
    late = b.drain()
    # Assert
    assert early == []
    assert [(c.token, c.start, c.close) for c in late] == [(1, at(10, 0), 50.0)]


def test_candles_on_timer_closes_without_ticks() -> None:
    b, _ = builder()
    b.add(tick(at(10, 0, 30), 50.0))
    b.on_timer(at(10, 1, 0.5))
    assert b.drain() == []
    b.on_timer(at(10, 1, 1))
    assert [c.start for c in b.drain()] == [at(10, 0)]


def test_candles_no_candle_for_interval_without_ticks() -> None:
    b, _ = builder()
    events = run_all(b, [tick(at(10, 0, 5), 1.0), tick(at(10, 3, 5), 2.0)])
    assert [c.start for c in events] == [at(10, 0), at(10, 3)]


def test_candles_out_of_session_ticks_counted_and_make_no_candle() -> None:
    # Arrange
    b, counters = builder()
    ticks = [
        tick(at(9, 5), 10.0),  # pre-open
        tick(at(15, 45), 10.0),  # after close
        tick(ist_ns(dt.date(2025, 3, 1), 10, 0), 10.0),  # Saturday
        tick(ist_ns(dt.date(2025, 3, 14), 10, 0), 10.0),  # Holi holiday
    ]
    # Act
    feed(b, ticks)
    b.flush()
    # Assert
    assert b.drain() == []
    assert counters.out_of_session == 4


def test_candles_partial_when_joined_mid_bucket_only_first() -> None:
    b, _ = builder()
    events = run_all(b, [tick(at(10, 0, 30), 1.0), tick(at(10, 1, 10), 2.0)])
    assert [(c.start, c.partial) for c in events] == [(at(10, 0), True), (at(10, 1), False)]


def test_candles_not_partial_when_first_tick_at_bucket_start_or_seen_before() -> None:
    b, _ = builder()
    events = run_all(
        b,
        [
            tick(at(9, 7), 1.0, token=2),
            tick(at(9, 15), 1.0, token=1),
            tick(at(9, 15, 3), 2.0, token=2),
        ],
    )
    assert [(c.token, c.partial) for c in events] == [(1, False), (2, False)]


def test_candles_volume_first_tick_of_day_without_baseline_adds_zero() -> None:
    b, _ = builder()
    feed(b, [tick(at(10, 0, 1), 1.0, 5000), tick(at(10, 0, 2), 1.0, 5100)])
    b.flush()
    assert [c.volume for c in b.drain()] == [100]


def test_candles_volume_never_sums_ltq() -> None:
    b, _ = builder()
    feed(b, [tick(at(10, 0, 1), 1.0, 5000, ltq=7), tick(at(10, 0, 2), 1.0, 5003, ltq=50)])
    b.flush()
    assert [c.volume for c in b.drain()] == [3]


def test_candles_volume_new_day_is_new_baseline() -> None:
    # Arrange
    b, counters = builder()
    next_day = ist_ns(dt.date(2025, 3, 4), 10, 0)
    ticks = [
        tick(at(10, 0, 1), 1.0, 5000),
        tick(at(10, 0, 2), 1.0, 5100),
        tick(next_day + NS, 1.0, 40),
        tick(next_day + 2 * NS, 1.0, 70),
    ]
    # Act
    events = run_all(b, ticks)
    # Assert
    assert [c.volume for c in events] == [100, 30]
    assert counters.volume_resets == 0


def test_candles_late_tick_in_window_revises_last_closed_candle() -> None:
    # Arrange
    b, counters = builder(grace=1, lateness=10)
    closed = feed(b, [tick(at(10, 0, 30), 100.0, 10), tick(at(10, 1, 2), 101.0, 20)])
    # Act: a 10:00:45 tick arrives late (watermark 10:01:02 < end + 10 s)
    revised = feed(b, [tick(at(10, 0, 45), 120.0, 15)])
    # Assert
    assert [(c.revision, c.high, c.close) for c in closed] == [(0, 100.0, 100.0)]
    assert [(c.revision, c.high, c.close, c.ticks, c.volume) for c in revised] == [
        (1, 120.0, 120.0, 2, 0)
    ]
    assert (counters.late_revised, counters.candles_revised) == (1, 1)


def test_candles_late_tick_beyond_window_dropped_and_counted() -> None:
    b, counters = builder(grace=1, lateness=10)
    feed(b, [tick(at(10, 0, 30), 100.0), tick(at(10, 1, 11), 101.0)])
    assert feed(b, [tick(at(10, 0, 45), 120.0)]) == []
    assert counters.late_dropped == 1


def test_candles_late_tick_for_older_than_last_closed_dropped() -> None:
    b, counters = builder(grace=0, lateness=600)
    feed(b, [tick(at(10, 0, 30), 1.0), tick(at(10, 1, 30), 2.0), tick(at(10, 2, 1), 3.0)])
    assert feed(b, [tick(at(10, 0, 50), 9.0)]) == []
    assert counters.late_dropped == 1


def test_candles_late_tick_within_grace_updates_open_bucket_in_time_order() -> None:
    # Arrange: grace 2 s keeps 10:00 open while 10:01 already started
    b, _ = builder(grace=2)
    feed(b, [tick(at(10, 0, 10), 5.0), tick(at(10, 1, 0.5), 6.0)])
    # Act: late ticks for 10:00 that arrive before its close; one is the earliest by time
    feed(b, [tick(at(10, 0, 59), 7.0), tick(at(10, 0, 5), 4.0)])
    b.flush()
    # Assert: open/close follow exchange time, not arrival order
    first = b.drain()[0]
    assert (first.open, first.high, first.low, first.close, first.ticks) == (4.0, 7.0, 4.0, 7.0, 3)


def test_candles_gap_marks_open_and_later_buckets_incomplete() -> None:
    # Arrange
    b, counters = builder()
    feed(b, [tick(at(10, 0, 10), 1.0), tick(at(10, 0, 20), 1.0)])
    # Act: disconnect from 10:00:30 to 10:02:10
    b.mark_gap([("NSE", 2885)], at(10, 0, 30), at(10, 2, 10))
    events = run_all(b, [tick(at(10, 2, 15), 2.0), tick(at(10, 3, 5), 3.0)])
    # Assert
    flags = [(c.start, c.incomplete) for c in events]
    assert flags == [(at(10, 0), True), (at(10, 2), True), (at(10, 3), False)]
    assert counters.candles_incomplete == 2


def test_candles_gap_over_revisable_closed_bucket_emits_revision() -> None:
    b, _ = builder(grace=0, lateness=30)
    feed(b, [tick(at(10, 0, 10), 1.0), tick(at(10, 1, 5), 2.0)])
    b.mark_gap([("NSE", 2885)], at(10, 0, 50), at(10, 1, 1))
    events = b.drain()
    assert [(c.start, c.revision, c.incomplete) for c in events] == [(at(10, 0), 1, True)]


def test_candles_current_returns_live_snapshot() -> None:
    b, _ = builder()
    feed(b, [tick(at(10, 0, 10), 1.0, 10), tick(at(10, 0, 20), 3.0, 15)])
    live = b.current(("NSE", 2885), Interval.M1)
    assert live is not None
    assert (live.open, live.high, live.close, live.volume, live.ticks) == (1.0, 3.0, 3.0, 5, 2)
    assert b.current(("NSE", 1), Interval.M1) is None
    assert b.current(("NSE", 2885), Interval.M5) is None


def test_candles_ticks_without_price_make_no_candle() -> None:
    b, counters = builder()
    feed(b, [tick(at(10, 0, 10), 0.0, 10), Tick(**{**_fields(at(10, 0, 11)), "ltp": None})])
    b.flush()
    assert b.drain() == []
    assert counters.no_price == 2


def _fields(ts: int) -> dict[str, Any]:
    return {
        "exchange": "NSE",
        "token": 2885,
        "symbol": "RELIANCE",
        "source": "kite",
        "ts_exchange": ts,
        "ts_recv": ts,
    }


def test_candles_seed_volume_counts_first_tick_from_known_value() -> None:
    # Arrange
    b, _ = builder()
    first = tick(at(10, 0, 1), 1.0, 5000)
    # Act
    b.seed_volume(first, 4200)
    events = run_all(b, [first, tick(at(10, 0, 2), 1.0, 5100)])
    # Assert
    assert [c.volume for c in events] == [900]


def test_candles_volume_decrease_same_day_is_reset_counted() -> None:
    b, counters = builder()
    events = run_all(
        b,
        [
            tick(at(10, 0, 1), 1.0, 5000),
            tick(at(10, 0, 2), 1.0, 5100),
            tick(at(10, 0, 3), 1.0, 20),
            tick(at(10, 0, 4), 1.0, 50),
        ],
    )
    assert [c.volume for c in events] == [130]
    assert counters.volume_resets == 1


def test_candles_late_tick_adds_no_volume_and_keeps_baseline() -> None:
    b, _ = builder(grace=5)
    events = run_all(
        b,
        [
            tick(at(10, 0, 1), 1.0, 5000),
            tick(at(10, 0, 10), 1.0, 5100),
            tick(at(10, 0, 5), 1.0, 5050),  # late: its trades are inside the 5100
            tick(at(10, 0, 20), 1.0, 5130),
        ],
    )
    assert [(c.volume, c.ticks) for c in events] == [(130, 4)]


def test_candles_daily_interval_is_one_bar_per_session() -> None:
    b, _ = builder((Interval.D1,))
    events = run_all(b, [tick(at(9, 15, 1), 5.0, 10), tick(at(15, 29, 59), 7.0, 30)])
    assert [(c.start, c.open, c.close, c.volume, c.partial) for c in events] == [
        (at(9, 15), 5.0, 7.0, 20, True)
    ]


def test_candles_dropped_late_volume_carries_into_next_bucket() -> None:
    # Arrange: instrument 2 moves the exchange watermark far past 10:00 + lateness
    b, counters = builder(grace=1, lateness=10)
    ticks = [
        tick(at(10, 0, 30), 10.0, 100, token=1),
        tick(at(10, 1, 20), 20.0, 5, token=2),
        tick(at(10, 0, 59), 11.0, 150, token=1),  # newest for token 1, but its bucket is gone
        tick(at(10, 1, 30), 12.0, 160, token=1),
    ]
    # Act
    events = run_all(b, ticks)
    # Assert: the 50 traded by 10:00:59 land in token 1's next candle, not nowhere
    token1 = [(c.start, c.close, c.volume, c.ticks) for c in events if c.token == 1]
    assert token1 == [(at(10, 0), 10.0, 0, 1), (at(10, 1), 12.0, 60, 1)]
    assert counters.late_dropped == 1
