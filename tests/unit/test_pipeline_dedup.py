"""Dedup keys, the windowed in-memory store, and primary/secondary failover."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tickstream.calendar import ist_ns
from tickstream.model import Tick
from tickstream.pipeline.counters import PipelineCounters
from tickstream.pipeline.dedup import (
    Deduplicator,
    DedupStore,
    FailoverArbiter,
    MemoryDedupStore,
    dedup_key,
)

NS = 1_000_000_000
T0 = ist_ns(dt.date(2025, 3, 3), 10, 0)


def tick(**kw: Any) -> Tick:
    base: dict[str, Any] = {
        "exchange": "NSE",
        "token": 2885,
        "symbol": "RELIANCE",
        "source": "kite",
        "ts_exchange": T0,
        "ts_recv": T0,
        "ltp": 1250.5,
        "volume": 1000,
    }
    base.update(kw)
    return Tick(**base)


def test_dedup_identical_kite_packets_same_second_are_one_tick() -> None:
    # Arrange
    counters = PipelineCounters()
    dedup = Deduplicator(counters=counters)
    # Act: same content, received 3 ms apart
    first = dedup.is_duplicate(tick(ts_recv=T0))
    second = dedup.is_duplicate(tick(ts_recv=T0 + 3_000_000))
    # Assert
    assert (first, second) == (False, True)
    assert counters.deduplicated == 1


def test_dedup_same_second_different_volume_is_a_different_tick() -> None:
    dedup = Deduplicator()
    assert dedup.is_duplicate(tick(volume=1000)) is False
    assert dedup.is_duplicate(tick(volume=1005)) is False


def test_dedup_same_price_other_instrument_is_not_duplicate() -> None:
    dedup = Deduplicator()
    assert dedup.is_duplicate(tick(token=1)) is False
    assert dedup.is_duplicate(tick(token=2)) is False


def test_dedup_seq_key_ignores_content() -> None:
    # Arrange: a feed with sequence numbers; the same seq twice is the same tick
    dedup = Deduplicator()
    # Act
    results = [
        dedup.is_duplicate(tick(source="angelone", seq=7, ltp=1.0)),
        dedup.is_duplicate(tick(source="angelone", seq=7, ltp=2.0)),
        dedup.is_duplicate(tick(source="angelone", seq=8, ltp=1.0)),
    ]
    # Assert
    assert results == [False, True, False]


def test_dedup_key_by_seq_and_by_content() -> None:
    assert dedup_key(tick(source="angelone", seq=9)) == ("angelone", "NSE", 2885, 9)
    key = dedup_key(tick())
    assert key[:7] == ("kite", "NSE", 2885, T0, 1250.5, None, 1000)


def test_memory_store_forgets_keys_older_than_window() -> None:
    # Arrange
    store = MemoryDedupStore(window_ns=60 * NS)
    store.seen("a", T0)
    # Act: time moves 61 s on another key, so "a" is evicted
    store.seen("b", T0 + 61 * NS)
    again = store.seen("a", T0)
    # Assert
    assert again is False
    assert len(store) == 2  # "b" and the re-recorded "a"


def test_memory_store_keeps_keys_inside_window() -> None:
    store = MemoryDedupStore(window_ns=60 * NS)
    store.seen("a", T0)
    store.seen("b", T0 + 59 * NS)
    assert store.seen("a", T0) is True


def test_memory_store_is_bounded_by_max_entries() -> None:
    store = MemoryDedupStore(window_ns=3600 * NS, max_entries=3)
    for i in range(10):
        store.seen(i, T0 + i)
    assert len(store) == 3
    assert store.seen(9, T0) is True
    assert store.seen(0, T0) is False


def test_memory_store_seen_many_matches_seen() -> None:
    store: DedupStore = MemoryDedupStore()
    result = store.seen_many([("a", T0), ("b", T0), ("a", T0 + 1)])
    assert result == [False, False, True]


def test_failover_secondary_blocked_while_primary_live() -> None:
    # Arrange
    counters = PipelineCounters()
    arb = FailoverArbiter("kite", failover_after_ns=3 * NS, counters=counters)
    # Act
    p = arb.accept(tick(source="kite", ts_exchange=T0))
    s = arb.accept(tick(source="angelone", ts_exchange=T0 + 2 * NS))
    # Assert
    assert (p, s) == (True, False)
    assert counters.failover_dropped == 1


def test_failover_secondary_passes_after_primary_silence_then_primary_wins_back() -> None:
    arb = FailoverArbiter("kite", failover_after_ns=3 * NS)
    arb.accept(tick(source="kite", ts_exchange=T0))
    outcomes = [
        arb.accept(tick(source="angelone", ts_exchange=T0 + 3 * NS)),  # exactly 3 s: not yet
        arb.accept(tick(source="angelone", ts_exchange=T0 + 4 * NS)),  # silent > 3 s: pass
        arb.accept(tick(source="kite", ts_exchange=T0 + 5 * NS)),  # primary back
        arb.accept(tick(source="angelone", ts_exchange=T0 + 6 * NS)),  # blocked again
    ]
    assert outcomes == [False, True, True, False]


def test_failover_secondary_first_waits_for_primary_silence() -> None:
    arb = FailoverArbiter("kite", failover_after_ns=3 * NS)
    outcomes = [
        arb.accept(tick(source="angelone", ts_exchange=T0)),
        arb.accept(tick(source="angelone", ts_exchange=T0 + 2 * NS)),
        arb.accept(tick(source="angelone", ts_exchange=T0 + 4 * NS)),
    ]
    assert outcomes == [False, False, True]


def test_failover_is_per_instrument() -> None:
    arb = FailoverArbiter("kite", failover_after_ns=3 * NS)
    arb.accept(tick(source="kite", token=1, ts_exchange=T0 + 10 * NS))
    arb.accept(tick(source="angelone", token=2, ts_exchange=T0))
    assert arb.accept(tick(source="angelone", token=2, ts_exchange=T0 + 4 * NS)) is True
    assert arb.accept(tick(source="angelone", token=1, ts_exchange=T0 + 11 * NS)) is False


def test_failover_without_primary_accepts_every_source() -> None:
    arb = FailoverArbiter(None)
    assert arb.accept(tick(source="kite")) is True
    assert arb.accept(tick(source="angelone")) is True
