"""SequenceTracker: gap detection and the LIVE/STALE recovery rule."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tickstream.calendar import ist_ns
from tickstream.model import Status, Tick
from tickstream.pipeline.counters import PipelineCounters
from tickstream.pipeline.sequence import GapEvent, SequenceConfig, SequenceTracker

NS = 1_000_000_000
T0 = ist_ns(dt.date(2025, 3, 3), 10, 0)


def tick(seq: int | None, ts: int, **kw: Any) -> Tick:
    base: dict[str, Any] = {
        "exchange": "NSE",
        "token": 2885,
        "symbol": "RELIANCE",
        "source": "angelone",
        "ts_exchange": ts,
        "ts_recv": ts,
        "seq": seq,
        "ltp": 100.0,
    }
    base.update(kw)
    return Tick(**base)


def statuses(tracker: SequenceTracker, ticks: list[Tick]) -> list[str]:
    return [tracker.process(t)[0].status.value for t in ticks]


def test_sequence_in_order_ticks_are_live_without_gap() -> None:
    tracker = SequenceTracker()
    results = [tracker.process(tick(s, T0 + s * NS)) for s in (1, 2, 3)]
    assert [(t.status, g) for t, g in results] == [(Status.LIVE, None)] * 3


def test_sequence_gap_marks_revealing_tick_stale_next_in_order_live() -> None:
    # Arrange
    counters = PipelineCounters()
    tracker = SequenceTracker(counters=counters)
    tracker.process(tick(1, T0 + NS))
    # Act
    revealing, gap = tracker.process(tick(5, T0 + 5 * NS))
    after, _ = tracker.process(tick(6, T0 + 6 * NS))
    # Assert
    assert revealing.status is Status.STALE
    assert gap == GapEvent(
        source="angelone",
        instruments=(("NSE", 2885),),
        start_ns=T0 + NS,
        end_ns=T0 + 5 * NS,
        cause="seq_gap",
    )
    assert after.status is Status.LIVE
    assert (counters.gaps, counters.stale_ticks) == (1, 1)


def test_sequence_recover_after_three_needs_three_in_order_ticks() -> None:
    tracker = SequenceTracker(SequenceConfig(recover_after=3))
    ticks = [tick(s, T0 + s * NS) for s in (1, 3, 4, 5, 6, 7)]
    assert statuses(tracker, ticks) == ["LIVE", "STALE", "STALE", "STALE", "LIVE", "LIVE"]


def test_sequence_out_of_order_does_not_count_towards_recovery() -> None:
    tracker = SequenceTracker(SequenceConfig(recover_after=2))
    ticks = [tick(s, T0 + i * NS) for i, s in enumerate((1, 4, 2, 5, 6))]
    assert statuses(tracker, ticks) == ["LIVE", "STALE", "STALE", "STALE", "LIVE"]


def test_sequence_is_tracked_per_source_and_instrument() -> None:
    tracker = SequenceTracker()
    tracker.process(tick(1, T0))
    _, gap_other_token = tracker.process(tick(10, T0 + NS, token=1))
    _, gap_other_source = tracker.process(tick(10, T0 + NS, source="x"))
    assert (gap_other_token, gap_other_source) == (None, None)


def test_feed_gap_marks_source_stale_until_tick_after_gap_end() -> None:
    # Arrange: Kite-like, no seq
    tracker = SequenceTracker()
    tracker.process(tick(None, T0, source="kite"))
    tracker.process(tick(None, T0, source="kite", token=7))
    # Act
    affected = tracker.on_gap(
        GapEvent(source="kite", instruments=None, start_ns=T0, end_ns=T0 + 5 * NS, cause="ws")
    )
    during = tracker.process(tick(None, T0 + 5 * NS, source="kite"))[0]
    after = tracker.process(tick(None, T0 + 6 * NS, source="kite"))[0]
    other = tracker.process(tick(None, T0 + 6 * NS, source="kite", token=7))[0]
    # Assert
    assert sorted(affected) == [("NSE", 7), ("NSE", 2885)]
    assert (during.status, after.status, other.status) == (Status.STALE, Status.LIVE, Status.LIVE)


def test_feed_gap_for_listed_instruments_leaves_others_live() -> None:
    tracker = SequenceTracker()
    tracker.process(tick(None, T0, source="kite"))
    tracker.process(tick(None, T0, source="kite", token=7))
    tracker.on_gap(
        GapEvent(source="kite", instruments=(("NSE", 7),), start_ns=T0, end_ns=T0 + NS, cause="ws")
    )
    same_ts = [
        tracker.process(tick(None, T0 + NS, source="kite"))[0].status,
        tracker.process(tick(None, T0 + NS, source="kite", token=7))[0].status,
    ]
    assert same_ts == [Status.LIVE, Status.STALE]


def test_sequence_restarted_numbering_on_next_day_is_a_new_baseline() -> None:
    tracker = SequenceTracker()
    t1 = T0 + 86_400 * NS
    ticks = [tick(900, T0), tick(901, T0 + NS), tick(1, t1), tick(2, t1 + NS)]
    results = [tracker.process(t) for t in ticks]
    assert [(t.status.value, g) for t, g in results] == [("LIVE", None)] * 4


def test_sequence_first_seq_after_feed_gap_is_a_new_baseline() -> None:
    # Arrange
    tracker = SequenceTracker()
    tracker.process(tick(900, T0))
    tracker.on_gap(
        GapEvent(source="angelone", instruments=None, start_ns=T0, end_ns=T0 + NS, cause="ws")
    )
    # Act: the reconnected feed numbers from 1
    results = [tracker.process(t) for t in (tick(1, T0 + 2 * NS), tick(2, T0 + 3 * NS))]
    # Assert
    assert [(t.status.value, g) for t, g in results] == [("LIVE", None), ("LIVE", None)]


def test_sequence_repeat_seq_at_same_time_is_not_in_order() -> None:
    tracker = SequenceTracker(SequenceConfig(recover_after=1))
    ticks = [tick(1, T0), tick(3, T0 + NS), tick(3, T0 + NS), tick(4, T0 + 2 * NS)]
    assert statuses(tracker, ticks) == ["LIVE", "STALE", "STALE", "LIVE"]
