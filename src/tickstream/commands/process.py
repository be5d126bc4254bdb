"""``tickstream process``: one worker of the raw_ticks consumer group (run N of them)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import typer

if TYPE_CHECKING:
    from tickstream.scaleout import Processor

HELP: Final = (
    "Consume Kafka raw_ticks in a consumer group, run the pipeline per partition and publish "
    "normalized_ticks and candles (Kafka), the live fan-out (Redis pub/sub market:ticks, "
    "market:candles, market:candles:enriched and the per-symbol streams, when --redis or "
    "$REDIS_URL is set) and the storage rows (when --database or $DATABASE_URL is set). Start N "
    "workers with the same --group: they share the partitions; candle state follows the "
    "partition. Offsets are committed only after a batch's outputs are durable.\n\n"
    "Example: tickstream process --kafka 127.0.0.1:9093 --group tickstream-process"
)


def _engine_factory(intervals: str, indicators: bool) -> Any:
    from tickstream.model import Interval
    from tickstream.pipeline.candles import CandleConfig
    from tickstream.pipeline.engine import EngineConfig, PipelineEngine

    config = EngineConfig(
        candles=CandleConfig(intervals=tuple(Interval.parse(i) for i in intervals.split(",")))
    )

    def make() -> Processor:
        if indicators:
            return PipelineEngine(config)
        return PipelineEngine(config, indicator_factory=None)

    return make


def process(
    kafka: str = typer.Option("", help="Kafka bootstrap (default: $KAFKA_BOOTSTRAP)."),
    group: str = typer.Option("tickstream-process", help="Consumer group of the workers."),
    source_topic: str = typer.Option("raw_ticks", help="Input topic."),
    ticks_topic: str = typer.Option("normalized_ticks", help="Output topic for accepted ticks."),
    candles_topic: str = typer.Option("candles", help="Output topic for closed candles."),
    intervals: str = typer.Option("1s,1m,5m", help="Candle intervals, comma separated."),
    indicators: bool = typer.Option(True, help="Compute indicators (enriched candles)."),
    redis: str = typer.Option("", help="Redis URL for the live fan-out (default: $REDIS_URL)."),
    database: str = typer.Option("", help="Store URL (default: $DATABASE_URL; none: no store)."),
    batch: int = typer.Option(2000, help="Records per batch (one commit per batch)."),
    session_timeout_ms: int = typer.Option(10_000, help="Group session timeout."),
    heartbeat_file: Path | None = typer.Option(
        None, help="Write a heartbeat file for `tickstream healthcheck --heartbeat-file`."
    ),
) -> None:
    import asyncio

    from tickstream.runtime import tune_gc

    tune_gc()  # a long-running tick-processing process, like `tickstream run`
    bootstrap = kafka or os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    worker_kwargs: dict[str, Any] = {
        "group_id": group,
        "source_topic": source_topic,
        "ticks_topic": ticks_topic,
        "candles_topic": candles_topic,
        "batch_max": batch,
        "consumer_config": {
            "session.timeout.ms": session_timeout_ms,
            "heartbeat.interval.ms": max(500, session_timeout_ms // 6),
        },
    }
    asyncio.run(
        _serve(
            bootstrap,
            _engine_factory(intervals, indicators),
            redis or os.environ.get("REDIS_URL", ""),
            database or os.environ.get("DATABASE_URL", ""),
            worker_kwargs,
            heartbeat_file,
        )
    )


async def _serve(
    bootstrap: str,
    factory: Any,
    redis_url: str,
    db_url: str,
    worker_kwargs: dict[str, Any],
    heartbeat_file: Path | None = None,
) -> None:
    """Run one worker until SIGINT/SIGTERM, with the fan-out and store it was given."""
    import asyncio
    import signal

    from tickstream.scaleout import ProcessWorker, prepare_topics

    await prepare_topics(bootstrap)
    fanout = store = None
    if redis_url:
        from tickstream.bus.redis_bus import RedisBus

        fanout = RedisBus(redis_url)
        await fanout.start()
    if db_url:
        from tickstream.storage import open_store

        store = await open_store(db_url)
    worker = ProcessWorker(bootstrap, factory, fanout=fanout, store=store, **worker_kwargs)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    from tickstream.heartbeat import HeartbeatFile

    hb = HeartbeatFile(heartbeat_file, "process") if heartbeat_file else None
    if hb is not None:
        await hb.start()
    try:
        await worker.run(stop)
    finally:
        if hb is not None:
            await hb.stop()
        if fanout is not None:
            await fanout.close()
        if store is not None:
            await store.close()


def register(app: typer.Typer) -> None:
    app.command(name="process", help=HELP)(process)
