"""Process lifecycle: start components in order, stop them in reverse, on SIGINT/SIGTERM.

A component is anything with ``name``, ``async start()`` and ``async stop()``. ``start`` returns
once the component is serving (it spawns its own tasks); ``stop`` stops intake, drains, flushes and
closes. The runtime gives the whole shutdown a bound: a component that does not stop in time is
reported, and the rest still stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["Component", "FunctionComponent", "Runtime"]

log = logging.getLogger(__name__)


class Component(Protocol):
    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class FunctionComponent:
    """Adapts a pair of coroutines (or a start coroutine alone) into a Component."""

    name: str
    on_start: Callable[[], Awaitable[None]]
    on_stop: Callable[[], Awaitable[None]] | None = None

    async def start(self) -> None:
        await self.on_start()

    async def stop(self) -> None:
        if self.on_stop is not None:
            await self.on_stop()


@dataclass
class Runtime:
    """Owns the components of one process."""

    shutdown_timeout_secs: float = 15.0
    components: list[Component] = field(default_factory=list)
    _started: list[Component] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, component: Component) -> Component:
        self.components.append(component)
        return component

    def request_stop(self, reason: str = "requested") -> None:
        if not self._stop.is_set():
            log.info("shutdown: %s", reason)
            self._stop.set()

    async def start(self) -> None:
        for component in self.components:
            t0 = time.monotonic()
            await component.start()
            self._started.append(component)
            log.info("started %s (%.0f ms)", component.name, (time.monotonic() - t0) * 1e3)

    async def stop(self) -> bool:
        """Stop every started component in reverse order; True when all stopped in time."""
        clean = True
        deadline = time.monotonic() + self.shutdown_timeout_secs
        while self._started:
            component = self._started.pop()
            remaining = max(0.1, deadline - time.monotonic())
            try:
                async with asyncio.timeout(remaining):
                    await component.stop()
                log.info("stopped %s", component.name)
            except TimeoutError:
                clean = False
                log.error("%s did not stop within the shutdown bound", component.name)
            except Exception:
                clean = False
                log.exception("%s failed while stopping", component.name)
        return clean

    async def run(self, until: Awaitable[object] | None = None) -> bool:
        """Start everything, wait for a signal (or ``until``), then stop. True on a clean stop."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop, signal.Signals(sig).name)
        try:
            await self.start()
            freeze_startup_heap()
            log.info("running: %s", ", ".join(c.name for c in self._started) or "nothing")
            waiters: list[asyncio.Future[object]] = [asyncio.ensure_future(self._stop.wait())]
            if until is not None:
                waiters.append(asyncio.ensure_future(until))
            done, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for p in pending:
                p.cancel()
            for d in done:
                if not d.cancelled() and d.exception() is not None:
                    log.error("component failed: %r", d.exception())
        finally:
            gc.unfreeze()
            clean = await self.stop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)
        return clean


# Young-generation threshold for a tick-processing process (CPython's default is 700): the
# pipeline allocates candles, slots and indicator snapshots per tick, and with thousands of
# instruments most of them are long-lived, so the default collects every few hundred ticks and
# keeps re-walking them. bench/pipeline.py measures the effect side by side (9,000 instruments).
GC_THRESHOLDS = (100_000, 50, 100)


def tune_gc() -> None:
    """Collect less often (see ``GC_THRESHOLDS``); reference cycles are rare in the hot path
    (ticks are msgspec structs with gc=False), so memory stays where reference counting puts it."""
    gc.set_threshold(*GC_THRESHOLDS)


def freeze_startup_heap() -> int:
    """Collect once, then move every object alive after start-up out of the collector's view,
    and tune the collector for the ticks that follow (:func:`tune_gc`).

    Instrument masters, the app, the pipeline's per-instrument state: tens of thousands of
    long-lived objects that every full collection would otherwise walk again, on the event loop,
    pausing ticks and requests for tens of milliseconds each time. Returns how many are frozen.
    """
    gc.collect()
    gc.freeze()
    tune_gc()
    return gc.get_freeze_count()
