"""Replay against the real PostgreSQL (keyset pages from the partitioned ticks table), back into
the same database through the pipeline, and out to the real Kafka ``raw_ticks``."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from typer.testing import CliRunner

from tickstream.bus.envelope import decode_envelope
from tickstream.bus.kafka_bus import KafkaProducer, ensure_topics
from tickstream.calendar import ist_ns
from tickstream.cli import app
from tickstream.model import Instrument, Interval, Tick
from tickstream.pipeline.candles import CandleConfig
from tickstream.pipeline.engine import EngineConfig
from tickstream.replay import (
    Replay,
    ReplaySpec,
    day_range,
    load_checkpoint,
    replay_into_kafka,
)
from tickstream.replay.pipeline import replay_through_pipeline
from tickstream.storage.duckdb_store import DuckDBStore
from tickstream.storage.postgres import PostgresStore

from conformance.store_suite import create_temp_database, drop_temp_database

DAY = dt.date(2024, 11, 21)
NS = 1_000_000_000
INSTS = (
    Instrument(exchange="NSE", token=1594, symbol="INFY"),
    Instrument(exchange="NSE", token=2885, symbol="RELIANCE"),
)
CONFIG = EngineConfig(candles=CandleConfig(intervals=(Interval.M1,)))


def live_ticks() -> list[Tick]:
    """Both instruments every 2 s from 09:15 to 09:25 IST (301 ticks each)."""
    out = []
    for k in range(301):
        ts = ist_ns(DAY, 9, 15) + k * 2 * NS
        for n, inst in enumerate(INSTS):
            out.append(
                Tick(
                    exchange=inst.exchange, token=inst.token, symbol=inst.symbol, source="kite",
                    ts_exchange=ts + n, ts_recv=ts + 4_000_000, ltp=1500.0 + 0.05 * (k % 40),
                    volume=25 * k,
                )
            )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def pg_dsn(database_url: str) -> Iterator[str]:
    dsn = create_temp_database(database_url, prefix="ts_replay")
    yield dsn
    drop_temp_database(database_url, dsn)


@pytest.fixture
async def store(pg_dsn: str) -> AsyncIterator[PostgresStore]:
    s = PostgresStore(pg_dsn)
    await s.open()
    await s.pool.execute("TRUNCATE ticks, candles_1m")
    await s.write_ticks(live_ticks())
    yield s
    await s.close()


async def sources(store: PostgresStore) -> list[tuple[str, int]]:
    rows = await store.pool.fetch("SELECT source, count(*) FROM ticks GROUP BY 1 ORDER BY 1")
    return [(r[0], r[1]) for r in rows]


def spec(speed: float | None = None) -> ReplaySpec:
    lo, hi = day_range(DAY)
    return ReplaySpec(INSTS, lo, hi, speed=speed, page_size=100)


async def test_replay_postgres_into_same_store_adds_tagged_rows_once(store: PostgresStore) -> None:
    # Act: replay twice, through the pipeline, into the database it reads from
    first = await replay_through_pipeline(Replay(store, spec()), store, CONFIG)
    second = await replay_through_pipeline(Replay(store, spec()), store, CONFIG)
    # Assert: live rows untouched, one replay row per live tick, second run adds none
    assert first.summary.emitted == second.summary.emitted == 602
    assert (first.tick_rows_inserted, second.tick_rows_inserted) == (602, 0)
    assert await sources(store) == [("kite", 602), ("replay", 602)]
    candles = await store.query_candles("NSE", 2885, Interval.M1, *day_range(DAY))
    assert [(c.start, c.ticks) for c in candles] == [
        (ist_ns(DAY, 9, 15 + m), 30) for m in range(10)
    ] + [(ist_ns(DAY, 9, 25), 1)]


async def test_replay_postgres_killed_and_resumed_stores_each_tick_once(
    store: PostgresStore, tmp_path: Path
) -> None:
    # Arrange: a replay killed after its first checkpoints (paced at 1000x, so it is still
    # running when the kill arrives)
    path = tmp_path / "replay" / "pg.json"
    rep = Replay(store, spec(1000.0), replay_id="pg", checkpoint=path, checkpoint_every=100)
    task = asyncio.create_task(replay_through_pipeline(rep, store, CONFIG))
    while (cp := load_checkpoint(path)) is None or cp.emitted < 200:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # Act
    resumed = Replay(store, spec(), replay_id="pg", checkpoint=path, checkpoint_every=100)
    result = await replay_through_pipeline(resumed, store, CONFIG)
    # Assert
    assert resumed.resumed and 200 <= cp.emitted < 602
    assert result.summary.emitted == 602
    assert await sources(store) == [("kite", 602), ("replay", 602)]
    dupes = await store.pool.fetchval(
        "SELECT count(*) FROM (SELECT ts_exchange, token FROM ticks WHERE source = 'replay'"
        " GROUP BY 1, 2 HAVING count(*) > 1) d"
    )
    assert dupes == 0
    # ...and the candles equal an uninterrupted replay's (the resumed engine was rebuilt)
    reference = DuckDBStore(":memory:")
    await reference.open()
    await replay_through_pipeline(Replay(store, spec()), reference, CONFIG)
    for inst in INSTS:
        want = await reference.query_candles("NSE", inst.token, Interval.M1, *day_range(DAY))
        assert await store.query_candles("NSE", inst.token, Interval.M1, *day_range(DAY)) == want
        assert len(want) == 11
    await reference.close()


async def test_replay_postgres_into_kafka_raw_ticks_in_time_order(
    store: PostgresStore, kafka_bootstrap: str
) -> None:
    # Arrange
    from confluent_kafka.admin import AdminClient

    topic = f"raw_ticks_replay_{uuid.uuid4().hex[:8]}"
    await ensure_topics(AdminClient({"bootstrap.servers": kafka_bootstrap}), {topic: 1})
    producer = KafkaProducer(kafka_bootstrap, source="replay")
    # Act
    summary = await replay_into_kafka(Replay(store, spec()), producer, topic=topic)
    got = await asyncio.to_thread(consume, kafka_bootstrap, topic, summary.emitted)
    # Assert
    assert summary.emitted == 602
    want = sorted(live_ticks(), key=lambda t: (t.ts_exchange, t.token))
    assert [(k, t.ts_exchange, t.ltp) for k, t in got] == [
        (t.key, t.ts_exchange, t.ltp) for t in want
    ]
    assert {t.source for _, t in got} == {"replay"}


def consume(bootstrap: str, topic: str, n: int) -> list[tuple[str, Tick]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": topic})
    consumer.assign([TopicPartition(topic, 0, 0)])
    out: list[tuple[str, Tick]] = []
    try:
        while len(out) < n:
            msg = consumer.poll(10)
            assert msg is not None, f"only {len(out)} of {n} messages arrived"
            _, tick = decode_envelope(msg.value() or b"", Tick)
            assert isinstance(tick, Tick)
            out.append(((msg.key() or b"").decode(), tick))
    finally:
        consumer.close()
    return out


def test_replay_cli_kafka_from_postgres_publishes_every_tick(
    pg_dsn: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    # Arrange: the live day in PostgreSQL
    async def fill() -> None:
        s = PostgresStore(pg_dsn)
        await s.open()
        await s.pool.execute("TRUNCATE ticks")
        await s.write_ticks(live_ticks())
        await s.close()

    asyncio.run(fill())
    topic = f"raw_ticks_cli_{uuid.uuid4().hex[:8]}"
    args = ["replay", "--date", DAY.isoformat(), "--symbols", "NSE:2885,NSE:1594", "--speed"]
    args += ["max", "--store", pg_dsn, "--kafka", kafka_bootstrap, "--topic", topic]
    # Act
    result = CliRunner().invoke(app, args, env={"TICKSTREAM_DATA_DIR": str(tmp_path)})
    # Assert
    assert result.exit_code == 0, result.output
    assert f"published: {topic}=602" in result.output
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": topic})
    counts = {}
    for p in range(6):
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        counts[p] = high - low
    consumer.close()
    assert sum(counts.values()) == 602
