"""``tickstream replay``: a stored day through the pipeline (or into Kafka raw_ticks), paced."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import typer

if TYPE_CHECKING:
    from tickstream.config import Settings
    from tickstream.replay import Replay, ReplaySpec
    from tickstream.storage.base import TickStore

HELP: Final = (
    "Replay a stored day for some instruments at any speed through the same pipeline as live "
    "data (normalisation, dedup, sequence tracking, candles, indicators, storage). Replayed ticks "
    "carry source=replay; ticks and candles go to --out (default <data_dir>/replay.duckdb), so "
    "live rows are never touched. Killed midway, the same command resumes from its checkpoint.\n\n"
    "Example: tickstream replay --date 2024-12-02 --symbols RELIANCE,INFY --speed 10 "
    "--from 09:15 --to 10:15"
)


def replay(
    date: str = typer.Option(..., "--date", help="IST trading date, YYYY-MM-DD."),
    symbols: str = typer.Option(..., "--symbols", help="Comma list: symbols or EXCHANGE:TOKEN."),
    speed: str = typer.Option("1", "--speed", help="1, 10, any positive number, or max."),
    start: str | None = typer.Option(None, "--from", help="Start time HH:MM IST (default 00:00)."),
    end: str | None = typer.Option(None, "--to", help="End time HH:MM IST, exclusive."),
    store_url: str | None = typer.Option(
        None, "--store", help="Store to read (default: DATABASE_URL, else the embedded DuckDB)."
    ),
    out_url: str | None = typer.Option(
        None,
        "--out",
        help="Store for replayed ticks and candles (default <data_dir>/replay.duckdb).",
    ),
    kafka: str | None = typer.Option(
        None, "--kafka", help="Produce to Kafka (bootstrap servers) instead of the local pipeline."
    ),
    topic: str = typer.Option("raw_ticks", "--topic", help="Kafka topic with --kafka."),
    replay_id: str | None = typer.Option(
        None, "--id", help="Checkpoint name (default: derived from date, symbols and range)."
    ),
    fresh: bool = typer.Option(False, "--fresh", help="Ignore an unfinished checkpoint."),
    source: str | None = typer.Option(
        None, "--source", help="Replay only this live source's rows (e.g. kite); default all."
    ),
    config: Path | None = typer.Option(None, "--config", help="TOML settings file."),
) -> None:
    """Replay a stored day."""
    import asyncio

    from tickstream.runtime import tune_gc

    settings, day, span, pace, names = _parse(config, date, start, end, speed, symbols)
    rid = replay_id or _default_id(day, names, start, end, source)
    args: dict[str, Any] = {"store_url": store_url, "out_url": out_url, "kafka": kafka}
    args["topic"] = topic
    args["sources"] = frozenset(s.strip() for s in source.split(",")) if source else None
    tune_gc()  # the replay drives the same pipeline as `tickstream run`
    try:
        typer.echo(asyncio.run(_main(settings, names, span, pace, rid, fresh, args)))
    except KeyboardInterrupt:
        typer.echo(f"replay {rid} interrupted; run the same command to resume", err=True)
        raise typer.Exit(130) from None


def _parse(
    config: Path | None, date: str, start: str | None, end: str | None, speed: str, symbols: str
) -> tuple[Settings, dt.date, tuple[int, int], float | None, list[str]]:
    from tickstream.config import ConfigError, load_settings
    from tickstream.replay import day_range, parse_speed

    try:
        settings = load_settings(config)
        day = dt.date.fromisoformat(date)
        span = day_range(day, start, end)
        pace = parse_speed(speed)
    except (ConfigError, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from None
    names = [s.strip() for s in symbols.split(",") if s.strip()]
    if not names:
        raise typer.BadParameter("no symbols given", param_hint="--symbols")
    return settings, day, span, pace, names


def _default_id(
    day: dt.date, names: list[str], start: str | None, end: str | None, source: str | None
) -> str:
    import hashlib

    what = ",".join(sorted(n.upper() for n in names)) + f"|{start}|{end}|{source}"
    return f"{day.isoformat()}-{hashlib.blake2b(what.encode(), digest_size=5).hexdigest()}"


async def _main(
    settings: Settings,
    names: list[str],
    span: tuple[int, int],
    speed: float | None,
    rid: str,
    fresh: bool,
    args: dict[str, Any],
) -> str:
    from tickstream.replay import ReplaySpec, resolve_instruments
    from tickstream.sim.universe import default_universe
    from tickstream.storage import create_store

    store = create_store(args["store_url"] or settings)
    await store.open()
    try:
        try:
            insts = await resolve_instruments(store, names, default_universe())
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--symbols") from None
        spec = ReplaySpec(tuple(insts), span[0], span[1], speed=speed, sources=args["sources"])
        rep = _replay(store, spec, settings.data_dir, rid, fresh)
        if args["kafka"]:
            return await _to_kafka(rep, args["kafka"], args["topic"])
        return await _to_pipeline(rep, settings, args["out_url"])
    finally:
        await store.close()


def _replay(store: TickStore, spec: ReplaySpec, data_dir: Path, rid: str, fresh: bool) -> Replay:
    from tickstream.replay import Replay, checkpoint_path, load_checkpoint

    path = checkpoint_path(data_dir, rid)
    previous = load_checkpoint(path) if path.exists() else None
    if previous is not None and (fresh or previous.done):
        path.unlink()  # a finished replay runs again from the start (idempotent rows)
    return Replay(store, spec, replay_id=rid, checkpoint=path)


async def _to_pipeline(rep: Replay, settings: Settings, out_url: str | None) -> str:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from tickstream.assembly import engine_config
    from tickstream.replay.pipeline import replay_through_pipeline
    from tickstream.storage import create_store

    out = create_store(out_url or str(settings.data_dir / "replay.duckdb"))
    await out.open()
    span = rep.spec.end_ns - rep.spec.start_ns
    try:
        with Progress(
            TextColumn("replay {task.description}"), BarColumn(), TextColumn("{task.fields[n]}"),
            TimeElapsedColumn(), transient=False,
        ) as bar:  # fmt: skip
            task = bar.add_task(rep.replay_id or "", total=span, n="0 ticks")

            def progress(r: Replay) -> None:
                done = (r.position_ns or r.spec.start_ns) - r.spec.start_ns
                bar.update(task, completed=span if r.done else done, n=f"{r.emitted} ticks")

            result = await replay_through_pipeline(
                rep, out, engine_config(settings), on_progress=progress
            )
    finally:
        await out.close()
    return _summary_text(rep, result.summary.wall_secs, result.published, result.tick_rows_inserted)


async def _to_kafka(rep: Replay, bootstrap: str, topic: str) -> str:
    from confluent_kafka.admin import AdminClient

    from tickstream.bus.kafka_bus import SCALEOUT_PARTITIONS, KafkaProducer, ensure_topics
    from tickstream.replay import replay_into_kafka

    # Created like `tickstream ingest` creates it when missing (6 partitions, key = instrument).
    await ensure_topics(AdminClient({"bootstrap.servers": bootstrap}), {topic: SCALEOUT_PARTITIONS})
    producer = KafkaProducer(bootstrap, source="replay")
    summary = await replay_into_kafka(rep, producer, topic=topic)
    return _summary_text(rep, summary.wall_secs, {topic: summary.emitted}, None)


def _summary_text(
    rep: Replay, wall_secs: float, published: dict[str, int], inserted: int | None
) -> str:
    from tickstream.calendar import ist_datetime

    s = rep.summary(wall_secs)
    first = ist_datetime(s.first_ts).strftime("%H:%M:%S") if s.first_ts else "-"
    last = ist_datetime(s.last_ts).strftime("%H:%M:%S") if s.last_ts else "-"
    lines = [
        f"replay {s.replay_id}: {s.emitted} ticks, {first} .. {last} IST, {wall_secs:.2f} s"
        + (" (resumed)" if s.resumed else ""),
        "published: " + ", ".join(f"{k}={v}" for k, v in sorted(published.items())),
    ]
    if inserted is not None:
        lines.append(f"new tick rows: {inserted}")
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    app.command(name="replay", help=HELP)(replay)
