from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import pytest

from tickstream.bus.base import Overflow
from tickstream.bus.memory import MemoryBus
from tickstream.calendar import ist_ns
from tickstream.model import Candle, Interval, Tick
from tickstream.pipeline.candles import CandleConfig
from tickstream.pipeline.engine import EngineConfig, PipelineEngine
from tickstream.pipeline.sequence import GapEvent
from tickstream.pipeline_runner import PipelineRunner, Quarantined

DAY = dt.date(2026, 11, 20)
S = 10**9


def tick(sec: float, ltp: float, volume: int, seq: int, token: int = 2885) -> Tick:
    ts = ist_ns(DAY, 10, 0) + int(sec * S)
    return Tick(
        exchange="NSE",
        token=token,
        symbol="RELIANCE",
        source="sim",
        ts_exchange=ts,
        ts_recv=ts,
        seq=seq,
        ltp=ltp,
        volume=volume,
    )


@pytest.fixture
async def bus() -> AsyncIterator[MemoryBus]:
    b = MemoryBus()
    await b.start()
    yield b
    await b.close()


def engine() -> PipelineEngine:
    cfg = EngineConfig(candles=CandleConfig(intervals=(Interval.M1,)))
    return PipelineEngine(cfg)


async def test_runner_ticks_published_and_candles_flushed_on_stop(bus: MemoryBus) -> None:
    ticks_sub = await bus.subscribe("market:ticks", maxsize=100, overflow=Overflow.BLOCK)
    candles_sub = await bus.subscribe("market:candles", maxsize=100, overflow=Overflow.BLOCK)
    enriched_sub = await bus.subscribe("market:candles:enriched", maxsize=100)
    runner = PipelineRunner(engine(), bus, timer_interval_secs=60)
    await runner.start()
    batch = [tick(1, 100.0, 1000, 1), tick(20, 101.5, 1010, 2), tick(50, 99.5, 1025, 3)]
    await runner.put(batch)
    await runner.wait_idle()
    got = [m.value for m in await ticks_sub.get_batch(10, timeout=1)]
    assert got == batch
    assert await candles_sub.get(timeout=0.05) is None  # bucket still open
    await runner.stop()
    (candle,) = [m.value for m in await candles_sub.get_batch(10, timeout=1)]
    assert isinstance(candle, Candle)
    assert (candle.open, candle.high, candle.low, candle.close) == (100.0, 101.5, 99.5, 99.5)
    assert candle.volume == 25 and candle.ticks == 3 and candle.start == ist_ns(DAY, 10, 0)
    (enriched,) = [m.value for m in await enriched_sub.get_batch(10, timeout=1)]
    assert enriched.indicators is not None and enriched.indicators.ema_9 is None  # not warmed up
    assert runner.stats()["published"] == {
        "market:ticks": 3,
        "market:candles": 1,
        "market:candles:enriched": 1,
    }


async def test_runner_quarantined_tick_published_with_reason(bus: MemoryBus) -> None:
    sub = await bus.subscribe("market:quarantine", maxsize=10)
    runner = PipelineRunner(engine(), bus, timer_interval_secs=60)
    await runner.start()
    bad = tick(1, float("nan"), 1000, 1)
    await runner.put([bad])
    await runner.wait_idle()
    msg = await sub.get(timeout=1)
    assert msg is not None and isinstance(msg.value, Quarantined)
    assert msg.value.tick is bad and msg.value.reason == "non_finite"
    await runner.stop()


async def test_runner_gap_event_marks_following_ticks_stale(bus: MemoryBus) -> None:
    sub = await bus.subscribe("market:ticks", maxsize=10)
    runner = PipelineRunner(engine(), bus, timer_interval_secs=60)
    await runner.start()
    await runner.put([tick(1, 100.0, 1000, 1)])
    gap_end = ist_ns(DAY, 10, 0) + 5 * S
    await runner.put(
        GapEvent(
            source="sim",
            instruments=(("NSE", 2885),),
            start_ns=ist_ns(DAY, 10, 0) + S,
            end_ns=gap_end,
            cause="disconnect",
        )
    )
    await runner.put([tick(4, 100.5, 1005, 2)])
    await runner.wait_idle()
    statuses = [m.value.status.value for m in await sub.get_batch(10, timeout=1)]
    assert statuses == ["LIVE", "STALE"]
    await runner.stop()


async def test_runner_source_pumped_until_exhausted(bus: MemoryBus) -> None:
    sub = await bus.subscribe("market:ticks", maxsize=100)
    runner = PipelineRunner(engine(), bus, timer_interval_secs=60)
    await runner.start()

    async def source() -> AsyncIterator[list[Tick]]:
        for i in range(5):
            yield [tick(i, 100 + i, 1000 + i, i + 1)]

    runner.add_source(source(), "gen")
    got: list[Tick] = []
    while len(got) < 5:
        got.extend(m.value for m in await sub.get_batch(10, timeout=2))
    assert [t.seq for t in got] == [1, 2, 3, 4, 5]
    await runner.stop()


async def test_runner_put_after_stop_raises(bus: MemoryBus) -> None:
    runner = PipelineRunner(engine(), bus)
    await runner.start()
    await runner.stop()
    with pytest.raises(RuntimeError, match="not accepting"):
        await runner.put([tick(1, 100.0, 1000, 1)])
