"""``tickstream run``: every stage in one process with embedded defaults; production code path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer


def run(
    config: Path | None = typer.Option(None, "--config", help="TOML settings file."),
    host: str | None = typer.Option(None, "--host", help="HTTP bind address (default 127.0.0.1)."),
    port: int | None = typer.Option(None, "--port", help="HTTP port (default 8000)."),
    duration_secs: float | None = typer.Option(
        None, "--duration-secs", help="Stop by itself after this many seconds (demos, tests)."
    ),
) -> None:
    """Run everything in one process: feed, pipeline, storage, dashboard; Ctrl-C stops cleanly.

    The feed is the built-in exchange simulator unless broker credentials are configured.
    """
    import asyncio
    import logging

    from tickstream.assembly import build_runtime
    from tickstream.config import ConfigError, load_settings

    overrides: dict[str, Any] = {
        k: v for k, v in {"host": host, "port": port}.items() if v is not None
    }
    try:
        settings = load_settings(config, **overrides)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    log = logging.getLogger("tickstream.run")
    log.info("configuration: %s", settings.describe())

    async def main() -> bool:
        runtime = await build_runtime(settings)
        until = asyncio.sleep(duration_secs) if duration_secs is not None else None
        return await runtime.run(until)

    clean = asyncio.run(main())
    raise typer.Exit(0 if clean else 1)


def register(app: typer.Typer) -> None:
    app.command(name="run")(run)
