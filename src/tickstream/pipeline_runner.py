"""The asyncio shell around the pure :class:`PipelineEngine`: sources in, bus topics out.

Sources (feed clients, replay) put batches of ticks and gap events on one bounded queue; a single
task runs them through the engine in arrival order and publishes the outputs:

* accepted ticks → ``market:ticks``; closed and revised candles → ``market:candles``;
  enriched candles → ``market:candles:enriched``; quarantined ticks → ``market:quarantine``
  (so a sink keeps them: quarantine, never drop).

A timer closes candles of quiet instruments (exchange time estimated from the monotonic clock).
``stop`` stops intake, drains the queue, flushes every open candle and publishes it, so nothing
accepted is lost on shutdown. Publishing awaits the bus: sinks that subscribe with ``BLOCK`` apply
back-pressure here, never drop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Final

import msgspec

from tickstream.bus.base import Bus
from tickstream.model import Tick
from tickstream.pipeline.engine import (
    TOPIC_CANDLES,
    TOPIC_ENRICHED,
    TOPIC_TICKS,
    EngineOutput,
    PipelineEngine,
)
from tickstream.pipeline.sequence import GapEvent

__all__ = ["TOPIC_QUARANTINE", "FeedEvent", "PipelineRunner", "Quarantined"]

log = logging.getLogger(__name__)

TOPIC_QUARANTINE: Final = "market:quarantine"
FeedEvent = Sequence[Tick] | GapEvent
_STOP: Final = object()


class Quarantined(msgspec.Struct, frozen=True):
    """A tick that failed validation, with the reason: kept and stored, never fixed or dropped."""

    reason: str
    tick: Tick


class PipelineRunner:
    """Runs one engine; any number of sources feed it through a bounded queue."""

    name = "pipeline"

    def __init__(
        self,
        engine: PipelineEngine,
        bus: Bus,
        *,
        queue_max_batches: int = 10_000,
        timer_interval_secs: float = 0.25,
        clock_ns: Callable[[], int] = time.monotonic_ns,
        exchange_clock_offset_ns: Callable[[], int] | None = None,
    ) -> None:
        self.engine = engine
        self.bus = bus
        self._queue: asyncio.Queue[object] = asyncio.Queue(maxsize=queue_max_batches)
        self._timer_interval = timer_interval_secs
        self._clock_ns = clock_ns
        self._offset_ns = exchange_clock_offset_ns
        self._tasks: list[asyncio.Task[None]] = []
        self._sources: list[asyncio.Task[None]] = []
        self._accepting = False
        self.batches = 0
        self.published: dict[str, int] = {}
        self.last_tick_ns: int | None = None  # wall clock (epoch ns) of the last accepted tick
        self.errors = 0

    def set_exchange_clock_offset(self, offset_ns: Callable[[], int] | None) -> None:
        """A callable giving the feed's exchange-clock offset from wall time, read per batch."""
        self._offset_ns = offset_ns

    # intake -------------------------------------------------------------------------------
    async def put(self, event: FeedEvent) -> None:
        """Queue a batch or a gap event (waits while the queue is full: back-pressure)."""
        if not self._accepting:
            raise RuntimeError("pipeline is not accepting input (stopped)")
        await self._queue.put(event)

    def add_source(self, source: AsyncIterator[FeedEvent], name: str = "source") -> None:
        """Pump an async iterator of batches/gap events into the queue until it ends."""
        self._sources.append(asyncio.create_task(self._pump(source), name=f"pump:{name}"))

    async def _pump(self, source: AsyncIterator[FeedEvent]) -> None:
        async for event in source:
            if not self._accepting:
                break
            await self._queue.put(event)

    # lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        self._accepting = True
        self._tasks = [
            asyncio.create_task(self._consume(), name="pipeline:consume"),
            asyncio.create_task(self._timer(), name="pipeline:timer"),
        ]

    async def stop(self) -> None:
        """Stop intake, drain what was queued, flush open candles, publish everything."""
        self._accepting = False
        for task in self._sources:
            task.cancel()
        for task in self._sources:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._queue.put(_STOP)
        consume, timer = self._tasks
        timer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await timer
        await consume
        await self._publish(self.engine.flush())

    async def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait until every queued event was processed (tests, replay at max speed)."""
        async with asyncio.timeout(timeout):
            await self._queue.join()

    # work ---------------------------------------------------------------------------------
    async def _consume(self) -> None:
        queue = self._queue
        while True:
            event = await queue.get()
            try:
                if event is _STOP:
                    return
                if isinstance(event, GapEvent):
                    out = self.engine.on_gap(event)
                else:
                    assert isinstance(event, Sequence)
                    if self._offset_ns is not None:
                        self.engine.set_clock_offset(self._offset_ns())
                    out = self.engine.process(event, self._clock_ns())
                    self.batches += 1
                    if out.ticks:
                        self.last_tick_ns = time.time_ns()
                await self._publish(out)
            except Exception:
                self.errors += 1
                log.exception("pipeline failed on an event; continuing")
            finally:
                queue.task_done()

    async def _timer(self) -> None:
        while True:
            await asyncio.sleep(self._timer_interval)
            try:
                await self._publish(self.engine.on_timer(self._clock_ns()))
            except Exception:
                self.errors += 1
                log.exception("pipeline timer failed; continuing")

    async def _publish(self, out: EngineOutput) -> None:
        bus = self.bus
        if out.ticks:
            await bus.publish_many(TOPIC_TICKS, out.ticks, [t.key for t in out.ticks])
            self._count(TOPIC_TICKS, len(out.ticks))
        if out.quarantined:
            bad = [Quarantined(reason, tick) for tick, reason in out.quarantined]
            await bus.publish_many(TOPIC_QUARANTINE, bad, [q.tick.key for q in bad])
            self._count(TOPIC_QUARANTINE, len(bad))
        closed = out.candles + out.revisions
        if closed:
            await bus.publish_many(TOPIC_CANDLES, closed, [c.key for c in closed])
            self._count(TOPIC_CANDLES, len(closed))
        if out.enriched:
            await bus.publish_many(TOPIC_ENRICHED, out.enriched, [c.key for c in out.enriched])
            self._count(TOPIC_ENRICHED, len(out.enriched))

    def _count(self, topic: str, n: int) -> None:
        self.published[topic] = self.published.get(topic, 0) + n

    def stats(self) -> dict[str, Any]:
        return {
            "queue_depth": self._queue.qsize(),
            "batches": self.batches,
            "published": dict(self.published),
            "errors": self.errors,
            "last_tick_ns": self.last_tick_ns,
            **self.engine.counters.snapshot(),
        }
