"""``tickstream serve``: the stateless API/WebSocket/dashboard server of the scaled-out mode.

It reads Redis (bus fan-out and the backfill ring buffer) and PostgreSQL (history, instruments);
run N replicas behind a load balancer. ``--sim`` serves a built-in simulated market in-process
instead (no services needed), and ``--new-key read|admin`` creates an API key and exits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer


def serve(
    config: Path | None = typer.Option(None, "--config", help="TOML settings file."),
    host: str | None = typer.Option(None, "--host", help="Bind address (default 127.0.0.1)."),
    port: int | None = typer.Option(None, "--port", help="HTTP port (default 8000)."),
    sim: bool = typer.Option(False, "--sim", help="Serve a simulated market in-process."),
    new_key: str | None = typer.Option(
        None, "--new-key", help="Create an API key with this scope (read or admin), print it, exit."
    ),
    duration_secs: float | None = typer.Option(
        None, "--duration-secs", help="Stop by itself after this many seconds (tests)."
    ),
) -> None:
    """Serve REST, WebSocket, /metrics and the dashboard from Redis + PostgreSQL."""
    from tickstream.config import ConfigError, load_settings

    overrides: dict[str, Any] = {
        k: v for k, v in {"host": host, "port": port}.items() if v is not None
    }
    try:
        settings = load_settings(config, **overrides)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if new_key is not None:
        _create_key(settings, new_key)
        return
    if not sim and (settings.redis_url is None or settings.database_url is None):
        typer.echo(
            "error: tickstream serve reads Redis and PostgreSQL: set REDIS_URL and DATABASE_URL "
            "(or use `tickstream run`, or `tickstream serve --sim`)",
            err=True,
        )
        raise typer.Exit(2)
    import asyncio

    clean = asyncio.run(_main(settings, sim, duration_secs))
    raise typer.Exit(0 if clean else 1)


def _create_key(settings: Any, scope: str) -> None:
    from tickstream.serve.security import KeyStore, Scope

    if scope not in {s.value for s in Scope}:
        typer.echo("error: --new-key takes read or admin", err=True)
        raise typer.Exit(2)
    path = settings.api_key_file or settings.data_dir / "api_keys.json"
    store = KeyStore.load(path)
    scopes = [Scope.READ] if scope == "read" else [Scope.READ, Scope.ADMIN]
    key, record = store.create(scopes, name=f"cli-{scope}")
    typer.echo(key)
    typer.echo(f"created key {record.key_id} ({scope}) in {path}; it is not shown again", err=True)


async def _main(settings: Any, sim: bool, duration_secs: float | None) -> bool:
    import asyncio

    from tickstream.runtime import FunctionComponent, Runtime
    from tickstream.serve.app import create_app
    from tickstream.serve.server import HttpServer

    runtime = Runtime()
    if sim:
        from tickstream.serve.simfeed import build_sim_context

        ctx, feeder = await build_sim_context(settings)

        async def start_feed() -> None:
            feeder.start()

        runtime.add(FunctionComponent("simfeed", start_feed, feeder.stop))
        if ctx.store is not None:
            runtime.add(FunctionComponent("store", _noop, ctx.store.close))
    else:
        ctx = await _scaled_context(settings, runtime)
    runtime.add(HttpServer(create_app(ctx), settings.host, settings.port))
    until = asyncio.sleep(duration_secs) if duration_secs is not None else None
    return await runtime.run(until)


async def _noop() -> None:
    return None


async def _scaled_context(settings: Any, runtime: Any) -> Any:
    from tickstream.runtime import FunctionComponent
    from tickstream.serve.scaled import build_scaled_context

    ctx, closers = await build_scaled_context(settings)
    for name, close in closers:
        runtime.add(FunctionComponent(name, _noop, close))
    return ctx


def register(app: typer.Typer) -> None:
    app.command(name="serve", help="Serve REST, WebSocket and the dashboard (scaled mode).")(serve)
