"""A replay through its own in-process pipeline into an output store (``tickstream replay``).

Composition: :class:`~tickstream.replay.session.Replay` → :class:`PipelineRunner` (a fresh engine:
normalize → dedup → sequence → state → candles → indicators) → in-memory bus → the same tick and
candle sinks as ``tickstream run`` (enriched candles, so stored history carries indicators) →
``out_store``.

Why a separate output store by default: candles are keyed by (instrument, interval, start) with no
source, so replayed candles written into the live store would overwrite the live ones. Replayed
*ticks* could share the live table (their ``source`` differs, so their keys differ), but keeping
the whole replay apart is simpler to reason about and to delete. Writes are idempotent, so
replaying a day twice into the same output adds no rows.

A checkpoint is written only after the engine processed everything queued and the tick sink
stored every tick the engine published, so a resumed replay leaves no hole in the output.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from tickstream.bus.base import Bus
from tickstream.bus.memory import MemoryBus
from tickstream.model import Tick
from tickstream.pipeline.engine import (
    TOPIC_CANDLES,
    TOPIC_ENRICHED,
    TOPIC_TICKS,
    EngineConfig,
    PipelineEngine,
)
from tickstream.pipeline_runner import PipelineRunner
from tickstream.replay.checkpoint import tick_key
from tickstream.replay.session import Replay, ReplaySummary
from tickstream.replay.source import REPLAY_SOURCE
from tickstream.storage.base import TickKey, TickStore
from tickstream.storage.sinks import CandleSink, TickSink

__all__ = ["PipelineReplayResult", "RecordedClockOffset", "replay_through_pipeline", "warm_up"]

log = logging.getLogger(__name__)

Progress = Callable[[Replay], None]


@dataclass(frozen=True, slots=True)
class PipelineReplayResult:
    summary: ReplaySummary
    published: dict[str, int]  # topic -> messages the pipeline published
    tick_rows_inserted: int  # new rows in the output store (0 when the day was replayed before)
    candle_rows_written: int
    quarantined: int
    pipeline: dict[str, Any]  # the runner's stats (engine counters)


async def replay_through_pipeline(
    replay: Replay,
    out_store: TickStore,
    engine_config: EngineConfig | None = None,
    *,
    on_progress: Progress | None = None,
    progress_interval_s: float = 0.2,
    bus: Bus | None = None,
) -> PipelineReplayResult:
    """Run ``replay`` to the end through a fresh engine into ``out_store`` (already open).

    ``bus``: publish on this (started) bus, e.g. to watch ``market:candles:enriched``; by
    default a private in-memory bus, closed at the end."""
    own_bus = bus is None
    if bus is None:
        bus = MemoryBus()
        await bus.start()
    tick_sink = TickSink(bus, out_store, TOPIC_TICKS)
    candle_sink = CandleSink(bus, out_store, _candle_topic(engine_config))
    engine = PipelineEngine(engine_config)
    offset = RecordedClockOffset()
    if replay.load():
        await warm_up(engine, replay, offset=offset)
    runner = PipelineRunner(engine, bus)
    for component in (tick_sink, candle_sink, runner):
        await component.start()
    reporter = _start_reporter(replay, on_progress, progress_interval_s)
    try:
        summary = await _run(replay, runner, tick_sink, offset)
    finally:
        await _stop_reporter(reporter)
        for component in (runner, tick_sink, candle_sink):  # producers first, then the sinks
            await component.stop()
        if own_bus:
            await bus.close()
    if on_progress is not None:
        on_progress(replay)
    return PipelineReplayResult(
        summary=summary,
        published=dict(runner.published),
        tick_rows_inserted=int(tick_sink.stats()["inserted"]),
        candle_rows_written=_written(candle_sink),
        quarantined=int(runner.published.get("market:quarantine", 0)),
        pipeline=runner.stats(),
    )


async def _stop_reporter(reporter: asyncio.Task[None] | None) -> None:
    if reporter is not None:
        reporter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reporter


async def warm_up(
    engine: PipelineEngine, replay: Replay, *, offset: RecordedClockOffset | None = None
) -> int:
    """Rebuild a resumed replay's engine state: run every tick up to the checkpoint positions
    through ``engine`` (outputs discarded, nothing delivered), so candles and indicators continue
    exactly as in an uninterrupted replay. Returns the number of ticks re-processed."""
    positions = replay.positions
    if not positions:
        return 0
    spec = replay.spec
    last = max(p.ts_exchange for p in positions.values())
    warm_spec = dataclasses.replace(spec, speed=None, end_ns=min(spec.end_ns, last + 1))
    offset = offset if offset is not None else RecordedClockOffset()
    seen = 0

    async def process(batch: list[Tick]) -> None:
        nonlocal seen
        before = [t for t in batch if _at_or_before(t, positions)]
        if before:
            offset.observe(before)
            engine.set_clock_offset(offset())
            retagged = [msgspec.structs.replace(t, source=REPLAY_SOURCE) for t in before]
            engine.process(retagged, time.monotonic_ns())
            seen += len(before)

    await Replay(replay.store, warm_spec).run(process, retag=False)
    log.info("replay %s: engine state rebuilt from %d ticks", replay.replay_id, seen)
    return seen


def _at_or_before(tick: Tick, positions: dict[str, TickKey]) -> bool:
    pos = positions.get(tick.key)
    if pos is None:
        return False
    if tick.ts_exchange != pos.ts_exchange:
        return tick.ts_exchange < pos.ts_exchange
    return tick_key(tick) <= pos


class RecordedClockOffset:
    """The recording's exchange-clock offset (``ts_exchange - ts_recv`` of the first replayed
    tick), so the normaliser judges ``ts_exchange`` against ``ts_recv`` as the live run did (a
    simulated session's exchange clock may run on another day than the wall clock)."""

    def __init__(self) -> None:
        self.offset_ns: int | None = None

    def observe(self, batch: list[Tick]) -> None:
        if self.offset_ns is None and batch:
            self.offset_ns = batch[0].ts_exchange - batch[0].ts_recv

    def __call__(self) -> int:
        return self.offset_ns or 0


async def _run(
    replay: Replay, runner: PipelineRunner, tick_sink: TickSink, offset: RecordedClockOffset
) -> ReplaySummary:
    runner.set_exchange_clock_offset(offset)

    async def deliver(batch: list[Tick]) -> None:
        offset.observe(batch)
        await runner.put(batch)

    async def barrier() -> None:
        await runner.wait_idle(300.0)
        await _sink_caught_up(tick_sink, lambda: runner.published.get(TOPIC_TICKS, 0))

    return await replay.run(deliver, before_checkpoint=barrier)


async def _sink_caught_up(
    sink: TickSink, target: Callable[[], int], timeout_s: float = 300.0
) -> None:
    """Wait until ``sink`` stored as many items as were published to it."""
    deadline = time.monotonic() + timeout_s
    while _written(sink) < target():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{sink.name} did not catch up within {timeout_s} s")
        await asyncio.sleep(0.02)


def _candle_topic(config: EngineConfig | None) -> str:
    """Enriched candles (with indicators), as ``tickstream run`` stores them, unless the engine
    enriches only some intervals (then the plain candles, so no interval goes missing)."""
    if config is not None and config.indicator_intervals is not None:
        return TOPIC_CANDLES
    return TOPIC_ENRICHED


def _written(sink: TickSink | CandleSink) -> int:
    """Items the sink handed to the store ("written"; "stored" in older sinks)."""
    stats = sink.stats()
    return int(stats.get("written", stats.get("stored", 0)))


def _start_reporter(
    replay: Replay, on_progress: Progress | None, interval_s: float
) -> asyncio.Task[None] | None:
    if on_progress is None:
        return None

    async def report() -> None:
        while True:
            on_progress(replay)
            await asyncio.sleep(interval_s)

    return asyncio.create_task(report(), name="replay:progress")
