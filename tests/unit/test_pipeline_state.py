"""MarketDataStore: latest tick, historical values, accumulated volume, concurrent access."""

from __future__ import annotations

import asyncio
import datetime as dt

from tickstream.calendar import ist_ns
from tickstream.model import Tick
from tickstream.pipeline.state import Historical, MarketDataStore

NS = 1_000_000_000
T0 = ist_ns(dt.date(2025, 3, 3), 10, 0)


def tick(token: int, ts: int, ltp: float) -> Tick:
    return Tick(
        exchange="NSE",
        token=token,
        symbol=f"S{token}",
        source="kite",
        ts_exchange=ts,
        ts_recv=ts,
        ltp=ltp,
    )


def test_state_update_tick_keeps_newest_by_exchange_time() -> None:
    # Arrange
    store = MarketDataStore()
    # Act
    stored = [
        store.update_tick(tick(1, T0 + 2 * NS, 101.0)),
        store.update_tick(tick(1, T0 + NS, 99.0)),  # late: ignored
        store.update_tick(tick(1, T0 + 2 * NS, 102.0)),  # same ts, later arrival wins
    ]
    # Assert
    assert stored == [True, False, True]
    held = store.get_tick("NSE", 1)
    assert held is not None and held.ltp == 102.0


def test_state_get_tick_unknown_is_none_and_all_ticks_is_a_copy() -> None:
    store = MarketDataStore()
    store.update_tick(tick(1, T0, 1.0))
    snapshot = store.get_all_ticks()
    store.update_tick(tick(2, T0, 2.0))
    assert store.get_tick("NSE", 3) is None
    assert sorted(snapshot) == [("NSE", 1)]
    assert len(store) == 2


def test_state_historical_round_trip() -> None:
    store = MarketDataStore()
    hist = Historical(prev_close=2450.5, prev_high=2475.0, adv_20d=1_250_000.0)
    store.set_historical("NSE", 2885, hist)
    assert store.get_historical("NSE", 2885) == hist
    assert store.get_historical("NSE", 1) is None


def test_state_accumulate_volume_sums_and_resets() -> None:
    store = MarketDataStore()
    totals = [store.accumulate_volume("NSE", 1, q) for q in (10, 5, 7)]
    store.reset_accumulated_volume("NSE", 1)
    assert totals == [10, 15, 22]
    assert store.get_accumulated_volume("NSE", 1) == 0


async def test_state_concurrent_tasks_interleaving_updates_and_reads_end_consistent() -> None:
    # Arrange: 50 tasks, each 40 rounds of tick update + volume add + read, yielding in between
    store = MarketDataStore()
    reads: list[float] = []

    async def worker(w: int) -> None:
        for i in range(40):
            token = w % 5
            store.update_tick(tick(token, T0 + (i * 50 + w) * NS, float(i * 50 + w)))
            await asyncio.sleep(0)
            store.accumulate_volume("NSE", token, 1)
            await store.add_volume("NSE", 100, 2)
            held = store.get_tick("NSE", token)
            assert held is not None
            reads.append(held.ltp or 0.0)
            await asyncio.sleep(0)

    # Act
    await asyncio.gather(*(worker(w) for w in range(50)))
    # Assert: every token holds its newest tick; volumes add up exactly
    for token in range(5):
        held = store.get_tick("NSE", token)
        newest = max(i * 50 + w for i in range(40) for w in range(50) if w % 5 == token)
        assert held is not None and held.ltp == float(newest)
        assert store.get_accumulated_volume("NSE", token) == 400
    assert store.get_accumulated_volume("NSE", 100) == 50 * 40 * 2
    assert len(reads) == 2000


async def test_state_lock_makes_read_await_write_sequences_atomic() -> None:
    # Arrange: read, await, write: without the lock these lose updates
    store = MarketDataStore()

    async def bump() -> None:
        async with store.lock:
            current = store.get_accumulated_volume("NSE", 1)
            await asyncio.sleep(0)
            store.reset_accumulated_volume("NSE", 1)
            store.accumulate_volume("NSE", 1, current + 1)

    # Act
    await asyncio.gather(*(bump() for _ in range(100)))
    # Assert
    assert store.get_accumulated_volume("NSE", 1) == 100
