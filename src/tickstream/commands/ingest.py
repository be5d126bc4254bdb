"""``tickstream ingest``: feed -> Kafka ``raw_ticks`` (key = exchange:token, enveloped JSON)."""

from __future__ import annotations

import os
from typing import Final

import typer

HELP: Final = (
    "Publish ticks from a feed to Kafka raw_ticks (one per broker connection shard). "
    "--source sim runs the built-in simulated market; the broker feeds plug into the same hook "
    "(tickstream.scaleout.run_ingest takes any async iterator of tick batches).\n\n"
    "Example: tickstream ingest --source sim --kafka 127.0.0.1:9093 --max-ticks 10000"
)


def ingest(
    source: str = typer.Option("sim", help="Tick source: sim (broker feeds: later issue)."),
    kafka: str = typer.Option(
        "", help="Kafka bootstrap servers (default: $KAFKA_BOOTSTRAP or 127.0.0.1:9092)."
    ),
    topic: str = typer.Option("raw_ticks", help="Destination topic."),
    partitions: int = typer.Option(6, help="Partitions when the topic has to be created."),
    seed: int = typer.Option(0, help="Simulator seed."),
    speed: float = typer.Option(1.0, help="Simulator speed (exchange seconds per real second)."),
    max_ticks: int = typer.Option(0, help="Stop after this many ticks (0 = run until Ctrl-C)."),
) -> None:
    import asyncio

    from tickstream.bus.kafka_bus import KafkaProducer, ensure_topics
    from tickstream.scaleout import run_ingest, sim_source

    if source != "sim":
        raise typer.BadParameter(f"unknown source {source!r}; available: sim", param_hint="source")
    bootstrap = kafka or os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092")

    async def main() -> int:
        from confluent_kafka.admin import AdminClient

        await ensure_topics(AdminClient({"bootstrap.servers": bootstrap}), {topic: partitions})
        producer = KafkaProducer(bootstrap, source=f"ingest-{source}")
        ticks = sim_source(seed=seed, speed=speed)
        return await run_ingest(ticks, producer, topic=topic, max_ticks=max_ticks or None)

    try:
        sent = asyncio.run(main())
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    typer.echo(f"ingested {sent} ticks into {topic}")


def register(app: typer.Typer) -> None:
    app.command(name="ingest", help=HELP)(ingest)
