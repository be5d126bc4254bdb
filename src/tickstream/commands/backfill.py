"""``tickstream backfill``: historical candles into the store, with a progress bar, resumable.

``--source auto`` uses a configured broker (Kite, else Angel One) and falls back to Yahoo Finance
(``.NS`` symbols, optional ``yfinance`` extra) for what the broker cannot serve; without broker
credentials it uses the simulator's deterministic history. ``--from``/``--to`` are IST dates, both
inclusive. Rerunning the same command skips the chunks already stored (``--state``).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    import httpx

    from tickstream.config import Settings
    from tickstream.feeds.history import HistorySource
    from tickstream.model import Instrument


def backfill(
    date_from: str = typer.Option(..., "--from", help="First IST date, YYYY-MM-DD."),
    date_to: str = typer.Option(..., "--to", help="Last IST date (inclusive), YYYY-MM-DD."),
    interval: str = typer.Option("1m", "--interval", help="1m, 5m, 15m, 1h or 1d."),
    symbols: str = typer.Option(
        ..., "--symbols", help="Comma-separated symbols, e.g. RELIANCE,INFY."
    ),
    source: str = typer.Option("auto", "--source", help="auto, sim, kite or angelone."),
    db: Path | None = typer.Option(
        None, "--db", help="DuckDB file (default DATA_DIR/tickstream.duckdb)."
    ),
    state: Path | None = typer.Option(
        None, "--state", help="Resume file (default DATA_DIR/backfill-state.json)."
    ),
    fallback: bool = typer.Option(
        True, "--fallback/--no-fallback", help="Use yfinance when the broker fails."
    ),
    config: Path | None = typer.Option(None, "--config", help="TOML settings file."),
) -> None:
    """Fetch candles for SYMBOLS between two dates into the store (resumable)."""
    import asyncio

    settings, ivl, start, end = _arguments(config, interval, date_from, date_to)
    wanted = [s.strip() for s in symbols.split(",") if s.strip()]
    code = asyncio.run(
        _run(
            settings, wanted, ivl, start, end, source=source, db=db, state=state, fallback=fallback
        )
    )
    raise typer.Exit(code)


def _arguments(
    config: Path | None, interval: str, date_from: str, date_to: str
) -> tuple[Settings, Any, dt.date, dt.date]:
    from tickstream.config import ConfigError, load_settings
    from tickstream.model import Interval

    try:
        settings = load_settings(config)
        ivl = Interval.parse(interval)
        start, end = _day(date_from), _day(date_to) + dt.timedelta(days=1)
    except (ConfigError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if end <= start:
        typer.echo("error: --to is before --from", err=True)
        raise typer.Exit(2)
    return settings, ivl, start, end


def _day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not a date (YYYY-MM-DD): {text!r}") from None


async def _run(
    settings: Settings, wanted: list[str], interval: Any, start: dt.date, end: dt.date, *,
    source: str, db: Path | None, state: Path | None, fallback: bool,
) -> int:  # fmt: skip
    import httpx

    from tickstream.calendar import ist_midnight_ns
    from tickstream.feeds.backfill import BackfillPlan
    from tickstream.feeds.base import AuthError
    from tickstream.feeds.history import HistoryError

    kind = settings.resolved_feed() if source == "auto" else source
    async with httpx.AsyncClient(timeout=30.0) as client:
        try:
            primary, instruments = await _source(kind, settings, client, wanted)
        except (AuthError, HistoryError, ValueError) as exc:
            typer.echo(f"error: {exc}", err=True)
            return 2
        if not instruments:
            typer.echo("error: none of the symbols is known", err=True)
            return 2
        plan = BackfillPlan(instruments, interval, ist_midnight_ns(start), ist_midnight_ns(end))
        data_dir = settings.data_dir
        return await _execute(
            plan, primary, fallback and kind != "sim", db or data_dir / "tickstream.duckdb",
            state or data_dir / "backfill-state.json",
        )  # fmt: skip


async def _source(
    kind: str, settings: Settings, client: httpx.AsyncClient, wanted: list[str]
) -> tuple[HistorySource, list[Instrument]]:
    from tickstream.feeds.instruments import InstrumentManager

    manager = InstrumentManager()
    primary: HistorySource
    if kind == "sim":
        from tickstream.feeds.fallback import SimHistory
        from tickstream.sim.universe import load_universe

        primary, records = SimHistory(), load_universe()
    elif kind == "kite":
        from tickstream.feeds.kite.auth import KiteAuth
        from tickstream.feeds.kite.history import KiteHistory
        from tickstream.feeds.kite.instruments import fetch_kite_instruments

        kite = KiteAuth.from_settings(settings, client=client)
        manager.load_kite(await fetch_kite_instruments(kite, client=client))
        primary, records = KiteHistory(kite, client=client), manager.all_records()
    elif kind == "angelone":
        from tickstream.feeds.angelone.auth import AngelAuth
        from tickstream.feeds.angelone.history import AngelHistory
        from tickstream.feeds.angelone.instruments import fetch_scrip_master

        angel = AngelAuth.from_settings(settings, client=client)
        manager.load_angel(await fetch_scrip_master(client=client))
        primary, records = AngelHistory(angel, client=client), manager.all_records()
    else:
        raise ValueError(f"unknown source {kind!r}; expected auto, sim, kite or angelone")
    return primary, _pick(records, wanted)


def _pick(records: list[Instrument], wanted: list[str]) -> list[Instrument]:
    by_symbol: dict[str, Instrument] = {}
    for inst in records:
        if inst.exchange in ("NSE", "INDICES") or inst.symbol.upper() not in by_symbol:
            by_symbol.setdefault(inst.symbol.upper(), inst)
    missing = [s for s in wanted if s.upper() not in by_symbol]
    if missing:
        typer.echo(f"warning: unknown symbols skipped: {', '.join(missing)}", err=True)
    return [by_symbol[s.upper()] for s in wanted if s.upper() in by_symbol]


async def _execute(plan: Any, primary: HistorySource, fallback: bool, db: Path, state: Path) -> int:
    from rich.progress import Progress

    from tickstream.feeds.backfill import run_backfill
    from tickstream.feeds.fallback import YFinanceHistory
    from tickstream.feeds.history import HistoryService
    from tickstream.storage.duckdb_store import DuckDBStore

    service = HistoryService(primary, YFinanceHistory() if fallback else None)
    db.parent.mkdir(parents=True, exist_ok=True)
    store = DuckDBStore(db)
    await store.open()
    try:
        with Progress(transient=False) as bar:
            task = bar.add_task("backfill", total=None)

            def progress(done: int, total: int, symbol: str) -> None:
                bar.update(task, completed=done, total=total, description=f"backfill {symbol}")

            result = await run_backfill(plan, service, store, state_path=state, progress=progress)
    finally:
        await store.close()
    typer.echo(
        f"backfilled {result.candles} candles in {result.units} chunks "
        f"({result.skipped} already done, {len(result.failed)} failed) into {db}"
    )
    if service.excluded:
        typer.echo(
            f"excluded (no source could serve them): {', '.join(sorted(set(service.excluded)))}"
        )
    if result.fell_back:
        typer.echo(f"served by the fallback: {', '.join(result.fell_back)}")
    return 1 if result.failed else 0


def register(app: typer.Typer) -> None:
    app.command(name="backfill", help="Historical candles into the store (resumable).")(backfill)
