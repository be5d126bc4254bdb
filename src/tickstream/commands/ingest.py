"""``tickstream ingest``: feed -> Kafka ``raw_ticks`` (key = exchange:token, enveloped JSON)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Final

import typer

HELP: Final = (
    "Publish ticks from a feed to Kafka raw_ticks (one per broker connection shard). "
    "--source feed (the default) runs the configured feed client: Kite or Angel One when their "
    "credentials are set, else the built-in simulator over its real wire protocol; "
    "--source sim steps the simulated market directly (no sockets).\n\n"
    "Example: tickstream ingest --kafka 127.0.0.1:9093 --max-ticks 10000"
)


def ingest(
    source: str = typer.Option("feed", help="feed (configured feed client) or sim (direct)."),
    kafka: str = typer.Option(
        "", help="Kafka bootstrap servers (default: $KAFKA_BOOTSTRAP or 127.0.0.1:9092)."
    ),
    topic: str = typer.Option("raw_ticks", help="Destination topic."),
    partitions: int = typer.Option(6, help="Partitions when the topic has to be created."),
    seed: int = typer.Option(0, help="Simulator seed."),
    speed: float = typer.Option(1.0, help="Simulator speed (exchange seconds per real second)."),
    max_ticks: int = typer.Option(0, help="Stop after this many ticks (0 = run until Ctrl-C)."),
    heartbeat_file: Path | None = typer.Option(
        None, help="Write a heartbeat file for `tickstream healthcheck --heartbeat-file`."
    ),
) -> None:
    import asyncio

    from tickstream.bus.kafka_bus import KafkaProducer, ensure_topics
    from tickstream.scaleout import run_ingest, sim_source

    if source not in ("feed", "sim"):
        raise typer.BadParameter(f"unknown source {source!r}; expected feed or sim")
    bootstrap = kafka or os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092")

    async def main() -> int:
        from confluent_kafka.admin import AdminClient

        from tickstream.heartbeat import HeartbeatFile

        await ensure_topics(AdminClient({"bootstrap.servers": bootstrap}), {topic: partitions})
        producer = KafkaProducer(bootstrap, source=f"ingest-{source}")
        hb = HeartbeatFile(heartbeat_file, "ingest") if heartbeat_file else None
        if hb is not None:
            await hb.start()
        try:
            if source == "sim":
                ticks = sim_source(seed=seed, speed=speed)
                return await run_ingest(ticks, producer, topic=topic, max_ticks=max_ticks or None)
            return await _from_feed(producer, topic, max_ticks or None, seed)
        finally:
            if hb is not None:
                await hb.stop()

    try:
        sent = asyncio.run(main())
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    typer.echo(f"ingested {sent} ticks into {topic}")


async def _from_feed(producer: Any, topic: str, max_ticks: int | None, seed: int) -> int:
    """The configured feed client (a broker, or the simulator over its real wire protocol)."""
    from tickstream.assembly import select_instruments
    from tickstream.config import load_settings
    from tickstream.feeds.factory import build_feed
    from tickstream.model import Mode
    from tickstream.scaleout import feed_source, run_ingest

    settings = load_settings()
    sim = None
    if settings.resolved_feed() == "sim":
        from tickstream.sim.server import SimConfig, SimServer

        sim = SimServer(SimConfig(seed=seed, tick_interval_ms=settings.sim_tick_interval_ms))
        await sim.start()
        universe = list(sim.market.instruments)
    else:
        from tickstream.sim.universe import default_universe

        universe = default_universe()
    feed = build_feed(settings, sim)
    await feed.start()
    try:
        await feed.subscribe(select_instruments(universe, settings.symbols), Mode.FULL)
        return await run_ingest(feed_source(feed), producer, topic=topic, max_ticks=max_ticks)
    finally:
        await feed.stop()
        if sim is not None:
            await sim.stop()


def register(app: typer.Typer) -> None:
    app.command(name="ingest", help=HELP)(ingest)
