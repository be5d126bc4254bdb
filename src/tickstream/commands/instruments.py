"""``tickstream instruments load|search|show``: the cross-referenced instrument masters.

Masters come from ``--kite`` (instruments CSV dumps), ``--angel`` (scrip master JSON) and
``--universe`` (NSE's Nifty 500 CSV); with none given, the simulator's bundled universe is used.
``load`` reports what was cross-referenced (and optionally upserts it into the DuckDB store).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from tickstream.feeds.instruments import InstrumentManager
    from tickstream.model import Instrument

_KITE = typer.Option([], "--kite", help="Kite instruments CSV (repeatable).")
_ANGEL = typer.Option(None, "--angel", help="Angel scrip master JSON.")
_UNIVERSE = typer.Option(None, "--universe", help="NSE Nifty 500 list CSV.")

group = typer.Typer(help="Instrument masters: load, search, show.", no_args_is_help=True)


def _manager(kite: list[Path], angel: Path | None, universe: Path | None) -> InstrumentManager:
    from tickstream.feeds.instruments import InstrumentManager, MasterError

    manager = InstrumentManager()
    try:
        if kite or angel or universe:
            manager.load_files(universe=universe, angel=angel, kite=kite)
        else:
            import msgspec

            from tickstream.sim.angel_rest import angel_scrip
            from tickstream.sim.kite_rest import kite_instruments_csv
            from tickstream.sim.universe import load_universe

            sim = load_universe()
            manager.load_kite(kite_instruments_csv(sim))
            scrips = [angel_scrip(i) for i in sim if i.angel_token is not None]
            manager.load_angel(msgspec.json.encode(scrips))
    except (MasterError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    return manager


def _line(i: Instrument) -> str:
    return (
        f"{i.exchange}:{i.token}\t{i.symbol}\tkite={i.kite_token or '-'}\t"
        f"angel={i.angel_token or '-'}\t{i.instrument_type or '-'}\t{i.name or ''}"
    )


@group.command("load")
def load(
    kite: list[Path] = _KITE, angel: Path | None = _ANGEL, universe: Path | None = _UNIVERSE,
    db: Path | None = typer.Option(None, "--db", help="Also upsert into this DuckDB file."),
) -> None:  # fmt: skip
    """Load and cross-reference the masters; report counts and missing symbols."""
    manager = _manager(kite, angel, universe)
    r = manager.report
    typer.echo(
        f"kite {r.kite}, angel {r.angel}, cross-referenced {r.merged}, universe {r.universe}"
    )
    for label, names in (("not in Kite", r.missing_kite), ("not in Angel", r.missing_angel),
                         ("excluded", r.excluded)):  # fmt: skip
        if names:
            typer.echo(f"{label} ({len(names)}): {', '.join(names)}")
    if db is not None:
        import asyncio

        typer.echo(f"stored {asyncio.run(_store(db, manager.instruments()))} instruments in {db}")


async def _store(db: Path, instruments: list[Instrument]) -> int:
    from tickstream.storage.duckdb_store import DuckDBStore

    store = DuckDBStore(db)
    await store.open()
    try:
        return await store.upsert_instruments(instruments)
    finally:
        await store.close()


@group.command("search")
def search(
    query: str = typer.Argument(..., help="Symbol or name prefix, or a misspelling."),
    limit: int = typer.Option(10, "--limit"),
    kite: list[Path] = _KITE, angel: Path | None = _ANGEL, universe: Path | None = _UNIVERSE,
) -> None:  # fmt: skip
    """Prefix then fuzzy search over symbols and names."""
    found = _manager(kite, angel, universe).search(query, limit)
    if not found:
        typer.echo(f"no instrument matches {query!r}", err=True)
        raise typer.Exit(1)
    for inst in found:
        typer.echo(_line(inst))


@group.command("show")
def show(
    symbol: str = typer.Argument(...),
    exchange: str | None = typer.Option(None, "--exchange"),
    kite: list[Path] = _KITE, angel: Path | None = _ANGEL, universe: Path | None = _UNIVERSE,
) -> None:  # fmt: skip
    """Every field of one instrument, as JSON."""
    from tickstream.model import encode_json

    inst = _manager(kite, angel, universe).get_instrument(symbol, exchange)
    if inst is None:
        typer.echo(f"unknown instrument {symbol!r}", err=True)
        raise typer.Exit(1)
    typer.echo(encode_json(inst).decode())


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="instruments")
