"""Scale-out loops around Kafka: ``ingest`` (feed -> raw_ticks) and ``process`` (raw_ticks ->
pipeline -> normalized_ticks, candles, Redis fan-out, storage). The I/O lives here; the logic is
the pure :class:`~tickstream.pipeline.engine.PipelineEngine`.

Process workers share the partitions of ``raw_ticks`` through one consumer group. Candle state
follows the partition: each partition has its own engine, and a partition's committed offset
carries, as commit metadata, the offset of its first record of the current IST day. A worker that
is assigned a partition replays it from that offset with outputs discarded until it reaches the
committed offset, so its candles are exactly what the previous owner would have produced.
Offsets are committed after every batch, once its Kafka outputs are acknowledged (acks=all) and
its rows are written to the store (idempotent writes). A crash therefore redelivers at most the
uncommitted batch: the same events (same ids) again, never a hole.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from tickstream.bus.base import Bus
from tickstream.bus.kafka_bus import (
    TOPIC_CANDLES,
    TOPIC_NORMALIZED_TICKS,
    TOPIC_RAW_TICKS,
    KafkaProducer,
    ensure_topics,
)
from tickstream.bus.kafka_group import Assignment, KafkaGroupConsumer, Record
from tickstream.calendar import ist_date
from tickstream.model import Candle, Tick

__all__ = [
    "FANOUT_CANDLES",
    "FANOUT_ENRICHED",
    "FANOUT_TICKS",
    "ProcessWorker",
    "Processor",
    "feed_source",
    "run_ingest",
    "sim_source",
]

log = logging.getLogger(__name__)

FANOUT_TICKS = "market:ticks"
FANOUT_CANDLES = "market:candles"
FANOUT_ENRICHED = "market:candles:enriched"


class Processor(Protocol):
    """What a worker runs per partition: the PipelineEngine or anything shaped like it.

    ``process`` returns an object with ``ticks``, ``candles``, ``revisions`` (and optionally
    ``enriched``) lists, as :class:`~tickstream.pipeline.engine.EngineOutput` has.
    """

    def process(self, batch: Sequence[Tick], now_ns: int) -> Any: ...


class CandleWriter(Protocol):
    async def write_ticks(self, ticks: Sequence[Tick]) -> int: ...

    async def write_candles(self, candles: Sequence[Candle]) -> int: ...


# --------------------------------------------------------------------------------- ingest


async def sim_source(
    *,
    seed: int = 0,
    start_ns: int | None = None,
    step_s: float = 0.25,
    speed: float = 1.0,
) -> AsyncIterator[list[Tick]]:
    """Ticks from the built-in simulated market, paced in real time (``speed`` x).

    Exchange time comes from :class:`~tickstream.sim.clock.SimClock`: the live session, or the
    latest session replayed from 10:00 IST outside market hours; ``start_ns`` fixes the start.
    The hook for the real feed clients is the same shape: any async iterator of tick batches.
    """
    from tickstream.sim.clock import ClockMode, SimClock
    from tickstream.sim.market import Market
    from tickstream.sim.universe import default_universe, reference_prices

    mode = ClockMode.SESSION if start_ns is None else ClockMode.FIXED
    clock = SimClock(mode, start_ns=start_ns, speed=speed)
    market = Market(
        default_universe(), seed=seed, start_ns=clock.now_ns(), reference_prices=reference_prices()
    )
    while True:
        await asyncio.sleep(step_s)
        batch = market.step(clock.now_ns())
        if batch:
            yield batch


async def feed_source(feed: Any) -> AsyncIterator[list[Tick]]:
    """Tick batches from a started :class:`~tickstream.feeds.base.Feed` (Kite, Angel One).

    The hook for the broker feeds: ``run_ingest(feed_source(feed), producer)``. Gap events are
    not forwarded: the process workers detect gaps from sequence numbers and tick times.
    """
    async for event in feed.events():
        if isinstance(event, list) and event:
            yield event


async def run_ingest(
    source: AsyncIterator[list[Tick]],
    producer: KafkaProducer,
    *,
    topic: str = TOPIC_RAW_TICKS,
    max_ticks: int | None = None,
    stop: asyncio.Event | None = None,
) -> int:
    """Move tick batches from ``source`` to ``topic`` (key = exchange:token); returns the count."""
    sent = 0
    async for batch in source:
        if max_ticks is not None:
            batch = batch[: max_ticks - sent]
        producer.produce_many(topic, batch, [t.key for t in batch])
        sent += len(batch)
        if (max_ticks is not None and sent >= max_ticks) or (stop is not None and stop.is_set()):
            break
    await producer.flush()
    log.info("ingest done: %d ticks to %s", sent, topic)
    return sent


# --------------------------------------------------------------------------------- process


@dataclass
class PartitionState:
    engine: Processor
    resume: int  # records below this offset rebuild state; their outputs are discarded
    day_start: int = -1  # offset of this partition's first record of the current IST day
    day: dt.date | None = None
    next_offset: int = -1


@dataclass
class BatchOutput:
    ticks: list[Tick] = field(default_factory=list)
    candles: list[Candle] = field(default_factory=list)
    enriched: list[Candle] = field(default_factory=list)


class ProcessWorker:
    """One member of the ``process`` consumer group; see the module docstring."""

    def __init__(
        self,
        bootstrap: str,
        engine_factory: Callable[[], Processor],
        *,
        group_id: str = "tickstream-process",
        source_topic: str = TOPIC_RAW_TICKS,
        ticks_topic: str = TOPIC_NORMALIZED_TICKS,
        candles_topic: str = TOPIC_CANDLES,
        producer: KafkaProducer | None = None,
        fanout: Bus | None = None,
        store: CandleWriter | None = None,
        batch_max: int = 2000,
        consumer_config: dict[str, Any] | None = None,
    ) -> None:
        self._factory = engine_factory
        self._ticks_topic = ticks_topic
        self._candles_topic = candles_topic
        self.producer = producer or KafkaProducer(bootstrap, source="process")
        self._fanout = fanout
        self._store = store
        self._batch_max = batch_max
        self.consumer = KafkaGroupConsumer(
            bootstrap,
            [source_topic],
            group_id,
            type_=Tick,
            on_assign=self._assigned,
            on_revoke=self._revoked,
            config=consumer_config,
        )
        self._parts: dict[tuple[str, int], PartitionState] = {}
        self.processed = 0
        self.replayed = 0
        self.fanout_errors = 0

    def _assigned(self, plan: list[Assignment]) -> None:
        for a in plan:
            state = PartitionState(self._factory(), resume=a.committed)
            if a.committed >= 0 and a.metadata.isdigit() and int(a.metadata) <= a.committed:
                a.start = int(a.metadata)
                state.day_start = a.start
            self._parts[(a.topic, a.partition)] = state

    def _revoked(self, gone: list[tuple[str, int]], lost: bool) -> None:
        """Before partitions move: outputs flushed, offsets committed, then the state leaves.

        Rebalances run inside ``poll`` and every batch is committed before the next poll, so
        this normally finds nothing left to do; it is the guarantee, not the common path.
        Lost partitions (session expired) are only dropped: their new owner may be running.
        """
        if not lost:
            self._flush_and_commit(gone)
        for tp in gone:
            self._parts.pop(tp, None)

    def _flush_and_commit(self, gone: list[tuple[str, int]]) -> None:
        self.producer.flush_sync(30.0)
        self.consumer.commit(
            {
                tp: (s.next_offset, str(s.day_start))
                for tp in gone
                if (s := self._parts.get(tp)) is not None and s.next_offset >= 0
            }
        )

    async def run(self, stop: asyncio.Event) -> None:
        self.consumer.start()
        try:
            while not stop.is_set():
                await self.run_once()
        finally:
            await self.producer.flush(timeout=30.0)
            self.consumer.close()

    async def run_once(self, timeout: float = 0.5) -> int:
        """Poll one batch, process it, make its outputs durable, commit. Returns records seen."""
        records = await self.consumer.poll(self._batch_max, timeout)
        if not records:
            return 0
        out = self._process(records)
        await self._emit(out)
        self.consumer.commit(
            {
                tp: (s.next_offset, str(s.day_start))
                for tp, s in self._parts.items()
                if s.next_offset >= 0
            }
        )
        return len(records)

    def _process(self, records: list[Record]) -> BatchOutput:
        by_part: dict[tuple[str, int], list[Record]] = {}
        for r in records:
            by_part.setdefault((r.topic, r.partition), []).append(r)
        out = BatchOutput()
        for tp, recs in by_part.items():
            state = self._parts.get(tp)
            if state is None:  # revoked while the batch was in flight
                continue
            self._process_partition(state, recs, out)
        return out

    def _process_partition(
        self, state: PartitionState, recs: list[Record], out: BatchOutput
    ) -> None:
        replay: list[Tick] = []
        live: list[Tick] = []
        for r in recs:
            tick: Tick = r.value
            day = ist_date(tick.ts_exchange)
            if state.day is None or day > state.day:
                state.day, state.day_start = day, r.offset
            (replay if r.offset < state.resume else live).append(tick)
        state.next_offset = recs[-1].offset + 1
        if replay:
            state.engine.process(replay, replay[-1].ts_recv)
            self.replayed += len(replay)
        if live:
            res = state.engine.process(live, live[-1].ts_recv)
            out.ticks.extend(res.ticks)
            out.candles.extend(res.candles)
            out.candles.extend(res.revisions)
            out.enriched.extend(getattr(res, "enriched", ()))
            self.processed += len(live)

    async def _emit(self, out: BatchOutput) -> None:
        if out.ticks:
            self.producer.produce_many(self._ticks_topic, out.ticks)
        if out.candles:
            self.producer.produce_many(self._candles_topic, out.candles)
        if self._store is not None:
            if out.ticks:
                await self._store.write_ticks(out.ticks)
            if out.candles:
                await self._store.write_candles(out.candles)
        await self.producer.flush(timeout=120.0)
        if self._fanout is not None:
            await self._fan_out(out)

    async def _fan_out(self, out: BatchOutput) -> None:
        """Live fan-out on the bus (Redis pub/sub and streams): best effort, never blocks commit."""
        bus = self._fanout
        assert bus is not None
        try:
            for topic, values in (
                (FANOUT_TICKS, out.ticks),
                (FANOUT_CANDLES, out.candles),
                (FANOUT_ENRICHED, out.enriched),
            ):
                if values:
                    await bus.publish_many(topic, values)
            publish_streams = getattr(bus, "publish_stream_batch", None)
            if publish_streams is not None and out.ticks:
                await publish_streams(out.ticks)
        except (ConnectionError, OSError) as exc:
            self.fanout_errors += 1
            log.warning("fan-out failed (%s); continuing", exc)

    def stats(self) -> dict[str, Any]:
        return {
            "partitions": sorted(p for _, p in self._parts),
            "processed": self.processed,
            "replayed": self.replayed,
            "fanout_errors": self.fanout_errors,
            "delivered": self.producer.delivered,
        }


async def prepare_topics(bootstrap: str, partitions: int = 6) -> None:
    """Create raw_ticks, normalized_ticks and candles with ``partitions`` each if missing."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    await ensure_topics(
        admin, dict.fromkeys((TOPIC_RAW_TICKS, TOPIC_NORMALIZED_TICKS, TOPIC_CANDLES), partitions)
    )
