"""Injection targets: the in-process PipelineRunner and a Kafka-style producer (raw_ticks)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from tickstream.bus.base import Overflow
from tickstream.bus.memory import MemoryBus
from tickstream.calendar import ist_ns
from tickstream.model import Candle, Instrument, Interval, Tick
from tickstream.pipeline.candles import CandleConfig
from tickstream.pipeline.engine import TOPIC_TICKS, EngineConfig, PipelineEngine
from tickstream.pipeline_runner import PipelineRunner
from tickstream.replay import (
    Replay,
    ReplaySpec,
    day_range,
    load_checkpoint,
    replay_into_kafka,
    replay_into_pipeline,
)
from tickstream.replay.pipeline import replay_through_pipeline
from tickstream.storage.duckdb_store import DuckDBStore

DAY = dt.date(2024, 11, 21)
NS = 1_000_000_000
CONFIG = EngineConfig(candles=CandleConfig(intervals=(Interval.M1, Interval.M5)))
INSTS = (
    Instrument(exchange="NFO", token=43210, symbol="NIFTY24NOVFUT"),
    Instrument(exchange="NSE", token=2885, symbol="RELIANCE"),
)


def ticks() -> list[Tick]:
    out = []
    for k in range(50):
        ts = ist_ns(DAY, 9, 15) + k * NS
        for inst in INSTS:
            out.append(
                Tick(
                    exchange=inst.exchange, token=inst.token, symbol=inst.symbol, source="kite",
                    ts_exchange=ts, ts_recv=ts + 1000, ltp=100.0 + k, volume=k,
                )
            )  # fmt: skip
    return out


async def store() -> DuckDBStore:
    s = DuckDBStore(":memory:")
    await s.open()
    await s.write_ticks(ticks())
    return s


class FakeProducer:
    """Records what a KafkaProducer would send; ``flush`` marks the acknowledged prefix."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Tick, str | None]] = []
        self.acked = 0

    def produce_many(
        self, topic: str, values: Sequence[Any], keys: Sequence[str | None] | None = None
    ) -> None:
        assert keys is not None
        self.sent.extend((topic, v, k) for v, k in zip(values, keys, strict=True))

    async def flush(self, timeout: float | None = None) -> None:
        self.acked = len(self.sent)


async def test_replay_into_kafka_keys_by_instrument_and_flushes_before_checkpoint(
    tmp_path: Path,
) -> None:
    # Arrange
    src = await store()
    producer = FakeProducer()
    path = tmp_path / "k.json"
    spec = ReplaySpec(INSTS, *day_range(DAY), batch_size=30)
    rep = Replay(src, spec, checkpoint=path, checkpoint_every=30)
    # Act
    summary = await replay_into_kafka(rep, producer, topic="raw_ticks")
    # Assert
    assert summary.emitted == 100
    assert {topic for topic, _, _ in producer.sent} == {"raw_ticks"}
    assert [k for _, _, k in producer.sent[:4]] == ["NFO:43210", "NSE:2885"] * 2
    assert all(t.source == "replay" and k == t.key for _, t, k in producer.sent)
    cp = load_checkpoint(path)
    assert cp is not None and cp.done and cp.emitted == producer.acked == 100
    await src.close()


async def test_replay_into_pipeline_ticks_traverse_engine_and_reach_bus() -> None:
    # Arrange
    src = await store()
    bus = MemoryBus()
    await bus.start()
    sub = await bus.subscribe(TOPIC_TICKS, maxsize=1000, overflow=Overflow.BLOCK)
    runner = PipelineRunner(PipelineEngine(), bus)
    await runner.start()
    rep = Replay(src, ReplaySpec(INSTS, *day_range(DAY)))
    # Act
    await replay_into_pipeline(rep, runner)
    await runner.stop()
    got = [m.value for m in await sub.get_batch(1000, timeout=0.1)]
    # Assert: accepted by normalize/dedup/sequence, in order, tagged
    assert runner.engine.counters.accepted == 100
    assert [(t.exchange, t.ltp) for t in got[:4]] == [
        ("NFO", 100.0),
        ("NSE", 100.0),
        ("NFO", 101.0),
        ("NSE", 101.0),
    ]
    assert {t.source for t in got} == {"replay"}
    await bus.close()
    await src.close()


def minutes_of_ticks() -> list[Tick]:
    """Two instruments every 3 s for 12 minutes (candles span the kill point)."""
    out = []
    for k in range(240):
        ts = ist_ns(DAY, 9, 15) + k * 3 * NS
        for n, inst in enumerate(INSTS):
            out.append(
                Tick(
                    exchange=inst.exchange, token=inst.token, symbol=inst.symbol, source="kite",
                    ts_exchange=ts + n, ts_recv=ts + 1000, ltp=100.0 + (k * 7 % 13) * 0.05,
                    volume=10 * k,
                )
            )  # fmt: skip
    return out


async def stored_candles(store: DuckDBStore) -> list[Candle]:
    out = []
    for inst in INSTS:
        for iv in (Interval.M1, Interval.M5):
            out += await store.query_candles(inst.exchange, inst.token, iv, *day_range(DAY))
    return out


async def test_replay_killed_then_resumed_gives_candles_of_uninterrupted_replay(
    tmp_path: Path,
) -> None:
    # Arrange: the reference, replayed in one go
    src = DuckDBStore(":memory:")
    await src.open()
    await src.write_ticks(minutes_of_ticks())
    spec = ReplaySpec(INSTS, *day_range(DAY), batch_size=50)
    ref, out = DuckDBStore(":memory:"), DuckDBStore(":memory:")
    await ref.open()
    await out.open()
    await replay_through_pipeline(Replay(src, spec), ref, CONFIG)
    # ...and a replay cancelled mid-way, just after a checkpoint at 200 ticks (paced at 1000x so
    # that it is still running when the kill arrives: 36 s of exchange time left = 0.36 s)
    path = tmp_path / "cp.json"
    paced = dataclasses.replace(spec, speed=1000.0)
    killed = Replay(src, paced, checkpoint=path, checkpoint_every=200)
    task = asyncio.create_task(replay_through_pipeline(killed, out, CONFIG))
    while (cp := load_checkpoint(path)) is None:
        await asyncio.sleep(0.005)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # Act
    resumed = Replay(src, spec, checkpoint=path, checkpoint_every=200)
    result = await replay_through_pipeline(resumed, out, CONFIG)
    # Assert: same candles (the bucket open at the kill is rebuilt whole), each tick stored once
    assert resumed.resumed and 0 < cp.emitted < 480
    assert result.summary.emitted == 480
    want = await stored_candles(ref)
    assert len(want) == 2 * (12 + 3)
    assert await stored_candles(out) == want
    page = await out.query_ticks("NSE", 2885, *day_range(DAY), limit=1000)
    assert [t.ts_exchange for t in page.ticks] == [
        t.ts_exchange for t in minutes_of_ticks() if t.token == 2885
    ]
