from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from tickstream.storage.ringbuffer import RedisRingBuffer, RingBuffer

from conformance.store_suite import make_tick


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    c = aioredis.Redis.from_url(redis_url)
    yield c
    await c.aclose()


@pytest.fixture
async def ring(client: aioredis.Redis) -> AsyncIterator[RedisRingBuffer]:
    prefix = f"test:backfill:{uuid.uuid4().hex[:10]}"
    r = RedisRingBuffer(client, size=5, prefix=prefix)
    yield r
    keys = [k async for k in client.scan_iter(match=f"{prefix}:*")]
    if keys:
        await client.delete(*keys)


async def test_redis_ring_keeps_last_n_per_instrument_equal(ring: RedisRingBuffer) -> None:
    a = [make_tick(i) for i in range(8)]
    b = [make_tick(i, token=11536, symbol="TCS") for i in range(3)]
    assert await ring.push(a[:4] + b + a[4:]) == 11
    assert await ring.recent("NSE", 2885) == a[3:]
    assert await ring.recent("NSE", 11536) == b
    assert await ring.recent("NSE", 2885, 2) == a[6:]
    assert isinstance(ring, RingBuffer)


async def test_redis_ring_uses_backfill_list_trimmed_to_size(
    ring: RedisRingBuffer, client: aioredis.Redis
) -> None:
    for i in range(12):
        await ring.push([make_tick(i)])
    key = ring.key("NSE", 2885)
    assert key == f"{ring.prefix}:NSE:2885"
    assert await client.type(key) == b"list"
    assert await client.llen(key) == 5


async def test_redis_ring_default_prefix_matches_design(redis_url: str) -> None:
    ring = RedisRingBuffer(redis_url)
    assert ring.key("NFO", 43210) == "backfill:NFO:43210"
    assert "redis://" not in repr(ring)
    await ring.close()


async def test_redis_ring_unknown_instrument_is_empty(ring: RedisRingBuffer) -> None:
    assert await ring.recent("NSE", 999_999) == []
