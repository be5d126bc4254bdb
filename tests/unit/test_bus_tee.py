"""TeeBus: the local path never depends on the remote bus (a Redis that refuses connections)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tickstream.bus.memory import MemoryBus
from tickstream.bus.redis_bus import RedisBus
from tickstream.bus.tee import TeeBus

from conformance.bus_suite import BusConformance, make_tick, topic_name

DOWN = "redis://127.0.0.1:1/0"  # nothing listens on port 1: every call is refused


@pytest.fixture
async def bus() -> AsyncIterator[TeeBus]:
    b = TeeBus(MemoryBus(), MemoryBus())
    await b.start()
    yield b
    await b.close()


class TestTeeBusConformance(BusConformance):
    pass


async def test_tee_remote_down_local_subscribers_get_everything() -> None:
    bus = TeeBus(MemoryBus(), RedisBus(DOWN), backoff_initial_secs=0.01, close_timeout_secs=0.1)
    await bus.start()
    topic = topic_name()
    sub = await bus.subscribe(topic, maxsize=100)
    ticks = [make_tick(i) for i in range(20)]
    await bus.publish_many(topic, ticks, [t.key for t in ticks])
    got = [m.value for m in await sub.get_batch(100, timeout=1)]
    assert got == ticks
    stats = bus.stats()
    assert stats["remote_queue"] == 20 and stats["remote_sent"] == 0
    await bus.close()
    assert bus.counts["remote_errors"] >= 1
    assert (
        "ConnectionError" in (bus.last_error or "") or "refused" in (bus.last_error or "").lower()
    )


async def test_tee_remote_queue_bounded_drops_oldest_counted() -> None:
    bus = TeeBus(
        MemoryBus(),
        RedisBus(DOWN),
        queue_max_items=10,
        backoff_initial_secs=0.01,
        close_timeout_secs=0.1,
    )
    await bus.start()
    topic = topic_name()
    for i in range(5):
        await bus.publish_many(topic, [make_tick(i * 4 + j) for j in range(4)])
    stats = bus.stats()
    assert stats["remote_queue"] <= 10
    assert stats["remote_dropped"] == 20 - stats["remote_queue"]
    await bus.close()


async def test_tee_remote_receives_copy_when_up() -> None:
    remote = MemoryBus()
    bus = TeeBus(MemoryBus(), remote)
    await bus.start()
    topic = topic_name()
    remote_sub = await remote.subscribe(topic, maxsize=100)
    ticks = [make_tick(i) for i in range(7)]
    await bus.publish_many(topic, ticks)
    got: list[object] = []
    while len(got) < 7:
        batch = await remote_sub.get_batch(100, timeout=2)
        assert batch, "remote copy did not arrive"
        got.extend(m.value for m in batch)
    assert got == ticks
    assert bus.counts["remote_sent"] == 7
    await bus.close()
