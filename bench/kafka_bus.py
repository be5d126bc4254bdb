"""Kafka publish rate: our KafkaProducer vs a raw confluent-kafka producer loop, same run.

Both use the same producer settings (idempotent, acks=all, linger.ms=5, lz4) and the same topic
layout (6 partitions, key = exchange:token) and are timed until the broker acknowledged every
message (flush). The raw loop produces pre-encoded bytes of the same length as ours; ours starts
from Tick objects and builds the event envelope for each. Target (issue): ours >= 50 % of the
raw loop. Best of N rounds, alternating, because the machine's cores are shared.

    .venv/bin/python bench/kafka_bus.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from redis_bus import make_ticks
from tickstream.bus.envelope import encode_envelope
from tickstream.bus.kafka_bus import KafkaProducer, ensure_topics

from _common import Result, emit

TARGET = 0.50
PRODUCER_CONF: dict[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 5,
    "compression.type": "lz4",
    "queue.buffering.max.messages": 500_000,
}


def bootstrap() -> str:
    if "KAFKA_BOOTSTRAP" in os.environ:
        return os.environ["KAFKA_BOOTSTRAP"]
    env_file = Path(__file__).resolve().parent.parent / ".services" / "env"
    for line in env_file.read_text().splitlines():
        if line.startswith("KAFKA_BOOTSTRAP="):
            return line.partition("=")[2].strip()
    return "127.0.0.1:9092"


def raw_loop(servers: str, topic: str, payloads: list[bytes], keys: list[str]) -> float:
    producer = Producer({"bootstrap.servers": servers, **PRODUCER_CONF})
    t0 = time.perf_counter()
    for i, payload in enumerate(payloads):
        while True:
            try:
                producer.produce(topic, payload, keys[i])
                break
            except BufferError:
                producer.poll(0.01)
        if i % 1000 == 0:
            producer.poll(0)
    left = producer.flush(120)
    rate = len(payloads) / (time.perf_counter() - t0)
    if left:
        raise RuntimeError(f"raw loop: {left} messages unacknowledged")
    return rate


async def ours(servers: str, topic: str, ticks: list[Any]) -> float:
    producer = KafkaProducer(servers, source="bench", config=PRODUCER_CONF)
    t0 = time.perf_counter()
    for i in range(0, len(ticks), 1000):
        producer.produce_many(topic, ticks[i : i + 1000])
    await producer.flush(120)
    return len(ticks) / (time.perf_counter() - t0)


async def run(n: int, rounds: int) -> list[Result]:
    servers = bootstrap()
    run_id = uuid.uuid4().hex[:8]
    t_ours, t_raw = f"bench_ours_{run_id}", f"bench_raw_{run_id}"
    admin = AdminClient({"bootstrap.servers": servers})
    await ensure_topics(admin, {t_ours: 6, t_raw: 6})
    ticks = make_ticks(n)
    payloads = [encode_envelope(t, source="bench", ts=t.ts_recv) for t in ticks]
    keys = [t.key for t in ticks]
    best_ours = best_raw = 0.0
    try:
        for _ in range(rounds):
            best_raw = max(
                best_raw, await asyncio.to_thread(raw_loop, servers, t_raw, payloads, keys)
            )
            best_ours = max(best_ours, await ours(servers, t_ours, ticks))
    finally:
        futures = admin.delete_topics([t_ours, t_raw], operation_timeout=30)
        for fut in futures.values():
            await asyncio.wrap_future(fut)
    ratio = best_ours / best_raw
    return [
        Result(
            stage="kafka publish (idempotent, acks=all, enveloped ticks)",
            ours=round(best_ours),
            baseline=round(best_raw),
            unit="ticks/s",
            target=f">= {TARGET:.0%} of a raw confluent-kafka producer loop",
            passed=ratio >= TARGET,
            notes="baseline: raw Producer.produce loop of pre-encoded bytes, same settings",
            extra={"payload_bytes": len(payloads[0]), "ticks": n, "rounds": rounds},
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small run (< 10 s)")
    args = parser.parse_args()
    n, rounds = (30_000, 2) if args.quick else (150_000, 3)
    emit("kafka_bus", asyncio.run(run(n, rounds)))


if __name__ == "__main__":
    main()
