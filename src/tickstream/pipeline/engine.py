"""PipelineEngine: normalize -> dedup -> failover -> sequence -> state -> candles -> indicators.

Pure: no I/O, no asyncio, no clock reads. The caller passes a monotonic ``now_ns`` with each call;
it is used only to estimate exchange time when no ticks arrive (:meth:`PipelineEngine.on_timer`):
the estimate for an exchange is its watermark (newest tick time) plus the monotonic time elapsed
since that watermark last moved. Processing the same ticks in any batch split gives the same
outputs (concatenated), because every decision depends on exchange time and arrival order only.

Each call returns an :class:`EngineOutput`:

* ``ticks``: accepted ticks, in arrival order, with ``status`` LIVE/STALE set;
* ``quarantined``: ``(tick, reason)`` for ticks that failed validation (kept, never fixed);
* ``candles``: closed candles; ``revisions``: closed candles changed again (``revision > 0``);
* ``enriched``: both of those with ``indicators`` set, in event order (revisions re-enriched
  with :meth:`IndicatorSet.revise`);
* ``gaps``: sequence gaps detected here and feed gap events passed to :meth:`on_gap`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

import msgspec

from tickstream.model import Candle, Indicators, Interval, Tick
from tickstream.pipeline.candles import CandleBuilder, CandleConfig
from tickstream.pipeline.counters import PipelineCounters
from tickstream.pipeline.dedup import (
    Deduplicator,
    DedupStore,
    FailoverArbiter,
    MemoryDedupStore,
)
from tickstream.pipeline.indicators import IndicatorSet
from tickstream.pipeline.normalize import NormalizeConfig, Normalizer
from tickstream.pipeline.sequence import GapEvent, SequenceConfig, SequenceTracker
from tickstream.pipeline.state import MarketDataStore

__all__ = [
    "TOPIC_CANDLES",
    "TOPIC_ENRICHED",
    "TOPIC_TICKS",
    "EngineConfig",
    "EngineOutput",
    "IndicatorLike",
    "PipelineEngine",
    "default_indicator_factory",
]

TOPIC_TICKS: Final = "market:ticks"
TOPIC_CANDLES: Final = "market:candles"
TOPIC_ENRICHED: Final = "market:candles:enriched"


class IndicatorLike(Protocol):
    def update(self, candle: Candle) -> Indicators: ...

    def revise(self, candle: Candle) -> Indicators: ...


IndicatorFactory = Callable[[str, Interval], IndicatorLike]


def default_indicator_factory(exchange: str, interval: Interval) -> IndicatorLike:
    """One :class:`tickstream.pipeline.indicators.IndicatorSet` per (instrument, interval)."""
    del interval  # the set does not depend on it
    return IndicatorSet(exchange=exchange)


@dataclass(frozen=True, slots=True)
class EngineConfig:
    normalize: NormalizeConfig = field(default_factory=NormalizeConfig)
    sequence: SequenceConfig = field(default_factory=SequenceConfig)
    candles: CandleConfig = field(default_factory=CandleConfig)
    dedup_window_ns: int = 60 * 1_000_000_000
    dedup_max_entries: int = 2_000_000
    primary_source: str | None = None  # None: no arbitration, every source passes
    failover_after_ns: int = 3 * 1_000_000_000
    # Intervals whose candles get indicators (None: every candle interval).
    indicator_intervals: frozenset[Interval] | None = None


@dataclass(slots=True)
class EngineOutput:
    ticks: list[Tick] = field(default_factory=list)
    quarantined: list[tuple[Tick, str]] = field(default_factory=list)
    candles: list[Candle] = field(default_factory=list)
    revisions: list[Candle] = field(default_factory=list)
    enriched: list[Candle] = field(default_factory=list)
    gaps: list[GapEvent] = field(default_factory=list)

    def extend(self, other: EngineOutput) -> None:
        """Append ``other``'s lists to this one's (to gather the outputs of several calls)."""
        self.ticks.extend(other.ticks)
        self.quarantined.extend(other.quarantined)
        self.candles.extend(other.candles)
        self.revisions.extend(other.revisions)
        self.enriched.extend(other.enriched)
        self.gaps.extend(other.gaps)


class PipelineEngine:
    """Wires the stages; one engine owns its instruments (one per worker/partition set)."""

    def __init__(
        self,
        config: EngineConfig | None = None,
        *,
        indicator_factory: IndicatorFactory | None = default_indicator_factory,
        dedup_store: DedupStore | None = None,
        store: MarketDataStore | None = None,
    ) -> None:
        self.config = cfg = config or EngineConfig()
        self.counters = c = PipelineCounters()
        self.store = store if store is not None else MarketDataStore()
        self.candles = CandleBuilder(cfg.candles, c)
        self._normalizer = Normalizer(cfg.normalize, c)
        if dedup_store is None:
            dedup_store = MemoryDedupStore(cfg.dedup_window_ns, cfg.dedup_max_entries)
        self._dedup = Deduplicator(dedup_store, c)
        self._arbiter = FailoverArbiter(cfg.primary_source, cfg.failover_after_ns, c)
        self._sequence = SequenceTracker(cfg.sequence, c)
        self._factory = indicator_factory
        self._enrich = cfg.indicator_intervals
        self._indicators: dict[tuple[str, int, Interval], IndicatorLike] = {}
        self._wm_seen: dict[str, int] = {}  # watermark per exchange as last observed
        self._wm_base: dict[str, tuple[int, int]] = {}  # exchange -> (tick watermark, now_ns)

    def process(self, batch: Sequence[Tick], now_ns: int) -> EngineOutput:
        """Run a batch of ticks (arrival order) through every stage."""
        out = EngineOutput()
        counters = self.counters
        counters.ticks_in += len(batch)
        check = self._normalizer.check
        is_dup = self._dedup.is_duplicate
        accept = self._arbiter.accept if self._arbiter.primary is not None else None
        sequence = self._sequence.process
        update = self.store.update_tick
        add = self.candles.add
        accepted = out.ticks
        for tick in batch:
            reason = check(tick)
            if reason is not None:
                out.quarantined.append((tick, reason.value))
                continue
            if is_dup(tick) or (accept is not None and not accept(tick)):
                continue
            tick, gap = sequence(tick)
            if gap is not None:
                out.gaps.append(gap)
                self.candles.mark_gap(gap.instruments or (), gap.start_ns, gap.end_ns)
            update(tick)
            add(tick)
            accepted.append(tick)
        counters.accepted += len(accepted)
        self._note_watermarks(now_ns)
        self._drain(out)
        return out

    def set_clock_offset(self, offset_ns: int) -> None:
        """Known offset of the feed's exchange clock from the wall clock (a simulator's session
        clock); the normalizer's future/past checks are applied relative to it."""
        self._normalizer.clock_offset_ns = offset_ns

    def on_timer(self, now_ns: int) -> EngineOutput:
        """Close buckets that exchange time (estimated from ``now_ns``) has passed."""
        for exchange, (wm, at) in self._wm_base.items():
            if now_ns > at:
                self.candles.on_timer(wm + (now_ns - at), exchange)
        self._wm_seen = self.candles.watermarks()
        out = EngineOutput()
        self._drain(out)
        return out

    def on_gap(self, event: GapEvent) -> EngineOutput:
        """A feed-reported gap: instruments go STALE, overlapping candles become incomplete."""
        instruments = self._sequence.on_gap(event)
        self.candles.mark_gap(instruments, event.start_ns, event.end_ns)
        out = EngineOutput(gaps=[event])
        self._drain(out)
        return out

    def flush(self) -> EngineOutput:
        """Close every open candle (end of a replay, shutdown)."""
        self.candles.flush()
        out = EngineOutput()
        self._drain(out)
        return out

    def _note_watermarks(self, now_ns: int) -> None:
        seen = self._wm_seen
        for exchange, wm in self.candles.watermarks().items():
            if seen.get(exchange) != wm:
                seen[exchange] = wm
                self._wm_base[exchange] = (wm, now_ns)

    def _drain(self, out: EngineOutput) -> None:
        events = self.candles.drain()
        if not events:
            return
        factory, only = self._factory, self._enrich
        for candle in events:
            (out.revisions if candle.revision else out.candles).append(candle)
            if factory is None or (only is not None and candle.interval not in only):
                continue
            key = (candle.exchange, candle.token, candle.interval)
            ind = self._indicators.get(key)
            if ind is None:
                ind = self._indicators[key] = factory(candle.exchange, candle.interval)
            values = ind.revise(candle) if candle.revision else ind.update(candle)
            out.enriched.append(msgspec.structs.replace(candle, indicators=values))
