"""Where a replay goes: the in-process pipeline, or Kafka ``raw_ticks`` for the process workers.

Both go through the same path as live data: the pipeline's intake queue (normalisation, dedup,
sequence tracking, candles, indicators, then the bus and the store sinks), or the ``raw_ticks``
topic the ``tickstream process`` workers consume. Replayed ticks carry ``source="replay"``, so
their dedup and sequence state (kept per source) never mixes with a live feed's in the same
engine; a replay normally runs in its own engine anyway (``tickstream replay``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from tickstream.model import Tick
from tickstream.replay.session import Replay, ReplaySummary

__all__ = ["TickProducer", "replay_into_kafka", "replay_into_pipeline"]

RAW_TICKS = "raw_ticks"


class TickProducer(Protocol):
    """The part of :class:`tickstream.bus.kafka_bus.KafkaProducer` a replay uses."""

    def produce_many(
        self, topic: str, values: Sequence[Any], keys: Sequence[str | None] | None = None
    ) -> None: ...

    async def flush(self, timeout: float | None = None) -> None: ...


class PipelineIntake(Protocol):
    """The part of :class:`tickstream.pipeline_runner.PipelineRunner` a replay uses."""

    async def put(self, event: Sequence[Tick]) -> None: ...

    async def wait_idle(self, timeout: float = 10.0) -> None: ...


async def replay_into_pipeline(
    replay: Replay, runner: PipelineIntake, *, idle_timeout_s: float = 300.0
) -> ReplaySummary:
    """Feed the runner's queue; a checkpoint is written only once the engine processed (and
    published) everything queued before it."""

    async def idle() -> None:
        await runner.wait_idle(idle_timeout_s)

    return await replay.run(runner.put, before_checkpoint=idle)


async def replay_into_kafka(
    replay: Replay, producer: TickProducer, *, topic: str = RAW_TICKS
) -> ReplaySummary:
    """Produce to ``topic`` keyed by ``exchange:token``; checkpoints wait for the broker's acks."""

    async def deliver(batch: list[Tick]) -> None:
        producer.produce_many(topic, batch, [t.key for t in batch])

    return await replay.run(deliver, before_checkpoint=producer.flush)
