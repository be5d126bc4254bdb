"""Redis SIGKILLed mid-stream and restarted: a consumer group still gets every tick, and a
pub/sub subscription resubscribes by itself.

Duplicates are allowed (a chunk whose reply was lost is sent again; an entry read but not acked
is delivered again) and removed by tick id; holes are not allowed. Redis is always restarted,
even when the test fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tickstream.bus.base import Subscription
from tickstream.bus.envelope import event_id
from tickstream.bus.redis_bus import RedisBus
from tickstream.bus.streams import RETRYABLE, StreamGroupReader
from tickstream.model import Tick

from conformance.bus_suite import make_tick

pytestmark = pytest.mark.timeout(90)

SERVICES = Path(__file__).resolve().parents[2] / "scripts" / "services.sh"
TOTAL = 3000


def services(*args: str) -> None:
    subprocess.run([str(SERVICES), *args], check=True, capture_output=True, timeout=60)


async def publish_all(bus: RedisBus, half_done: asyncio.Event, killed: asyncio.Event) -> None:
    """A third of the ticks, then (once Redis is dead) the rest: they meet the outage however
    long killing Redis takes (the publisher used to finish first on a slow machine)."""
    for start in range(0, TOTAL, 50):
        await bus.publish_stream_batch([make_tick(i) for i in range(start, start + 50)])
        if start >= TOTAL // 3 and not half_done.is_set():
            half_done.set()
            await killed.wait()
        await asyncio.sleep(0.01)


async def consume(reader: StreamGroupReader, seen: set[str], deadline: float) -> None:
    await reader.start()
    while len(seen) < TOTAL and time.monotonic() < deadline:
        entries = await reader.read()
        seen.update(event_id(e.value) for e in entries)
        # An ack lost with the connection leaves the entries pending: they come back first.
        with contextlib.suppress(*RETRYABLE):
            await reader.ack(entries)


async def resubscribed(bus: RedisBus, live: Subscription) -> Tick | None:
    """Publish on the live channel until the (reconnected) subscription hears it."""
    end = time.monotonic() + 15
    while time.monotonic() < end:
        with contextlib.suppress(*RETRYABLE):
            await bus.publish(live.topic, make_tick(-1))
        msg = await live.get(timeout=0.5)
        if msg is not None:
            value: Tick = msg.value
            return value
    return None


async def test_redis_killed_mid_stream_group_receives_every_tick(redis_url: str) -> None:
    # Arrange
    prefix = f"test:{uuid.uuid4().hex[:8]}:mds:"
    bus = RedisBus(redis_url, stream_prefix=prefix)
    await bus.start()
    reader = bus.group_reader(["RELIANCE"], "g", "c1", count=200, block_ms=100)
    seen: set[str] = set()
    half_done, killed = asyncio.Event(), asyncio.Event()
    consumer = asyncio.create_task(consume(reader, seen, time.monotonic() + 60))
    live = await bus.subscribe(f"{prefix}live", type_=Tick)
    try:
        # Act
        publisher = asyncio.create_task(publish_all(bus, half_done, killed))
        await half_done.wait()
        await asyncio.to_thread(services, "kill", "redis")
        killed.set()
        await asyncio.sleep(0.5)
        await asyncio.to_thread(services, "start", "redis")
        await publisher
        await bus.streams.flush(timeout=30)
        await asyncio.wait_for(consumer, 45)
        after_restart = await resubscribed(bus, live)
    finally:
        await asyncio.to_thread(services, "start", "redis")
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
        await bus.client.delete(f"{prefix}RELIANCE")
        await bus.close()

    # Assert
    assert seen == {event_id(make_tick(i)) for i in range(TOTAL)}
    assert reader.stats()["reconnects"] >= 1
    assert bus.streams.stats()["published"] >= TOTAL
    assert bus.streams.stats()["retries"] >= 1  # the publisher really hit the outage
    assert after_restart == make_tick(-1)  # pub/sub subscription re-subscribed by itself
