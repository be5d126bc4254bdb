"""The last N ticks of every instrument, for WebSocket backfill on (re)subscribe.

Two implementations of one small protocol:

- :class:`RedisRingBuffer` — a Redis list ``backfill:{exchange}:{token}`` per instrument; a push
  is ``RPUSH`` + ``LTRIM -N -1`` in one pipeline round trip per batch, values are JSON ticks (the
  same encoding as the Redis bus), so any process (``tickstream serve`` replicas) can read them.
- :class:`MemoryRingBuffer` — the embedded twin: one bounded ``deque`` per instrument holding the
  tick objects themselves (no copy, no encoding).

Both keep ticks in arrival order, oldest first, and read back ``==`` what was pushed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import msgspec

from tickstream.model import Tick

__all__ = ["MemoryRingBuffer", "RedisRingBuffer", "RingBuffer"]

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Tick).decode


@runtime_checkable
class RingBuffer(Protocol):
    name: str
    size: int

    async def push(self, ticks: Sequence[Tick]) -> int:
        """Append ticks (each to its instrument's buffer); returns how many were pushed."""
        ...

    async def recent(self, exchange: str, token: int, n: int | None = None) -> list[Tick]:
        """The last ``n`` (default: all kept) ticks of one instrument, oldest first."""
        ...

    async def close(self) -> None: ...


def _check_size(size: int) -> int:
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    return size


class MemoryRingBuffer:
    """In-process ring buffer for the embedded mode.

    Ticks are kept msgpack-encoded (~0.6 KB for a full-depth tick instead of ~2.1 KB as objects)
    and decoded only when a client asks for a backfill, which is rare next to pushes.
    """

    name = "memory"

    def __init__(self, size: int = 1000) -> None:
        self.size = _check_size(size)
        self._buffers: dict[tuple[str, int], deque[bytes]] = {}
        self._encode = msgspec.msgpack.Encoder().encode
        self._decode = msgspec.msgpack.Decoder(Tick).decode

    async def push(self, ticks: Sequence[Tick]) -> int:
        buffers, encode = self._buffers, self._encode
        for t in ticks:
            buf = buffers.get((t.exchange, t.token))
            if buf is None:
                buf = buffers[(t.exchange, t.token)] = deque(maxlen=self.size)
            buf.append(encode(t))
        return len(ticks)

    async def recent(self, exchange: str, token: int, n: int | None = None) -> list[Tick]:
        buf = self._buffers.get((exchange, token))
        if not buf or (n is not None and n <= 0):
            return []
        items = list(buf) if n is None else list(buf)[-n:]
        return [self._decode(b) for b in items]

    async def close(self) -> None:
        self._buffers.clear()


class RedisRingBuffer:
    """Ring buffer in Redis lists; takes a URL (owned client) or a ``redis.asyncio`` client."""

    name = "redis"

    def __init__(self, redis: Any, *, size: int = 1000, prefix: str = "backfill") -> None:
        self.size = _check_size(size)
        self.prefix = prefix
        if isinstance(redis, str):
            import redis.asyncio as aioredis

            self._client: Any = aioredis.Redis.from_url(redis)
            self._owns_client = True
        else:
            self._client = redis
            self._owns_client = False

    def __repr__(self) -> str:
        return f"RedisRingBuffer(size={self.size}, prefix={self.prefix!r})"

    def key(self, exchange: str, token: int) -> str:
        return f"{self.prefix}:{exchange}:{token}"

    async def push(self, ticks: Sequence[Tick]) -> int:
        if not ticks:
            return 0
        groups: dict[str, list[bytes]] = {}
        for t in ticks:
            groups.setdefault(self.key(t.exchange, t.token), []).append(_encode(t))
        async with self._client.pipeline(transaction=False) as pipe:
            for key, values in groups.items():
                pipe.rpush(key, *values[-self.size :])
                pipe.ltrim(key, -self.size, -1)
            await pipe.execute()
        return len(ticks)

    async def recent(self, exchange: str, token: int, n: int | None = None) -> list[Tick]:
        count = self.size if n is None else min(n, self.size)
        if count <= 0:
            return []
        raw = await self._client.lrange(self.key(exchange, token), -count, -1)
        return [_decode(v) for v in raw]

    async def close(self) -> None:
        if self._owns_client:
            await self._client.aclose()
