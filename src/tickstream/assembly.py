"""Composition root: which components a process runs, chosen from Settings.

``tickstream run`` = store → bus → backfill ring → sinks → pipeline → simulator (when no broker is
configured) → feed client → HTTP server, all in one process. Components start in that order and
stop in reverse, so on shutdown intake stops first, the pipeline drains and flushes its open
candles, and the sinks write everything they were given before the store closes.

The scaled-out commands (``ingest``, ``process``, ``serve``) reuse the factories below.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tickstream.bus.base import Bus
from tickstream.config import Settings
from tickstream.feeds.base import Feed
from tickstream.model import NS_PER_SEC, Instrument, Mode, Tick
from tickstream.pipeline.candles import CandleConfig
from tickstream.pipeline.engine import TOPIC_ENRICHED, TOPIC_TICKS, EngineConfig, PipelineEngine
from tickstream.pipeline_runner import TOPIC_QUARANTINE, PipelineRunner, Quarantined
from tickstream.quarantine import QuarantineFile
from tickstream.runtime import FunctionComponent, Runtime
from tickstream.storage import TickStore, create_store
from tickstream.storage.ringbuffer import MemoryRingBuffer, RingBuffer
from tickstream.storage.sinks import CandleSink, StoreSink, TickSink

if TYPE_CHECKING:
    from tickstream.sim.server import SimConfig

__all__ = ["Assembly", "build_bus", "build_runtime", "engine_config", "select_instruments"]

log = logging.getLogger(__name__)


@dataclass
class Assembly:
    """Handles on the running components (for the HTTP server, stats and tests)."""

    settings: Settings
    runtime: Runtime
    bus: Bus
    store: TickStore
    ring: RingBuffer
    runner: PipelineRunner
    sinks: list[StoreSink[Any]] = field(default_factory=list)
    feed: Feed | None = None
    sim: Any = None
    instruments: list[Instrument] = field(default_factory=list)
    server: Any = None

    def stats(self) -> dict[str, Any]:
        """Per-stage counters: feed, pipeline, bus, sinks, and the accounting invariants."""
        from tickstream.accounting import accounting

        feed = self.feed.health() if self.feed is not None else None
        out = {
            "feed": _health_dict(feed) if feed is not None else None,
            "pipeline": self.runner.stats(),
            "bus": self.bus.stats(),
            "sinks": {s.name: s.stats() for s in self.sinks},
        }
        out["accounting"] = accounting(out)
        return out

    def feed_health(self) -> list[dict[str, Any]]:
        return [_health_dict(self.feed.health())] if self.feed is not None else []


def _health_dict(health: Any) -> dict[str, Any]:
    import msgspec

    out: dict[str, Any] = msgspec.to_builtins(health)
    out["open_connections"] = health.open_connections
    return out


def engine_config(settings: Settings) -> EngineConfig:
    lateness_ns = settings.candle_lateness_ms * 1_000_000
    return EngineConfig(
        candles=CandleConfig(
            intervals=settings.candle_intervals,
            grace_ns=min(NS_PER_SEC, lateness_ns),
            allowed_lateness_ns=lateness_ns,
        ),
        dedup_window_ns=int(settings.dedup_window_secs * NS_PER_SEC),
    )


def build_bus(settings: Settings) -> Bus:
    """The process's bus: in-memory, plus a best-effort copy to Redis when REDIS_URL is set.

    Sinks, the backfill ring and the API always read the in-memory bus, so a Redis restart never
    loses a tick for this process; Redis carries pub/sub and the per-symbol streams for outside
    consumers (see :mod:`tickstream.bus.tee`).
    """
    from tickstream.bus.memory import MemoryBus

    url = settings.secret("redis_url")
    if not url:
        return MemoryBus()
    from tickstream.bus.tee import TeeBus

    module = importlib.import_module("tickstream.bus.redis_bus")
    return TeeBus(MemoryBus(), module.RedisBus(url))


def build_ring(settings: Settings) -> RingBuffer:
    """The backfill ring of ``run``: in-process, like the API that reads it. A cache must never
    stall the pipeline, and a Redis outage would (its sink never drops). The scaled mode keeps
    its ring in Redis (``backfill:{exchange}:{token}``)."""
    return MemoryRingBuffer(settings.ring_buffer_ticks)


def select_instruments(universe: list[Instrument], symbols: tuple[str, ...]) -> list[Instrument]:
    """The instruments named in ``symbols`` (all of the universe when empty); unknown ones fail."""
    if not symbols:
        return list(universe)
    by_symbol = {i.symbol.upper(): i for i in universe}
    missing = [s for s in symbols if s.upper() not in by_symbol]
    if missing:
        raise ValueError(f"unknown symbols: {', '.join(missing)}")
    return [by_symbol[s.upper()] for s in symbols]


def _sinks(settings: Settings, bus: Bus, store: TickStore, ring: RingBuffer) -> list[Any]:
    qfile = QuarantineFile(settings.data_dir / "quarantine")
    return [
        TickSink(bus, store, TOPIC_TICKS),
        # The enriched topic carries the same closed candles and revisions as market:candles, with
        # indicator values (run's engine enriches every interval), so history has indicators too.
        CandleSink(bus, store, TOPIC_ENRICHED),
        StoreSink(
            bus,
            TOPIC_TICKS,
            ring.push,
            type_=Tick,
            name="ticks->ring",
            batch_size=2000,
            flush_interval_s=0.05,
        ),
        StoreSink(
            bus,
            TOPIC_QUARANTINE,
            qfile.append,
            type_=Quarantined,
            name="quarantine->file",
            batch_size=1000,
        ),
    ]


async def build_assembly(
    settings: Settings, *, serve: bool = True, sim_config: SimConfig | None = None
) -> Assembly:
    """Build (not start) every component of ``tickstream run``."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    runtime = Runtime()
    store = create_store(settings)
    bus = build_bus(settings)
    ring = build_ring(settings)
    runner = PipelineRunner(
        PipelineEngine(engine_config(settings)),
        bus,
        queue_max_batches=settings.feed_queue_max_batches,
    )
    asm = Assembly(settings, runtime, bus, store, ring, runner)
    # Stopped last: the drained accounting (accepted = stored, ...) goes to the log at shutdown.
    runtime.add(FunctionComponent("accounting", _noop, lambda: _log_accounting(asm)))
    runtime.add(FunctionComponent(f"store:{store.name}", store.open, store.close))
    runtime.add(FunctionComponent(f"bus:{bus.name}", bus.start, bus.close))
    runtime.add(FunctionComponent("ring", _noop, ring.close))
    for sink in _sinks(settings, bus, store, ring):
        runtime.add(sink)
        asm.sinks.append(sink)
    runtime.add(runner)
    await _add_feed(asm, sim_config)
    if serve:
        _add_server(asm)
    return asm


async def _noop() -> None:
    return None


async def _log_accounting(asm: Assembly) -> None:
    from tickstream.accounting import accounting, violations

    doc = accounting(asm.stats(), drained=True)
    log.info(
        "accounting at shutdown: accepted %d, stored %d, in flight %d, violations: %s",
        doc["pipeline"]["accepted"], doc["storage"]["ticks_stored"], doc["in_flight"],
        ", ".join(violations(doc)) or "none",
    )  # fmt: skip


async def _add_feed(asm: Assembly, sim_config: SimConfig | None = None) -> None:
    from tickstream.feeds.factory import build_feed

    settings = asm.settings
    if settings.resolved_feed() == "sim":
        from tickstream.sim.server import SimConfig, SimServer

        sim = SimServer(
            sim_config
            or SimConfig(
                seed=settings.sim_seed,
                tick_interval_ms=settings.sim_tick_interval_ms,
                emission_log=settings.sim_emission_log,
            )
        )
        asm.sim = sim
        clock = sim.clock
        asm.runner.set_exchange_clock_offset(lambda: clock.now_ns() - time.time_ns())
        asm.runtime.add(FunctionComponent("simulator", sim.start, sim.stop))
        universe = list(sim.market.instruments)
    else:
        universe = _broker_universe(settings)
    asm.instruments = select_instruments(universe, settings.symbols)

    async def start_feed() -> None:
        feed = build_feed(settings, asm.sim)
        asm.feed = feed
        await feed.start()
        await feed.subscribe(asm.instruments, Mode.FULL)
        asm.runner.add_source(feed.events(), feed.source)
        log.info("feed %s subscribed to %d instruments", feed.source, len(asm.instruments))

    async def stop_feed() -> None:
        if asm.feed is not None:
            await asm.feed.stop()

    asm.runtime.add(FunctionComponent("feed", start_feed, stop_feed))


def _broker_universe(settings: Settings) -> list[Instrument]:
    """Instruments for a real broker: the simulator's universe file names the defaults."""
    from tickstream.sim.universe import default_universe

    return default_universe()


def _add_server(asm: Assembly) -> None:
    """The HTTP API and dashboard, started last (everything it reads is up) and stopped first."""
    from tickstream.serve.app import create_app
    from tickstream.serve.context import ServeContext
    from tickstream.serve.server import HttpServer

    async def subscribe(instruments: Sequence[Instrument], mode: Mode) -> dict[str, Any]:
        if asm.feed is None:
            raise RuntimeError("no feed is running")
        await asm.feed.subscribe(instruments, mode)
        known = {i.key for i in asm.instruments}
        asm.instruments.extend(i for i in instruments if i.key not in known)
        return {"subscribed": [i.symbol for i in instruments], "mode": mode.value}

    ctx = ServeContext(
        settings=asm.settings,
        bus=asm.bus,
        store=asm.store,
        ring=asm.ring,
        state=asm.runner.engine.store,
        instruments=asm.instruments,
        stats=asm.stats,
        feed_health=asm.feed_health,
        subscribe=subscribe,
    )
    server = HttpServer(create_app(ctx), asm.settings.host, asm.settings.port)
    asm.server = server
    asm.runtime.add(server)


async def build_runtime(settings: Settings) -> Runtime:
    asm = await build_assembly(settings)
    return asm.runtime
