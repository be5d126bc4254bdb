from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tickstream.bus.base import Overflow
from tickstream.bus.memory import MemoryBus

from conformance.bus_suite import BusConformance, make_tick, topic_name


@pytest.fixture
async def bus() -> AsyncIterator[MemoryBus]:
    b = MemoryBus()
    await b.start()
    yield b
    await b.close()


class TestMemoryBusConformance(BusConformance):
    pass


async def test_memory_bus_block_overflow_makes_publisher_wait_until_read(bus: MemoryBus) -> None:
    topic = topic_name()
    sub = await bus.subscribe(topic, maxsize=2, overflow=Overflow.BLOCK)
    await bus.publish(topic, make_tick(0))
    await bus.publish(topic, make_tick(1))
    third = asyncio.create_task(bus.publish(topic, make_tick(2)))
    await asyncio.sleep(0.01)
    assert not third.done()
    first = await sub.get()
    assert first is not None and first.value == make_tick(0)
    await asyncio.wait_for(third, 1)
    assert [m.value for m in await sub.get_batch(10)] == [make_tick(1), make_tick(2)]
    assert sub.dropped == 0


async def test_memory_bus_drop_newest_overflow_keeps_oldest(bus: MemoryBus) -> None:
    topic = topic_name()
    sub = await bus.subscribe(topic, maxsize=3, overflow=Overflow.DROP_NEWEST)
    await bus.publish_many(topic, [make_tick(i) for i in range(10)])
    assert sub.dropped == 7
    assert [m.value.seq for m in await sub.get_batch(10)] == [0, 1, 2]


async def test_memory_bus_hands_over_the_same_object_without_copy(bus: MemoryBus) -> None:
    topic = topic_name()
    sub = await bus.subscribe(topic)
    tick = make_tick(5)
    await bus.publish(topic, tick)
    msg = await sub.get()
    assert msg is not None and msg.value is tick


async def test_memory_bus_stats_counts_published_and_depth(bus: MemoryBus) -> None:
    topic = topic_name()
    await bus.subscribe(topic, maxsize=4)
    await bus.publish_many(topic, [make_tick(i) for i in range(6)])
    stats = bus.stats()
    assert stats["published"][topic] == 6
    assert stats["subscriptions"][topic] == [{"depth": 4, "dropped": 2, "delivered": 0}]


async def test_memory_bus_publish_many_with_mismatched_keys_raises(bus: MemoryBus) -> None:
    with pytest.raises(ValueError, match="2 keys for 3 values"):
        await bus.publish_many(topic_name(), [1, 2, 3], ["a", "b"])
