"""``tickstream check``: did we store every tick the broker sent, exactly once, unaltered?

Reads the simulator's emission log (``tickstream sim --emission-log FILE``, or
``TICKSTREAM_SIM_EMISSION_LOG`` for ``tickstream run``), the stored ticks and
candles of the configured store (DuckDB under the data dir, or ``--database-url``) and the
quarantine files, and prints the verdict of :mod:`tickstream.checker`. Exit 0 when nothing is
missing, duplicated or altered and every candle matches a resample of the stored ticks, 1
otherwise, 2 on bad usage. The I/O helpers here are also what the fault suite uses.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from tickstream.checker import CheckReport, EmittedTick
    from tickstream.config import Settings
    from tickstream.model import Candle, Interval, Tick
    from tickstream.storage.base import TickStore

__all__ = [
    "load_stored",
    "parse_time",
    "read_emissions",
    "read_quarantined",
    "register",
    "run_check",
]

_END = 2**62


def parse_time(text: str) -> int:
    """Epoch ns from an integer, or from ISO 8601 (no offset, or ``HH:MM`` alone, means IST)."""
    from tickstream.calendar import ist_date, ist_ns

    text = text.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        if len(text) <= 8 and ":" in text:  # a time of day: today in IST
            t = dt.time.fromisoformat(text)
            today = ist_date(time.time_ns())
            return ist_ns(today, t.hour, t.minute, t.second)
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not a time: {text!r} (epoch ns, ISO 8601 or HH:MM IST)") from None
    if when.tzinfo is None:
        return ist_ns(when.date(), when.hour, when.minute, when.second) + when.microsecond * 1000
    return int(when.timestamp()) * 1_000_000_000 + when.microsecond * 1000


def read_emissions(path: Path, since_ns: int = 0, until_ns: int = _END) -> list[EmittedTick]:
    """The Kite emissions of a JSONL emission log, as the wire delivers them, within the range."""
    import msgspec

    from tickstream.checker import emitted_ticks
    from tickstream.sim.server import Emission

    decoder = msgspec.json.Decoder(Emission)
    with path.open("rb") as fh:
        emissions = [decoder.decode(line) for line in fh if line.strip()]
    kite = [e for e in emissions if e.conn_id.startswith("kite")]
    return [e for e in emitted_ticks(kite) if since_ns <= e.tick.ts_exchange < until_ns]


def read_quarantined(directory: Path) -> list[Tick]:
    """Every tick in the quarantine files of ``directory`` (none when it does not exist)."""
    from tickstream.quarantine import read_quarantine

    if not directory.is_dir():
        return []
    return [q.tick for f in sorted(directory.glob("*.msgpack")) for q in read_quarantine(f)]


async def load_stored(
    store: TickStore, intervals: Iterable[Interval], since_ns: int = 0, until_ns: int = _END
) -> tuple[list[Tick], list[Candle]]:
    """Stored ticks in ``[since, until)`` and the candles of their instruments in that range."""
    ticks: list[Tick] = []
    async for batch in store.scan_ticks(since_ns, until_ns):
        ticks.extend(batch)
    candles: list[Candle] = []
    for exchange, token in sorted({(t.exchange, t.token) for t in ticks}):
        for iv in intervals:
            candles.extend(await store.query_candles(exchange, token, iv, since_ns, until_ns))
    return ticks, candles


async def run_check(
    store: TickStore,
    emitted: Sequence[EmittedTick],
    *,
    intervals: Sequence[Interval],
    quarantined: Sequence[Tick] = (),
    lossy_connections: Iterable[str] = (),
    since_ns: int = 0,
    until_ns: int = _END,
) -> CheckReport:
    """The checker's verdict on an open store (ticks and candles in the range)."""
    from tickstream.checker import CheckReport, check_candles, check_ticks

    stored, candles = await load_stored(store, intervals, since_ns, until_ns)
    ticks = check_ticks(
        emitted, stored, quarantined=quarantined, lossy_connections=lossy_connections
    )
    newest = max((t.ts_exchange for t in stored), default=since_ns)
    closed_by = min(until_ns, newest - max((iv.nanos for iv in intervals), default=0))
    report = check_candles(stored, candles, intervals, since_ns=since_ns, until_ns=closed_by)
    return CheckReport(ticks, report)


def check(
    since: str = typer.Option(..., "--since", help="From (epoch ns, ISO 8601, or HH:MM IST)."),
    until: str | None = typer.Option(None, "--until", help="Up to (exclusive); default: all."),
    emission_log: Path = typer.Option(
        ...,
        "--emission-log",
        help="The simulator's JSONL emission log (`tickstream sim --emission-log FILE`, or "
        "TICKSTREAM_SIM_EMISSION_LOG for `tickstream run`).",
    ),
    database_url: str | None = typer.Option(
        None, "--database-url", help="PostgreSQL URL (default: DATABASE_URL, else DuckDB)."
    ),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="DuckDB and quarantine dir."),
    strict: bool = typer.Option(
        False, "--strict", help="Count a connection's undelivered tail as missing too."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the whole report as JSON."),
) -> None:
    """Compare what the simulator emitted with what was stored: missing, duplicated and altered
    ticks, and candles that differ from a resample of the stored ticks."""
    import asyncio

    settings, since_ns, until_ns = _inputs(database_url, data_dir, since, until, emission_log)
    emitted = read_emissions(emission_log, since_ns, until_ns)
    lossy = () if strict else {e.conn_id for e in emitted}
    quarantined = read_quarantined(settings.data_dir / "quarantine")

    async def main() -> CheckReport:
        from tickstream.storage import create_store

        store = create_store(settings)
        await store.open()
        try:
            return await run_check(
                store, emitted, intervals=settings.candle_intervals, quarantined=quarantined,
                lossy_connections=lossy, since_ns=since_ns, until_ns=until_ns,
            )  # fmt: skip
        finally:
            await store.close()

    report = asyncio.run(main())
    _print(report, as_json)
    raise typer.Exit(0 if report.ok else 1)


def _inputs(
    database_url: str | None, data_dir: Path | None, since: str, until: str | None, log: Path
) -> tuple[Settings, int, int]:
    """Settings and the time range from the options; exit 2 on bad usage."""
    from tickstream.config import ConfigError, load_settings

    overrides: dict[str, Any] = {"database_url": database_url, "data_dir": data_dir}
    try:
        settings = load_settings(None, **{k: v for k, v in overrides.items() if v is not None})
        since_ns = parse_time(since)
        until_ns = parse_time(until) if until is not None else _END
    except (ConfigError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if not log.is_file():
        typer.echo(f"error: no emission log at {log}", err=True)
        raise typer.Exit(2)
    return settings, since_ns, until_ns


def _print(report: CheckReport, as_json: bool) -> None:
    import json

    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        return
    t = report.ticks
    typer.echo(
        f"ticks: emitted {t.emitted} ({t.emitted_distinct} distinct), stored {t.stored}; "
        f"missing {t.missing}, duplicated {t.duplicated}, altered {t.altered}; "
        f"undelivered {t.undelivered}, quarantined {t.quarantined}, unexpected {t.unexpected}"
    )
    c = report.candles
    if c is not None:
        typer.echo(
            f"candles: compared {c.compared}; missing {c.missing}, extra {c.extra}, "
            f"differing {c.differing}; flagged {c.flagged}"
        )
    for s in (*t.samples, *(c.samples if c is not None else ())):
        typer.echo(f"  {s.kind}: {s.exchange}:{s.token} ts={s.ts_exchange} {s.detail}".rstrip())
    typer.echo("OK" if report.ok else "DEFECTS FOUND")


def register(app: typer.Typer) -> None:
    app.command(name="check", help="End-to-end check: emitted vs stored ticks and candles.")(check)
