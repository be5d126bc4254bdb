"""The consumer library across a Redis SIGKILL and restart: nobody waits silently.

A strategy process reads ticks through :mod:`tickstream.consumer`. Redis is SIGKILLed and
restarted (``scripts/services.sh kill redis`` / ``start redis``) while its consumers are
subscribed. Afterwards a brand-new consumer reads new ticks, and the consumers that lived through
the restart resume by themselves (stream follower from its last id, group member, pub/sub
subscriber) with the reconnect counted — all within a bounded time. Redis is restarted in
``finally`` whatever happens; the kill lasts about a second (other tests share this Redis).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tickstream.bus.redis_bus import RedisBus
from tickstream.bus.streams_common import RETRYABLE
from tickstream.consumer import TICKS_CHANNEL, TickConsumer, create_redis_consumer
from tickstream.model import Tick

from conformance.bus_suite import make_tick

# Like every fault module, under TZ=UTC and TZ=Asia/Kolkata; a hang fails fast instead of at 300 s.
pytestmark = [pytest.mark.usefixtures("tz"), pytest.mark.timeout(90)]


def tick(i: int, symbol: str) -> Tick:
    t = make_tick(i)
    return Tick(**{f: getattr(t, f) for f in t.__struct_fields__} | {"symbol": symbol})


async def until(pred: Callable[[], bool], s: float = 20.0) -> None:
    end = time.monotonic() + s
    while not pred() and time.monotonic() < end:
        await asyncio.sleep(0.05)


class Recorder:
    """A consumer and the (symbol, seq) of every tick its handler saw."""

    def __init__(self, consumer: TickConsumer) -> None:
        self.consumer = consumer
        self.seen: list[tuple[str, int]] = []
        consumer.add_message_handler(lambda t: self.seen.append((t.symbol, t.seq)))


async def recorder(publisher: RedisBus, url: str, symbols: list[str], **kw: str) -> Recorder:
    consumer = create_redis_consumer(url, stream_prefix=publisher.stream_prefix, **kw)
    await consumer.connect()
    rec = Recorder(consumer)
    if symbols:
        await consumer.subscribe_to_multiple_symbols(symbols)
    else:
        await consumer.subscribe_to_all_symbols()
    return rec


async def pubsub_resumed(publisher: RedisBus, rec: Recorder) -> list[int]:
    """Publish on the live channel (seq 100, 101, ...) until the subscriber hears one."""
    sent: list[int] = []
    end = time.monotonic() + 20
    while not rec.seen and time.monotonic() < end:
        seq = 100 + len(sent)
        try:
            await publisher.publish(TICKS_CHANNEL, tick(seq, "ITC"))
            sent.append(seq)
        except RETRYABLE:  # the publisher's pooled connection may be a pre-restart one
            pass
        await asyncio.sleep(0.1)
    return sent


async def test_fault_redis_killed_consumers_resume_and_new_consumer_reads(
    publisher: RedisBus, redis_url: str, services_sh: Callable[..., Awaitable[None]]
) -> None:
    # Arrange: a follower, a group member and a pub/sub subscriber, each saw one tick before
    follower = await recorder(publisher, redis_url, ["INFY", "TCS"])
    member = await recorder(publisher, redis_url, ["INFY", "TCS"], group="g", consumer_name="c1")
    listener = await recorder(publisher, redis_url, [])
    old = (follower, member, listener)
    await publisher.publish_stream_batch([tick(1, "INFY")])
    await until(lambda: len(follower.seen) == 1 and len(member.seen) == 1)
    fresh: Recorder | None = None
    stats: list[dict[str, Any]] = []
    try:
        # Act: SIGKILL Redis while everybody is blocked reading, restart it
        try:
            await services_sh("kill", "redis")
            await asyncio.sleep(1.0)
        finally:
            await services_sh("start", "redis")
        fresh = await recorder(publisher, redis_url, ["INFY", "TCS"])
        await publisher.publish_stream_batch([tick(2, "INFY"), tick(3, "SBIN"), tick(4, "TCS")])
        await until(lambda: len(fresh.seen) >= 2 and len(follower.seen) >= 3)
        await until(lambda: len(member.seen) >= 3)
        sent = await pubsub_resumed(publisher, listener)
        await asyncio.sleep(0.3)  # let a straggler arrive, so duplicates would show
        stats = [r.consumer.stats() for r in old]
    finally:
        for rec in (*old, fresh):
            if rec is not None:
                await rec.consumer.disconnect()

    # Assert: (a) the new consumer reads new ticks; (b) the old ones resumed where they were —
    # the follower from its last id (no hole, no repeat), the group member at least once, the
    # pub/sub subscriber re-subscribed and hears everything published from then on
    assert fresh is not None
    assert sorted(fresh.seen) == [("INFY", 2), ("TCS", 4)]
    assert follower.seen == [("INFY", 1), ("INFY", 2), ("TCS", 4)]
    assert sorted(set(member.seen)) == [("INFY", 1), ("INFY", 2), ("TCS", 4)]
    heard = listener.seen
    assert heard != [] and heard == [("ITC", s) for s in sent[-len(heard) :]]
    # every old consumer replaced its connection, counted it, and none of them gave up
    assert [(s["reconnects"] >= 1, s["failures"]) for s in stats] == [(True, [])] * 3
