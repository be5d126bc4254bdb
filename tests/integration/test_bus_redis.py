"""RedisBus against a real Redis: the shared conformance suite plus Redis-specific behaviour."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import msgspec
import pytest
import redis

from tickstream.bus.redis_bus import RedisBus
from tickstream.model import Tick
from tickstream.pipeline.dedup_redis import RedisDedupStore

from conformance.bus_suite import BusConformance, drain, make_tick, topic_name


@pytest.fixture
async def bus(redis_url: str) -> AsyncIterator[RedisBus]:
    b = RedisBus(redis_url, stream_prefix=f"test:{uuid.uuid4().hex[:8]}:mds:")
    await b.start()
    yield b
    await b.close()


class TestRedisBusConformance(BusConformance):
    pass


async def test_redis_bus_published_payload_is_plain_tick_json(bus: RedisBus) -> None:
    topic = topic_name()
    raw = await bus.subscribe(topic)  # no type: the bytes as published
    tick = make_tick(7)

    await bus.publish(topic, tick)

    got = await drain(raw, 1)
    assert got[0].startswith(b'{"exchange":"NSE","token":2885,"symbol":"RELIANCE"')
    assert msgspec.json.decode(got[0], type=Tick) == tick
    await raw.close()


async def test_redis_bus_stream_batch_lands_in_per_symbol_streams(bus: RedisBus) -> None:
    ticks = [make_tick(i) for i in range(5)]

    await bus.publish_stream_batch(ticks)

    key = f"{bus.stream_prefix}RELIANCE"
    entries = await bus.client.xrange(key)

    assert [msgspec.json.decode(f[b"data"], type=Tick) for _, f in entries] == ticks
    assert bus.stats()["streams"]["published"] == 5
    await bus.client.delete(key)


async def test_redis_bus_stats_shows_group_lag(bus: RedisBus) -> None:
    await bus.publish_stream_batch([make_tick(i) for i in range(10)])
    reader = bus.group_reader(["RELIANCE"], "g1", "c1", count=4)
    await reader.start()

    first = await reader.read()
    await reader.refresh_info()

    stats = bus.stats()["groups"][0]
    assert len(first) == 4
    assert stats["lag"] == 6
    assert stats["pending"] == 4
    await bus.client.delete(f"{bus.stream_prefix}RELIANCE")


def test_redis_dedup_store_first_sight_new_then_seen_across_instances(redis_url: str) -> None:
    prefix = f"test:{uuid.uuid4().hex[:8]}:dedup:"
    a = RedisDedupStore.from_url(redis_url, prefix=prefix, window_s=30)
    b = RedisDedupStore.from_url(redis_url, prefix=prefix, window_s=30)
    key = ("kite", "NSE", 2885, 1_763_700_000_000_000_000, 2456.75, None)

    first = a.seen(key, 0)
    second = b.seen(key, 0)
    many = b.seen_many([(key, 0), (("kite", "NSE", 1), 0), (("kite", "NSE", 1), 0)])

    assert (first, second) == (False, True)
    assert many == [True, False, True]
    client = redis.Redis.from_url(redis_url)
    ttl = client.ttl(a.redis_key(key))
    client.delete(a.redis_key(key), a.redis_key(("kite", "NSE", 1)))
    client.close()
    a.close()
    b.close()
    assert 0 < ttl <= 30
