"""Injection targets: the in-process PipelineRunner and a Kafka-style producer (raw_ticks)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tickstream.bus.base import Overflow
from tickstream.bus.memory import MemoryBus
from tickstream.calendar import ist_ns
from tickstream.model import Instrument, Tick
from tickstream.pipeline.engine import TOPIC_TICKS, PipelineEngine
from tickstream.pipeline_runner import PipelineRunner
from tickstream.replay import (
    Replay,
    ReplaySpec,
    day_range,
    load_checkpoint,
    replay_into_kafka,
    replay_into_pipeline,
)
from tickstream.storage.duckdb_store import DuckDBStore

DAY = dt.date(2024, 11, 21)
NS = 1_000_000_000
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
