"""A small simulator-fed process around the server: Market -> PipelineEngine -> bus, ring, DuckDB.

The full ``tickstream run`` goes through the simulator's WebSocket servers and the real feed
clients; this driver skips the wire and steps :class:`tickstream.sim.market.Market` directly, so
tests, the serve benchmark and ``python -m tickstream.serve.simfeed`` (a standalone dashboard demo)
get a live, real pipeline with real stores in one process and without sockets to spare.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tickstream.bus.base import Bus
from tickstream.bus.memory import MemoryBus
from tickstream.config import Settings
from tickstream.model import Instrument, Mode
from tickstream.pipeline.engine import (
    TOPIC_CANDLES,
    TOPIC_ENRICHED,
    TOPIC_TICKS,
    EngineOutput,
    PipelineEngine,
)
from tickstream.serve.context import ServeContext
from tickstream.sim.clock import SimClock
from tickstream.sim.market import Market
from tickstream.sim.universe import default_universe, reference_prices
from tickstream.storage.base import TickStore
from tickstream.storage.ringbuffer import MemoryRingBuffer, RingBuffer

__all__ = ["SimFeeder", "build_sim_context"]

log = logging.getLogger(__name__)


class SimFeeder:
    """Steps the market every ``interval_s`` and publishes the engine's outputs."""

    def __init__(
        self,
        bus: Bus,
        ring: RingBuffer,
        store: TickStore | None,
        instruments: Sequence[Instrument],
        *,
        seed: int = 0,
        interval_s: float = 0.1,
        clock: SimClock | None = None,
    ) -> None:
        self.bus, self.ring, self.store = bus, ring, store
        self.clock = clock or SimClock()
        self.market = Market(
            instruments,
            seed=seed,
            start_ns=self.clock.now_ns(),
            reference_prices=reference_prices(),
        )
        self.engine = PipelineEngine()
        self.interval_s = interval_s
        self.subscribed: list[Instrument] = list(instruments)
        self.steps = 0
        self.last_data_ns: int | None = None
        self._task: asyncio.Task[None] | None = None

    async def step(self) -> EngineOutput:
        """One market step through the pipeline; publishes and stores what came out."""
        ticks = self.market.step(self.clock.now_ns())
        out = self.engine.process(ticks, time.monotonic_ns())
        out.extend(self.engine.on_timer(time.monotonic_ns()))
        await self.publish(out)
        self.steps += 1
        if ticks:
            self.last_data_ns = time.time_ns()
        return out

    async def publish(self, out: EngineOutput) -> None:
        if out.ticks:
            await self.ring.push(out.ticks)
            await self.bus.publish_many(TOPIC_TICKS, out.ticks, [t.key for t in out.ticks])
        closed = out.candles + out.revisions
        if closed:
            await self.bus.publish_many(TOPIC_CANDLES, closed)
        if out.enriched:
            await self.bus.publish_many(TOPIC_ENRICHED, out.enriched)
        if self.store is not None:
            if out.ticks:
                await self.store.write_ticks(out.ticks)
            if out.enriched:
                await self.store.write_candles(out.enriched)

    async def _loop(self) -> None:
        while True:
            try:
                await self.step()
            except Exception:  # keep the demo market running; the error is in the log
                log.exception("simulated step failed")
            await asyncio.sleep(self.interval_s)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="simfeed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def stats(self) -> dict[str, Any]:
        return {"pipeline": self.engine.counters.snapshot(), "sim": {"steps": self.steps}}

    def feed_health(self) -> list[dict[str, Any]]:
        return [
            {
                "source": "sim",
                "state": "connected" if self._task is not None else "stopped",
                "subscribed": len(self.subscribed),
                "last_data_ns": self.last_data_ns,
                "reconnects": 0,
                "rejected": {},
            }
        ]

    async def subscribe(self, instruments: Sequence[Instrument], mode: Mode) -> dict[str, Any]:
        known = {i.key for i in self.market.instruments}
        added = [i.key for i in instruments if i.key in known]
        return {"mode": mode.value, "added": added, "not_simulated": len(instruments) - len(added)}


async def build_sim_context(
    settings: Settings,
    *,
    instruments: Sequence[Instrument] | None = None,
    store_path: Path | None = None,
    interval_s: float = 0.1,
    clock: SimClock | None = None,
) -> tuple[ServeContext, SimFeeder]:
    """A context of real components fed by a :class:`SimFeeder` (not started yet)."""
    from tickstream.storage.duckdb_store import DuckDBStore

    universe = list(instruments) if instruments is not None else default_universe()
    bus = MemoryBus()
    await bus.start()
    ring = MemoryRingBuffer(settings.ring_buffer_ticks)
    store = DuckDBStore(store_path or settings.data_dir / "tickstream.duckdb")
    await store.open()
    await store.upsert_instruments(universe)
    feeder = SimFeeder(
        bus, ring, store, universe, seed=settings.sim_seed, interval_s=interval_s, clock=clock
    )
    ctx = ServeContext(
        settings=settings,
        bus=bus,
        store=store,
        ring=ring,
        state=feeder.engine.store,
        instruments=universe,
        stats=feeder.stats,
        feed_health=feeder.feed_health,
        subscribe=feeder.subscribe,
    )
    return ctx, feeder
