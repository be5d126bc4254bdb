"""``tickstream healthcheck``: exit 0 when healthy, 1 otherwise (for container health checks)."""

from __future__ import annotations

from pathlib import Path

import typer


def healthcheck(
    url: str | None = typer.Option(
        None, "--url", help="GET this URL (e.g. http://127.0.0.1:8000/health); healthy on 200."
    ),
    heartbeat_file: Path | None = typer.Option(
        None, "--heartbeat-file", help="A worker's heartbeat file (ingest/process)."
    ),
    max_age_secs: float = typer.Option(30.0, "--max-age-secs", help="Oldest acceptable heartbeat."),
    timeout_secs: float = typer.Option(5.0, "--timeout-secs", help="HTTP timeout."),
) -> None:
    """Check a running tickstream process: its /health endpoint or its heartbeat file."""
    if (url is None) == (heartbeat_file is None):
        typer.echo("error: give exactly one of --url or --heartbeat-file", err=True)
        raise typer.Exit(2)
    if heartbeat_file is not None:
        from tickstream.heartbeat import read_heartbeat

        ok, reason = read_heartbeat(heartbeat_file, max_age_secs)
    else:
        import httpx

        assert url is not None
        try:
            resp = httpx.get(url, timeout=timeout_secs)
            ok, reason = resp.status_code == 200, f"HTTP {resp.status_code}: {resp.text[:200]}"
        except httpx.HTTPError as exc:
            ok, reason = False, f"{type(exc).__name__}: {exc}"
    typer.echo(("healthy: " if ok else "unhealthy: ") + reason, err=not ok)
    raise typer.Exit(0 if ok else 1)


def register(app: typer.Typer) -> None:
    app.command(name="healthcheck")(healthcheck)
