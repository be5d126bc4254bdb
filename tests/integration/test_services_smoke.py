"""Round trips against the real Redis, PostgreSQL and Kafka started by scripts/services.sh.

Each test prints the server's version straight to the terminal (and records it as a junit
property) so a test run shows which servers it really talked to.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable

import asyncpg
import pytest
import redis.asyncio as aioredis
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition, libversion
from confluent_kafka.admin import AdminClient, NewTopic
from redis.utils import HIREDIS_AVAILABLE

Report = Callable[[str, str], None]


@pytest.fixture
def report(capsys: pytest.CaptureFixture[str], record_property: Callable[..., None]) -> Report:
    def _report(name: str, text: str) -> None:
        record_property(name, text)
        with capsys.disabled():
            print(f"\n  [{name}] {text}")

    return _report


async def test_redis_stream_consumer_group_roundtrip_acks_all(
    redis_url: str, report: Report
) -> None:
    assert HIREDIS_AVAILABLE, "redis-py should use the hiredis parser (redis[hiredis])"
    client = aioredis.from_url(redis_url, decode_responses=True)
    key = f"it:smoke:stream:{uuid.uuid4().hex}"
    group = "smoke"
    try:
        server = await client.info("server")
        report("redis_version", f"redis {server['redis_version']} at {redis_url}")

        sent = [{"sym": "NIFTY 50", "ltp": f"{22000 + i}.25", "seq": str(i)} for i in range(3)]
        ids = [await client.xadd(key, fields) for fields in sent]
        assert len(set(ids)) == 3
        assert await client.xgroup_create(key, group, id="0") is True

        response = await client.xreadgroup(group, "consumer-1", {key: ">"}, count=10, block=2000)
        assert len(response) == 1
        stream, entries = response[0]
        assert stream == key
        assert [entry_id for entry_id, _ in entries] == ids
        assert [fields for _, fields in entries] == sent

        assert await client.xack(key, group, *ids) == 3
        pending = await client.xpending(key, group)
        assert pending["pending"] == 0
    finally:
        await client.delete(key)
        await client.aclose()


async def test_postgres_copy_10k_records_count_and_sum_match(
    database_url: str, report: Report
) -> None:
    conn = await asyncpg.connect(database_url)
    table = f"it_smoke_copy_{uuid.uuid4().hex[:16]}"
    n = 10_000
    try:
        version = await conn.fetchval("SHOW server_version")
        report("postgres_version", f"postgres {version} at {database_url}")

        await conn.execute(
            f"CREATE TABLE {table} (id integer PRIMARY KEY, qty bigint NOT NULL, sym text NOT NULL)"
        )
        records = [(i, 3 * i, f"SYM{i % 7}") for i in range(1, n + 1)]
        status = await conn.copy_records_to_table(
            table, records=records, columns=["id", "qty", "sym"]
        )
        assert status == f"COPY {n}"

        row = await conn.fetchrow(f"SELECT count(*) AS n, sum(qty) AS total FROM {table}")
        assert row is not None
        assert row["n"] == n
        assert row["total"] == 3 * n * (n + 1) // 2
    finally:
        await conn.execute(f"DROP TABLE IF EXISTS {table}")
        await conn.close()


def _consume_exactly(consumer: Consumer, want: int, deadline_s: float) -> list[Message]:
    received: list[Message] = []
    deadline = time.monotonic() + deadline_s
    while len(received) < want and time.monotonic() < deadline:
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        err = msg.error()
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                continue
            raise AssertionError(f"consumer error: {err}")
        received.append(msg)
    return received


def test_kafka_idempotent_produce_100_consume_and_commit_offsets_sum_100(
    kafka_bootstrap: str, report: Report
) -> None:
    topic = f"it.smoke.{uuid.uuid4().hex}"
    partitions = 3
    count = 100
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})

    metadata = admin.list_topics(timeout=10)
    broker_ids = sorted(metadata.brokers)
    assert broker_ids, "metadata lists no brokers"
    report(
        "kafka_cluster",
        f"kafka broker ids={broker_ids} cluster_id={metadata.cluster_id} "
        f"controller_id={metadata.controller_id} at {kafka_bootstrap} "
        f"(librdkafka {libversion()[0]})",
    )

    created = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1)], operation_timeout=30
    )
    created[topic].result(timeout=30)
    try:
        producer = Producer(
            {
                "bootstrap.servers": kafka_bootstrap,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
            }
        )
        errors: list[KafkaError] = []
        delivered: list[tuple[str, int, int]] = []  # (value, partition, offset)

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                errors.append(err)
            else:
                delivered.append((msg.value().decode(), msg.partition(), msg.offset()))

        sent = {f"tick-{i:03d}": f"key-{i % 10}" for i in range(count)}
        for value, key in sent.items():
            producer.produce(topic, key=key, value=value, on_delivery=on_delivery)
            producer.poll(0)
        assert producer.flush(30) == 0
        assert errors == []
        assert sorted(v for v, _, _ in delivered) == sorted(sent)

        consumer = Consumer(
            {
                "bootstrap.servers": kafka_bootstrap,
                "group.id": f"it-smoke-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
            }
        )
        try:
            consumer.subscribe([topic])
            received = _consume_exactly(consumer, count, deadline_s=60)
            values = [m.value().decode() for m in received]
            assert len(values) == count, f"got {len(values)} of {count} messages within 60s"
            assert set(values) == set(sent)
            # keyed messages: every key stays on one partition
            partitions_per_key: dict[str, set[int]] = {}
            for m in received:
                partitions_per_key.setdefault(m.key().decode(), set()).add(m.partition())
            assert all(len(ps) == 1 for ps in partitions_per_key.values())

            consumer.commit(asynchronous=False)
            committed = consumer.committed(
                [TopicPartition(topic, p) for p in range(partitions)], timeout=10
            )
        finally:
            consumer.close()

        committed_offsets = {tp.partition: tp.offset for tp in committed if tp.offset >= 0}
        delivered_per_partition = Counter(p for _, p, _ in delivered)
        assert committed_offsets == dict(delivered_per_partition)
        assert sum(committed_offsets.values()) == count
    finally:
        deleted = admin.delete_topics([topic], operation_timeout=30)
        deleted[topic].result(timeout=30)
