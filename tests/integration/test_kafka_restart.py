"""Producer keeps publishing while the Kafka broker is stopped and restarted: nothing is lost.

The idempotent producer (acks=all) holds what it could not deliver and resends it when the broker
is back; ``flush`` returns only when everything is acknowledged. The broker is always restarted,
even when the test fails.
"""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from tickstream.bus.envelope import decode_envelope, event_id
from tickstream.bus.kafka_bus import KafkaProducer, ensure_topics
from tickstream.model import Tick

from conformance.bus_suite import make_tick

pytestmark = pytest.mark.timeout(150)

SERVICES = Path(__file__).resolve().parents[2] / "scripts" / "services.sh"
PER_PHASE = 400


def services(*args: str) -> None:
    subprocess.run([str(SERVICES), *args], check=True, capture_output=True, timeout=120)


def read_ids(bootstrap: str, topic: str, partitions: int) -> set[str]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{uuid.uuid4()}"})
    ids: set[str] = set()
    try:
        for p in range(partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
            if high == low:
                continue
            consumer.assign([TopicPartition(topic, p, low)])
            while True:
                m = consumer.poll(30)
                assert m is not None and m.error() is None
                header, value = decode_envelope(m.value() or b"", Tick)
                assert header.id == event_id(value)
                ids.add(header.id)
                if m.offset() == high - 1:
                    break
    finally:
        consumer.close()
    return ids


async def test_kafka_broker_stopped_and_restarted_producer_loses_nothing(
    kafka_bootstrap: str,
) -> None:
    # Arrange
    topic = f"test_restart_{uuid.uuid4().hex[:8]}"
    await ensure_topics(AdminClient({"bootstrap.servers": kafka_bootstrap}), {topic: 3})
    producer = KafkaProducer(kafka_bootstrap, source="test")
    ticks = [make_tick(i, token=100 + i % 7) for i in range(3 * PER_PHASE)]
    producer.produce_many(topic, ticks[:PER_PHASE])
    await producer.flush(30)

    # Act: publish while the broker is down, then after it is back
    try:
        await asyncio.to_thread(services, "stop", "kafka")
        producer.produce_many(topic, ticks[PER_PHASE : 2 * PER_PHASE])
        await asyncio.sleep(1.0)
        assert len(producer) > 0  # nothing could be acknowledged while the broker was down
    finally:
        await asyncio.to_thread(services, "start", "kafka")
    producer.produce_many(topic, ticks[2 * PER_PHASE :])
    await producer.flush(90)

    # Assert
    ids = await asyncio.to_thread(read_ids, kafka_bootstrap, topic, 3)
    assert ids == {event_id(t) for t in ticks}
    assert producer.delivered >= len(ticks)
