"""The context of ``tickstream serve`` (scaled mode): Redis for fan-out and backfill, PostgreSQL
(or any ``DATABASE_URL`` store) for history and instruments. Stateless: run N replicas."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from tickstream.bus.redis_bus import RedisBus
from tickstream.config import Settings
from tickstream.serve.context import ServeContext
from tickstream.storage import open_store
from tickstream.storage.ringbuffer import RedisRingBuffer

__all__ = ["build_scaled_context"]

Closer = tuple[str, Callable[[], Awaitable[None]]]


async def build_scaled_context(settings: Settings) -> tuple[ServeContext, list[Closer]]:
    """Open the bus, store and ring buffer; returns the context and (name, close) pairs in
    opening order (close them in reverse)."""
    redis_url = settings.secret("redis_url")
    if redis_url is None or settings.database_url is None:
        raise ValueError("tickstream serve needs REDIS_URL and DATABASE_URL")
    closers: list[Closer] = []
    bus = RedisBus(redis_url)
    await bus.start()
    closers.append(("bus:redis", bus.close))
    try:
        store = await open_store(settings)
        closers.append((f"store:{store.name}", store.close))
        ring = RedisRingBuffer(redis_url, size=settings.ring_buffer_ticks)
        closers.append(("ring:redis", ring.close))
        universe = await store.search_instruments("", limit=100_000)
    except BaseException:
        for _, close in reversed(closers):
            await close()
        raise
    ctx = ServeContext(
        settings=settings, bus=bus, store=store, ring=ring, state=None, instruments=universe
    )
    return ctx, closers
