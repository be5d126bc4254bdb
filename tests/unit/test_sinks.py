from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence

import pytest

from tickstream.bus.memory import MemoryBus
from tickstream.model import Interval, Tick
from tickstream.storage.base import StoreUnavailableError
from tickstream.storage.duckdb_store import DuckDBStore
from tickstream.storage.ringbuffer import MemoryRingBuffer
from tickstream.storage.sinks import CandleSink, StoreSink, TickSink

from conformance.store_suite import all_ticks, make_candle, make_tick

DEADLINE_S = 10.0


async def wait_until(cond: Callable[[], bool]) -> None:
    end = time.monotonic() + DEADLINE_S
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.005)


class FlakyWriter:
    """Fails while ``down`` (or for the first ``fail_first`` calls); records what it accepted."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.down = False
        self.calls = 0
        self.batches: list[list[Tick]] = []

    async def __call__(self, items: Sequence[Tick]) -> int:
        self.calls += 1
        if self.down or self.calls <= self.fail_first:
            raise StoreUnavailableError("postgres unavailable: ConnectionRefusedError")
        self.batches.append(list(items))
        return len(items)

    @property
    def accepted(self) -> list[Tick]:
        return [t for b in self.batches for t in b]


@pytest.fixture
async def bus() -> AsyncIterator[MemoryBus]:
    b = MemoryBus()
    await b.start()
    yield b
    await b.close()


@pytest.fixture
async def store() -> AsyncIterator[DuckDBStore]:
    s = DuckDBStore()
    await s.open()
    yield s
    await s.close()


async def test_tick_sink_stores_everything_published_after_stop(
    bus: MemoryBus, store: DuckDBStore
) -> None:
    sink = TickSink(bus, store, "ticks", batch_size=16, flush_interval_s=0.01)
    await sink.start()
    ticks = [make_tick(i) for i in range(100)]
    await bus.publish_many("ticks", ticks)
    await sink.stop()
    assert await all_ticks(store) == ticks
    stats = sink.stats()
    assert (stats["written"], stats["inserted"], stats["spool"]) == (100, 100, 0)


async def test_sink_batches_never_exceed_batch_size_and_keep_order(bus: MemoryBus) -> None:
    writer = FlakyWriter()
    sink = StoreSink(bus, "t", writer, type_=Tick, batch_size=10, flush_interval_s=0.01)
    await sink.start()
    ticks = [make_tick(i) for i in range(95)]
    await bus.publish_many("t", ticks)
    await sink.stop()
    assert max(len(b) for b in writer.batches) <= 10
    assert writer.accepted == ticks


async def test_sink_flushes_partial_batch_on_stop(bus: MemoryBus) -> None:
    writer = FlakyWriter()
    sink = StoreSink(bus, "t", writer, type_=Tick, batch_size=1000, flush_interval_s=3600)
    await sink.start()
    await bus.publish_many("t", [make_tick(i) for i in range(5)])
    await wait_until(lambda: sink.stats()["received"] == 5)
    assert writer.batches == []
    await sink.stop()
    assert writer.accepted == [make_tick(i) for i in range(5)]


async def test_sink_retries_failed_batch_until_written_once(bus: MemoryBus) -> None:
    writer = FlakyWriter(fail_first=3)
    sink = StoreSink(
        bus, "t", writer, type_=Tick, batch_size=8, flush_interval_s=0.01, backoff_initial_s=0.001
    )
    await sink.start()
    ticks = [make_tick(i) for i in range(20)]
    await bus.publish_many("t", ticks)
    await wait_until(lambda: sink.stats()["written"] == 20)
    await sink.stop()
    stats = sink.stats()
    assert writer.accepted == ticks
    assert stats["retries"] == 3
    assert (
        stats["last_error"] == "StoreUnavailableError: postgres unavailable: ConnectionRefusedError"
    )


async def test_sink_full_spool_applies_back_pressure_and_loses_nothing(bus: MemoryBus) -> None:
    writer = FlakyWriter()
    writer.down = True
    sink = StoreSink(
        bus,
        "t",
        writer,
        type_=Tick,
        batch_size=10,
        spool_max=30,
        flush_interval_s=0.01,
        backoff_initial_s=0.001,
        backoff_max_s=0.005,
    )
    await sink.start()
    ticks = [make_tick(i) for i in range(100)]
    publisher = asyncio.create_task(bus.publish_many("t", ticks))
    await wait_until(lambda: sink.stats()["spool"] == 30 and sink.stats()["retries"] >= 2)
    await asyncio.sleep(0.05)
    assert not publisher.done()  # blocked by the full subscription behind the full spool
    assert sink.stats()["spool"] == 30
    writer.down = False
    await asyncio.wait_for(publisher, DEADLINE_S)
    await sink.stop()
    assert writer.accepted == ticks


async def test_sink_on_ring_buffer_keeps_last_ticks(bus: MemoryBus) -> None:
    ring = MemoryRingBuffer(size=3)
    sink = StoreSink(bus, "t", ring.push, type_=Tick, name="backfill", flush_interval_s=0.01)
    await sink.start()
    ticks = [make_tick(i) for i in range(10)]
    await bus.publish_many("t", ticks)
    await sink.stop()
    assert await ring.recent("NSE", 2885) == ticks[-3:]


async def test_candle_sink_upserts_candles(bus: MemoryBus, store: DuckDBStore) -> None:
    sink = CandleSink(bus, store, "candles", flush_interval_s=0.01)
    await sink.start()
    candles = [make_candle(i) for i in range(4)]
    await bus.publish_many("candles", [*candles, make_candle(0, revision=1, close=1.5)])
    await sink.stop()
    got = await store.query_candles("NSE", 2885, Interval.M1, 0, 2**62)
    assert got == [make_candle(0, revision=1, close=1.5), *candles[1:]]


def test_sink_rejects_spool_smaller_than_batch() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        StoreSink(MemoryBus(), "t", FlakyWriter(), type_=Tick, batch_size=10, spool_max=5)


async def test_sink_isolates_rejected_item_writes_all_others(bus: MemoryBus) -> None:
    bad = make_tick(13)
    accepted: list[Tick] = []

    async def picky(items: Sequence[Tick]) -> int:
        if bad in items:
            raise OverflowError("value out of int64 range")
        accepted.extend(items)
        return len(items)

    sink = StoreSink(
        bus, "t", picky, type_=Tick, batch_size=8, flush_interval_s=0.01, backoff_initial_s=0.001
    )
    await sink.start()
    ticks = [make_tick(i) for i in range(40)]
    await bus.publish_many("t", ticks)
    await sink.stop()
    stats = sink.stats()
    assert accepted == [t for t in ticks if t != bad]
    assert sink.dead_letter() == [bad]
    assert (stats["dead_lettered"], stats["written"], stats["spool"]) == (1, 39, 0)
    assert stats["last_error"] == "OverflowError: value out of int64 range"


async def test_sink_transient_errors_never_dead_letter(bus: MemoryBus) -> None:
    writer = FlakyWriter(fail_first=6)
    sink = StoreSink(
        bus, "t", writer, type_=Tick, batch_size=1, flush_interval_s=0.01, backoff_initial_s=0.001
    )
    await sink.start()
    await bus.publish_many("t", [make_tick(0), make_tick(1)])
    await sink.stop()
    assert writer.accepted == [make_tick(0), make_tick(1)]
    assert sink.dead_letter() == []
