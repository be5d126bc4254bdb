"""A local bus for the process, with a best-effort copy to a remote bus for outside consumers.

``tickstream run`` with ``REDIS_URL`` must not make its own durability depend on Redis: Redis
pub/sub keeps nothing for a subscriber that is away, so sinks reading it lose every tick published
while Redis restarts. Here the sinks, the backfill ring and the API subscribe to the *local*
(in-memory) bus, which never fails; every published batch is also queued for the *remote* bus
(pub/sub, and the per-symbol streams for ticks when the remote has them) and sent by one task.
While the remote is down that task retries with capped backoff; the queue is bounded, and when it
is full the oldest batches are dropped and counted (``remote_dropped`` in stats) — the remote
copy is a live fan-out, the durable path is local.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Sequence
from typing import Any

from tickstream.bus.base import Bus, Overflow, Subscription

__all__ = ["TeeBus"]

log = logging.getLogger(__name__)

_Batch = tuple[str, list[Any], list[str | None] | None]


class TeeBus:
    """Subscriptions and publishing on ``local``; a bounded, retried copy to ``remote``."""

    def __init__(
        self,
        local: Bus,
        remote: Bus,
        *,
        queue_max_items: int = 200_000,
        stream_topic: str | None = "market:ticks",
        backoff_initial_secs: float = 0.1,
        backoff_max_secs: float = 5.0,
        close_timeout_secs: float = 3.0,
    ) -> None:
        self.name = f"{local.name}+{remote.name}"
        self.local, self.remote = local, remote
        self._queue: deque[_Batch] = deque()
        self._queued_items = 0
        self._max = queue_max_items
        self._stream_topic = stream_topic
        self._backoff = (backoff_initial_secs, backoff_max_secs)
        self._close_timeout = close_timeout_secs
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._task: asyncio.Task[None] | None = None
        self.counts = {"remote_sent": 0, "remote_dropped": 0, "remote_errors": 0}
        self.last_error: str | None = None

    async def start(self) -> None:
        await self.local.start()
        try:
            await self.remote.start()
        except Exception as exc:  # the remote may be down at start: the sender retries
            self._note_error(exc)
        self._task = asyncio.create_task(self._send_loop(), name=f"tee:{self.remote.name}")

    async def publish(self, topic: str, value: Any, key: str | None = None) -> None:
        await self.local.publish(topic, value, key)
        self._enqueue((topic, [value], [key]))

    async def publish_many(
        self, topic: str, values: Sequence[Any], keys: Sequence[str | None] | None = None
    ) -> None:
        await self.local.publish_many(topic, values, keys)
        if values:
            self._enqueue((topic, list(values), list(keys) if keys is not None else None))

    async def subscribe(
        self,
        topic: str,
        *,
        type_: type[Any] | None = None,
        maxsize: int = 10_000,
        overflow: Overflow = Overflow.DROP_OLDEST,
    ) -> Subscription:
        return await self.local.subscribe(topic, type_=type_, maxsize=maxsize, overflow=overflow)

    def _enqueue(self, batch: _Batch) -> None:
        self._queue.append(batch)
        self._drained.clear()
        self._queued_items += len(batch[1])
        while self._queued_items > self._max and len(self._queue) > 1:
            dropped = self._queue.popleft()
            self._queued_items -= len(dropped[1])
            self.counts["remote_dropped"] += len(dropped[1])
        self._wake.set()

    async def _send_loop(self) -> None:
        delay = self._backoff[0]
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = self._queue[0]
            try:
                await self._send(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._note_error(exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._backoff[1])
                continue
            delay = self._backoff[0]
            if self._queue and self._queue[0] is batch:
                self._queue.popleft()
                self._queued_items -= len(batch[1])
            self.counts["remote_sent"] += len(batch[1])
            if not self._queue:
                self._drained.set()

    async def _send(self, batch: _Batch) -> None:
        topic, values, keys = batch
        await self.remote.publish_many(topic, values, keys)
        stream = getattr(self.remote, "publish_stream_batch", None)
        if topic == self._stream_topic and stream is not None:
            await stream(values)

    def _note_error(self, exc: Exception) -> None:
        self.counts["remote_errors"] += 1
        text = f"{type(exc).__name__}: {exc}"
        if text != self.last_error:
            log.warning(
                "remote bus %s unavailable (%s); local path unaffected", self.remote.name, text
            )
        self.last_error = text

    def stats(self) -> dict[str, Any]:
        remote: dict[str, Any]
        try:
            remote = self.remote.stats()
        except Exception as exc:  # stats must never fail /stats
            remote = {"error": str(exc)}
        return {
            "backend": self.name,
            "local": self.local.stats(),
            "remote": remote,
            "remote_queue": self._queued_items,
            **self.counts,
            "remote_last_error": self.last_error,
        }

    async def close(self) -> None:
        """Give the remote a bounded time to receive what is queued, then close both."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._close_timeout):
                await self._drained.wait()
        if self._queue:
            log.warning("remote bus: %d queued items not sent at close", self._queued_items)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await self.remote.close()
        await self.local.close()
