"""``tickstream archive``: copy one IST day of ticks from the store to Parquet (local or S3)."""

from __future__ import annotations

import datetime as dt
import os

import typer


def archive(
    date: str = typer.Option(..., "--date", help="IST trading date to archive, YYYY-MM-DD."),
    to: str | None = typer.Option(
        None, "--to", help="s3://bucket/prefix or a directory (default: the store's archive dir)."
    ),
    exchange: str | None = typer.Option(None, "--exchange", help="Only this exchange."),
    delete: bool = typer.Option(
        False, "--delete", help="Delete the day from the hot store after archiving it."
    ),
    store_url: str | None = typer.Option(
        None, "--store", help="Store URL (default: DATABASE_URL, else the embedded DuckDB)."
    ),
    s3_endpoint: str | None = typer.Option(
        None, "--s3-endpoint", help="S3-compatible endpoint URL (default: AWS_ENDPOINT_URL)."
    ),
) -> None:
    """Archive a day to zstd Parquet partitioned by exchange/date/kind."""
    import asyncio

    try:
        day = dt.date.fromisoformat(date)
    except ValueError:
        raise typer.BadParameter(f"not a date: {date!r}", param_hint="--date") from None
    endpoint = s3_endpoint or os.environ.get("AWS_ENDPOINT_URL")
    result = asyncio.run(_archive(day, to, exchange, delete, store_url, endpoint))
    typer.echo(result)


async def _archive(
    day: dt.date,
    to: str | None,
    exchange: str | None,
    delete: bool,
    store_url: str | None,
    endpoint: str | None,
) -> str:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from tickstream.calendar import ist_midnight_ns
    from tickstream.storage import create_store
    from tickstream.storage.archive import archive_day, open_target

    store = create_store(store_url)
    dest = to if to is not None else getattr(store, "archive_dir", None)
    if dest is None:
        raise typer.BadParameter("this store has no default archive; pass --to", param_hint="--to")
    target = open_target(dest, endpoint_url=endpoint)
    await store.open()
    try:
        with Progress(
            TextColumn("[bold]archive {task.description}"),
            BarColumn(),
            TextColumn("{task.completed:,} ticks"),
            TimeElapsedColumn(),
        ) as progress:
            task = progress.add_task(day.isoformat(), total=None)
            res = await archive_day(
                store,
                day,
                target,
                exchange=exchange,
                on_progress=lambda n: progress.advance(task, n),
            )
        deleted = 0
        if delete and res.rows:
            start, end = ist_midnight_ns(day), ist_midnight_ns(day + dt.timedelta(days=1))
            deleted = await store.delete_ticks(start, end, exchange=exchange)
    finally:
        await store.close()
    summary = f"archived {res.rows} ticks of {day} to {target.uri} in {len(res.files)} file(s)"
    return summary + (f"; deleted {deleted} from the hot store" if delete else "")


def register(app: typer.Typer) -> None:
    app.command(name="archive", help="Archive one day of ticks to Parquet (local or S3).")(archive)
