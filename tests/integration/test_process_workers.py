"""Two `process` workers share a 6-partition topic; one is SIGKILLed mid-stream.

The candles they produce together must equal a single worker's: every candle id present, each
with the single-run value (a redelivered batch may repeat a candle; it is then identical).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from tickstream.bus.envelope import decode_envelope
from tickstream.bus.kafka_bus import KafkaProducer, ensure_topics
from tickstream.calendar import ist_ns
from tickstream.model import Candle, Interval, Tick
from tickstream.pipeline.candles import CandleConfig
from tickstream.pipeline.engine import EngineConfig, PipelineEngine
from tickstream.scaleout import Processor, ProcessWorker

pytestmark = pytest.mark.timeout(120)

PARTITIONS = 6
FAST_GROUP = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500}


@cache
def sim_ticks() -> tuple[Tick, ...]:
    from tickstream.sim.market import Market
    from tickstream.sim.universe import default_universe, reference_prices

    instruments = [i for i in default_universe() if i.exchange == "NSE"][:12]
    start = ist_ns(dt.date(2025, 11, 20), 10, 0)
    market = Market(instruments, seed=3, start_ns=start, reference_prices=reference_prices())
    out: list[Tick] = []
    for s in range(1, 241):
        out.extend(market.step(start + s * 1_000_000_000))
    return tuple(out)


def engine() -> Processor:
    cfg = EngineConfig(candles=CandleConfig(intervals=(Interval.M1,)))
    return PipelineEngine(cfg, indicator_factory=None)


async def produce(bootstrap: str, topic: str, ticks: Sequence[Tick]) -> None:
    producer = KafkaProducer(bootstrap, source="test")
    producer.produce_many(topic, ticks)
    await producer.flush(30)


def read_topic(bootstrap: str, topic: str) -> list[tuple[str, Candle]]:
    """(event id, candle) for every record of ``topic``, partition by partition."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{uuid.uuid4()}"})
    out: list[tuple[str, Candle]] = []
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        for p in sorted(parts):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high == low:
                continue
            consumer.assign([TopicPartition(topic, p, low)])
            while True:
                m = consumer.poll(10)
                assert m is not None and m.error() is None
                header, value = decode_envelope(m.value() or b"", Candle)
                assert isinstance(value, Candle)
                out.append((header.id, value))
                if m.offset() == high - 1:
                    break
    finally:
        consumer.close()
    return out


def committed_total(bootstrap: str, group: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        return sum(max(tp.offset, 0) for tp in consumer.committed(tps, timeout=10))
    finally:
        consumer.close()


async def wait_committed(bootstrap: str, group: str, topic: str, total: int, s: float) -> None:
    end = time.monotonic() + s
    while time.monotonic() < end:
        if await asyncio.to_thread(committed_total, bootstrap, group, topic) >= total:
            return
        await asyncio.sleep(0.5)
    got = await asyncio.to_thread(committed_total, bootstrap, group, topic)
    raise AssertionError(f"group {group} committed {got} of {total} within {s}s")


async def wait_shared(worker: ProcessWorker, s: float) -> None:
    """Until the other worker has joined: ``worker`` owns some but not all partitions."""
    end = time.monotonic() + s
    while not 0 < len(worker.stats()["partitions"]) < PARTITIONS:
        assert time.monotonic() < end, "the second worker never joined the group"
        await asyncio.sleep(0.2)


async def run_worker(worker: ProcessWorker, stop: asyncio.Event) -> None:
    await worker.run(stop)


def spawn_worker(bootstrap: str, group: str, raw: str, candles: str) -> subprocess.Popen[bytes]:
    args = [
        sys.executable, "-m", "tickstream.cli", "process",
        "--kafka", bootstrap, "--group", group, "--source-topic", raw,
        "--ticks-topic", f"{candles}_ticks", "--candles-topic", candles,
        "--intervals", "1m", "--no-indicators", "--batch", "100",
        "--session-timeout-ms", "6000", "--redis", "", "--database", "",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    return subprocess.Popen(args, env=env, cwd=Path(__file__).parents[2])


async def test_process_two_workers_one_killed_candles_equal_single_worker(
    kafka_bootstrap: str,
) -> None:
    # Arrange
    run = uuid.uuid4().hex[:8]
    raw, single, multi = f"test_raw_{run}", f"test_c1_{run}", f"test_c2_{run}"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    await ensure_topics(
        admin, {t: PARTITIONS for t in (raw, single, multi, f"{single}_t", f"{multi}_ticks")}
    )
    ticks = sim_ticks()
    half = len(ticks) // 2

    # single-worker reference run over the first half
    stop1 = asyncio.Event()
    w1 = ProcessWorker(
        kafka_bootstrap, engine, group_id=f"g1-{run}", source_topic=raw,
        ticks_topic=f"{single}_t", candles_topic=single, batch_max=300,
        consumer_config=FAST_GROUP,
    )  # fmt: skip
    t1 = asyncio.create_task(run_worker(w1, stop1))

    # Act: worker B in-process, worker A a real process that gets SIGKILLed mid-stream
    stop2 = asyncio.Event()
    wb = ProcessWorker(
        kafka_bootstrap, engine, group_id=f"g2-{run}", source_topic=raw,
        ticks_topic=f"{multi}_ticks", candles_topic=multi, batch_max=100,
        consumer_config=FAST_GROUP,
    )  # fmt: skip
    tb = asyncio.create_task(run_worker(wb, stop2))
    proc_a = spawn_worker(kafka_bootstrap, f"g2-{run}", raw, multi)
    try:
        await wait_shared(wb, 45)
        owned_by_b = len(wb.stats()["partitions"])
        for i in range(0, half, 100):  # a stream, not one burst: both workers take part
            await produce(kafka_bootstrap, raw, ticks[i : min(i + 100, half)])
            await asyncio.sleep(0.05)
        await wait_committed(kafka_bootstrap, f"g2-{run}", raw, half, 45)
        proc_a.send_signal(signal.SIGKILL)
        proc_a.wait(10)
        await produce(kafka_bootstrap, raw, ticks[half:])
        await wait_committed(kafka_bootstrap, f"g2-{run}", raw, len(ticks), 45)
        await wait_committed(kafka_bootstrap, f"g1-{run}", raw, len(ticks), 30)
    finally:
        if proc_a.poll() is None:
            proc_a.kill()
            proc_a.wait(10)
        stop1.set()
        stop2.set()
        await asyncio.gather(t1, tb)

    # Assert
    reference = dict(read_topic(kafka_bootstrap, single))
    produced = read_topic(kafka_bootstrap, multi)
    assert 0 < owned_by_b < PARTITIONS  # both workers really shared the partitions
    assert wb.replayed > 0  # B rebuilt A's candle state before taking over
    assert len(reference) >= 30
    assert {i for i, _ in produced} == set(reference)
    assert all(candle == reference[i] for i, candle in produced)
    assert w1.stats()["processed"] == len(ticks)


def test_ingest_cli_sim_source_publishes_enveloped_ticks(kafka_bootstrap: str) -> None:
    from typer.testing import CliRunner

    from tickstream.cli import app

    topic = f"test_ingest_{uuid.uuid4().hex[:8]}"
    args = ["ingest", "--kafka", kafka_bootstrap, "--topic", topic, "--max-ticks", "300"]

    result = CliRunner().invoke(
        app, [*args, "--source", "sim", "--speed", "30", "--partitions", "2"]
    )

    assert result.exit_code == 0, result.output
    assert f"ingested 300 ticks into {topic}" in result.output
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": topic})
    counts = []
    for p in range(2):
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        counts.append(high - low)
    consumer.assign([TopicPartition(topic, 0, 0)])
    msg = consumer.poll(10)
    consumer.close()
    assert sum(counts) == 300
    assert msg is not None
    header, tick = decode_envelope(msg.value() or b"", Tick)
    assert isinstance(tick, Tick)
    assert (header.type, header.source, tick.source) == ("tick", "ingest-sim", "sim")
    assert msg.key() == tick.key.encode()


async def test_process_graceful_rebalance_moves_state_without_repeating_outputs(
    kafka_bootstrap: str,
) -> None:
    # Arrange: one worker has processed and committed everything
    run = uuid.uuid4().hex[:8]
    raw, candles, group = f"test_raw_{run}", f"test_c_{run}", f"g-{run}"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    await ensure_topics(admin, {t: PARTITIONS for t in (raw, candles, f"{candles}_t")})
    ticks = sim_ticks()
    await produce(kafka_bootstrap, raw, ticks)

    def worker() -> ProcessWorker:
        return ProcessWorker(
            kafka_bootstrap, engine, group_id=group, source_topic=raw,
            ticks_topic=f"{candles}_t", candles_topic=candles, batch_max=500,
            consumer_config=FAST_GROUP,
        )  # fmt: skip

    stop = asyncio.Event()
    first, second = worker(), worker()
    tasks = [asyncio.create_task(run_worker(first, stop))]
    try:
        await wait_committed(kafka_bootstrap, group, raw, len(ticks), 45)
        before = await asyncio.to_thread(read_topic, kafka_bootstrap, candles)

        # Act: a second worker joins; the first flushes, commits and hands partitions over
        tasks.append(asyncio.create_task(run_worker(second, stop)))
        await wait_shared(first, 45)
        end = time.monotonic() + 30
        while second.replayed == 0 and time.monotonic() < end:
            await asyncio.sleep(0.2)
        await asyncio.sleep(2.0)  # anything wrongly re-emitted would land meanwhile
    finally:
        stop.set()
        await asyncio.gather(*tasks)

    # Assert
    after = await asyncio.to_thread(read_topic, kafka_bootstrap, candles)
    assert len(before) >= 30
    assert after == before  # state rebuilt from the log, nothing emitted twice
    assert second.replayed > 0
    assert second.processed == 0
    assert first.processed == len(ticks)


def test_ingest_cli_feed_source_real_client_over_sim_wire_with_heartbeat(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Default source: the real Kite client against the simulator's Kite server, into Kafka."""
    from typer.testing import CliRunner

    from tickstream.cli import app

    topic = f"test_ingest_feed_{uuid.uuid4().hex[:8]}"
    hb = tmp_path / "ingest.health"
    args = [
        "ingest",
        "--kafka",
        kafka_bootstrap,
        "--topic",
        topic,
        "--max-ticks",
        "200",
        "--partitions",
        "1",
        "--heartbeat-file",
        str(hb),
    ]

    result = CliRunner().invoke(app, args)

    assert result.exit_code == 0, result.output
    assert f"ingested 200 ticks into {topic}" in result.output
    assert not hb.exists()  # removed on a clean stop
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": topic})
    low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    consumer.assign([TopicPartition(topic, 0, 0)])
    msg = consumer.poll(10)
    consumer.close()
    assert high - low == 200
    assert msg is not None
    _header, tick = decode_envelope(msg.value() or b"", Tick)
    assert tick.source == "kite" and tick.ltp is not None and tick.ltp > 0
