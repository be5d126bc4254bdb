"""Bus -> store sinks: bounded batches, retry from a bounded spool, flush on shutdown.

A sink subscribes with ``Overflow.BLOCK`` (it never drops), moves messages into its *spool* (a
bounded deque) and writes the spool head in batches of at most ``batch_size``, when a batch is
full or the oldest pending item has waited ``flush_interval_s``.

When a write fails (the database restarting, say) the batch stays at the head of the spool and is
retried with capped exponential backoff and jitter. Meanwhile the sink keeps reading the bus into
the spool until it holds ``spool_max`` items; then it stops reading, the subscription fills, and
``BLOCK`` makes the publishers wait: back-pressure instead of loss or unbounded memory. Stores'
writes are idempotent, so a batch that was committed but whose acknowledgement was lost is simply
written again and adds nothing: after recovery every item is stored exactly once.

Any other failure means the store refuses something in the batch (a value out of range, say):
the sink bisects the batch to find the item, writes everything else, and after ``row_attempts``
refusals moves that one item to a bounded dead-letter list (counted, logged, readable through
``dead_letter()``), so one bad item never blocks or discards the rest.

``stop()`` drains what the subscription already holds, flushes the whole spool (retrying until
``stop_timeout_s``) and closes the subscription. Stop the producers first: a closed subscription
receives nothing more. What could not be written by the deadline is logged with its count.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from itertools import islice
from typing import Any, Generic, TypeVar

from tickstream.bus.base import Bus, Overflow, Subscription
from tickstream.model import Candle, Tick
from tickstream.storage.base import StoreUnavailableError, TickStore

__all__ = ["CandleSink", "StoreSink", "TickSink"]

log = logging.getLogger(__name__)
T = TypeVar("T")
_POLL_S = 0.1
# Failures that say nothing about the data: retry the same batch (after backoff).
_TRANSIENT = (StoreUnavailableError, ConnectionError, OSError, TimeoutError)
Writer = Callable[[Sequence[T]], Awaitable[int]]


class StoreSink(Generic[T]):
    """Moves one topic's values into ``write`` (e.g. ``store.write_ticks``, ``ring.push``)."""

    def __init__(
        self,
        bus: Bus,
        topic: str,
        write: Writer[T],
        *,
        type_: type[T],
        name: str | None = None,
        batch_size: int = 5000,
        flush_interval_s: float = 0.5,
        spool_max: int = 100_000,
        backoff_initial_s: float = 0.05,
        backoff_max_s: float = 5.0,
        stop_timeout_s: float = 30.0,
        row_attempts: int = 3,
        dead_letter_max: int = 10_000,
    ) -> None:
        if batch_size < 1 or spool_max < batch_size:
            raise ValueError("need 1 <= batch_size <= spool_max")
        self.bus, self.topic, self._write, self.type_ = bus, topic, write, type_
        self.name = name or f"sink:{topic}"
        self.batch_size, self.flush_interval_s, self.spool_max = (
            batch_size,
            flush_interval_s,
            spool_max,
        )
        self.backoff_initial_s, self.backoff_max_s = backoff_initial_s, backoff_max_s
        self.stop_timeout_s = stop_timeout_s
        self.row_attempts = row_attempts
        self._limit = batch_size
        self._row_failures = 0
        self._dead: deque[T] = deque(maxlen=dead_letter_max)
        self._spool: deque[T] = deque()
        self._pending_since = 0.0
        self._retry_at = 0.0
        self._failures = 0
        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._counts = dict.fromkeys(
            ("received", "written", "inserted", "batches", "retries", "dead_lettered"), 0
        )
        self._last_error: str | None = None

    async def start(self) -> None:
        if self._task is not None:
            return
        self._sub = await self.bus.subscribe(
            self.topic, type_=self.type_, maxsize=self.batch_size, overflow=Overflow.BLOCK
        )
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        """Drain, flush and close (see the module docstring)."""
        self._stopping.set()
        if self._task is not None:
            task, self._task = self._task, None
            await task

    def stats(self) -> dict[str, Any]:
        """received (from the bus), written (accepted by the store), inserted (new rows, after
        idempotent dedup), batches, retries, dead_lettered, spool depth, last_error."""
        return {
            "name": self.name,
            "topic": self.topic,
            **self._counts,
            "spool": len(self._spool),
            "spool_max": self.spool_max,
            "last_error": self._last_error,
        }

    # ---- loop -----------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                await self._fill(self._wait_s())
                if self._flush_due():
                    await self._flush_once()
            await self._drain_and_flush()
        finally:
            if self._sub is not None:
                await self._sub.close()

    def _wait_s(self) -> float:
        now = time.monotonic()
        if not self._spool:
            return self.flush_interval_s
        due = max(self._pending_since + self.flush_interval_s, self._retry_at)
        return max(0.0, min(due - now, self.flush_interval_s))

    def _flush_due(self) -> bool:
        if not self._spool:
            return False
        now = time.monotonic()
        if now < self._retry_at:
            return False
        full = len(self._spool) >= self.batch_size
        return full or now >= self._pending_since + self.flush_interval_s

    async def _fill(self, timeout: float) -> None:
        room = self.spool_max - len(self._spool)
        if room <= 0:  # back-pressure: leave messages in the (blocking) subscription
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), min(max(timeout, 0.01), _POLL_S))
            return
        assert self._sub is not None
        # short waits so stop() is noticed promptly without cancelling a read mid-way
        msgs = await self._sub.get_batch(min(room, self.batch_size), timeout=min(timeout, _POLL_S))
        self._take(m.value for m in msgs)

    def _take(self, values: Any) -> None:
        before = len(self._spool)
        self._spool.extend(values)
        added = len(self._spool) - before
        if added and before == 0:
            self._pending_since = time.monotonic()
        self._counts["received"] += added

    async def _flush_once(self) -> bool:
        batch = list(islice(self._spool, self._limit))
        try:
            inserted = await self._write(batch)
        except Exception as exc:  # transient: retry; anything else: isolate the bad item
            self._failed(exc, len(batch))
            if not isinstance(exc, _TRANSIENT):
                self._isolate(exc, len(batch))
            return False
        for _ in range(len(batch)):
            self._spool.popleft()
        self._failures, self._row_failures, self._retry_at = 0, 0, 0.0
        self._limit = min(self.batch_size, self._limit * 2)
        self._pending_since = time.monotonic()
        self._counts["batches"] += 1
        self._counts["written"] += len(batch)
        self._counts["inserted"] += inserted
        return True

    def _failed(self, exc: Exception, size: int) -> None:
        self._failures += 1
        self._counts["retries"] += 1
        self._last_error = f"{type(exc).__name__}: {exc}"
        delay = min(self.backoff_max_s, self.backoff_initial_s * 2 ** (self._failures - 1))
        self._retry_at = time.monotonic() + delay * (0.5 + random.random() / 2)  # noqa: S311 - jitter
        log.warning(
            "%s: write of %d failed (%s), retry %d",
            self.name,
            size,
            type(exc).__name__,
            self._failures,
        )

    def _isolate(self, exc: Exception, size: int) -> None:
        """Bisect a rejected batch down to the item the store refuses; after
        ``row_attempts`` refusals of that one item, move it to the dead-letter list."""
        if size > 1:
            self._limit = max(1, size // 2)
            self._retry_at = 0.0
            return
        self._row_failures += 1
        if self._row_failures < self.row_attempts:
            return
        self._dead.append(self._spool.popleft())
        self._counts["dead_lettered"] += 1
        self._row_failures, self._failures, self._retry_at = 0, 0, 0.0
        log.error(
            "%s: store rejected one item %d times (%s); dead-lettered",
            self.name,
            self.row_attempts,
            type(exc).__name__,
        )

    def dead_letter(self) -> list[T]:
        """Items the store refused (bounded, newest kept); never silently dropped."""
        return list(self._dead)

    async def _drain_and_flush(self) -> None:
        assert self._sub is not None
        while msgs := await self._sub.get_batch(self.batch_size, timeout=0):
            self._take(m.value for m in msgs)
        deadline = time.monotonic() + self.stop_timeout_s
        while self._spool and time.monotonic() < deadline:
            wait = self._retry_at - time.monotonic()
            if wait > 0:
                await asyncio.sleep(min(wait, deadline - time.monotonic()))
                continue
            await self._flush_once()
        if self._spool:
            log.error("%s stopped with %d items unwritten", self.name, len(self._spool))


class TickSink(StoreSink[Tick]):
    """Ticks from ``topic`` into ``store.write_ticks``."""

    def __init__(self, bus: Bus, store: TickStore, topic: str, **kwargs: Any) -> None:
        kwargs.setdefault("name", f"ticks->{store.name}")
        super().__init__(bus, topic, store.write_ticks, type_=Tick, **kwargs)


class CandleSink(StoreSink[Candle]):
    """Candles from ``topic`` into ``store.write_candles``."""

    def __init__(self, bus: Bus, store: TickStore, topic: str, **kwargs: Any) -> None:
        kwargs.setdefault("name", f"candles->{store.name}")
        kwargs.setdefault("batch_size", 1000)
        super().__init__(bus, topic, store.write_candles, type_=Candle, **kwargs)
