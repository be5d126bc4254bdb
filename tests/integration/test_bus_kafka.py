"""KafkaBus against a real Kafka broker: the shared conformance suite plus the envelope."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
import pytest
from confluent_kafka import Consumer, TopicPartition

from tickstream.bus.envelope import decode_envelope
from tickstream.bus.kafka_bus import KafkaBus, kafka_topic
from tickstream.model import Tick

from conformance.bus_suite import BusConformance, drain, make_tick, topic_name


@pytest.fixture
async def bus(kafka_bootstrap: str) -> AsyncIterator[KafkaBus]:
    b = KafkaBus(kafka_bootstrap, source="test")
    await b.start()
    yield b
    await b.close()


class TestKafkaBusConformance(BusConformance):
    pass


async def test_kafka_bus_message_is_envelope_with_deterministic_id(
    bus: KafkaBus, kafka_bootstrap: str
) -> None:
    topic = topic_name()
    sub = await bus.subscribe(topic)  # assigned at the high watermark: sees only what follows
    tick = make_tick(3)

    await bus.publish(topic, tick, key=tick.key)
    await bus.flush(10)

    assert msgspec.json.decode((await drain(sub, 1))[0], type=Tick) == tick
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": topic})
    consumer.assign([TopicPartition(kafka_topic(topic), 0, 0)])
    msg = consumer.poll(10.0)
    consumer.close()
    assert msg is not None
    assert msg.key() == b"NSE:2885"
    header, value = decode_envelope(msg.value() or b"", Tick)
    assert (header.type, header.source) == ("tick", "test")
    assert header.id == f"NSE:2885:{tick.ts_exchange}:3:1003"
    assert value == tick
    await sub.close()
