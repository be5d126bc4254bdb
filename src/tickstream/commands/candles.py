"""``tickstream candles``: build OHLCV candles from a file of ticks, with the pipeline's builder.

Input (FILE, or ``-`` for stdin) is detected from its first non-blank character:

* ``{``: JSON lines, one canonical :class:`~tickstream.model.Tick` per line (as the bus and the
  stores encode them); each tick keeps its own exchange, token and volume.
* anything else: CSV with a header (names case-insensitive, any order, extra columns ignored):
  ``ts`` (or ``timestamp``, ``time``, ``datetime``, ``date``), ``symbol``, ``ltp`` (or
  ``price``, ``last_price``), and ``volume`` = the *cumulative* day volume. A file without a
  cumulative column may give ``ltq`` (or ``qty``, ``quantity``) instead: it is summed here, per
  symbol, into a cumulative volume from 0 (so every quantity lands in a candle) before the
  builder sees it (the builder itself never sums quantities). A file with neither (an index,
  like NIFTY 50, has no volume) gives candles with volume 0. Optional: ``token`` (else tokens
  are numbered by first appearance of each symbol), ``exchange`` (else ``--exchange``), ``oi``.

Timestamps are parsed as by ``tickstream indicators``: an integer is epoch s/ms/us/ns chosen by
its size, a decimal is epoch seconds, otherwise ISO-8601 with a UTC offset (a time without an
offset is rejected, never guessed).

Every row goes through the same :class:`~tickstream.pipeline.engine.PipelineEngine` (validation,
dedup, the same :class:`~tickstream.pipeline.candles.CandleBuilder`) with ``ts_recv`` equal to
the row's time. Output CSV on stdout: ``ts`` (bucket start, IST ISO-8601), symbol, open, high,
low, close, volume, ticks, partial, incomplete; one row per closed candle with any late-tick
revision applied. A summary goes to stderr.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Final, TextIO

import typer

if TYPE_CHECKING:
    from tickstream.model import Candle, Tick
    from tickstream.pipeline.engine import EngineOutput

HELP: Final = (
    "Build candles from ticks (CSV or JSON lines; FILE or - for stdin) and write a candles CSV "
    "to stdout.\n\n"
    "CSV columns: ts (ISO-8601 with offset, or epoch s/ms/us/ns), symbol, ltp, volume "
    "(cumulative) or ltq (neither: volume 0, as for indices); optional token, exchange, oi. "
    "Candles align to the IST session open; ticks outside the session make none.\n\n"
    "Example: tickstream candles --interval 5m --exchange NSE ticks.csv > candles_5m.csv"
)
OUTPUT_COLUMNS: Final = (
    "ts",
    "symbol",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "ticks",
    "partial",
    "incomplete",
)
LTQ_SOURCE: Final = "file:ltq"  # rows whose volume was summed here from 0
_ALIASES: Final = {
    "ts": ("ts", "timestamp", "time", "datetime", "date"),
    "symbol": ("symbol", "tradingsymbol"),
    "ltp": ("ltp", "price", "last_price"),
    "volume": ("volume",),
    "ltq": ("ltq", "qty", "quantity"),
    "token": ("token", "instrument_token"),
    "exchange": ("exchange",),
    "oi": ("oi",),
}


def _columns(header: list[str]) -> dict[str, int]:
    lower = [h.strip().lower() for h in header]
    found: dict[str, int] = {}
    for name, aliases in _ALIASES.items():
        for alias in aliases:
            if alias in lower:
                found[name] = lower.index(alias)
                break
    missing = [n for n in ("ts", "symbol", "ltp") if n not in found]
    if missing:
        raise ValueError(f"CSV header lacks required column(s): {', '.join(missing)}")
    return found


def csv_ticks(lines: Iterable[str], exchange: str) -> Iterator[Tick]:
    """Canonical ticks from CSV rows (see the module docstring)."""
    from tickstream.commands.indicators import parse_ts
    from tickstream.model import Tick

    rows = csv.reader(lines)
    cols = _columns(next(rows))
    tokens: dict[str, int] = {}
    cumulative: dict[str, int] = {}
    for row in rows:
        if not row:
            continue
        symbol = row[cols["symbol"]].strip()
        if "token" in cols:
            token = int(row[cols["token"]])
        else:
            token = tokens.setdefault(symbol, len(tokens) + 1)
        source = "file"
        volume: int | None = None
        if "volume" in cols:
            volume = int(float(row[cols["volume"]]))
        elif "ltq" in cols:
            volume = cumulative[symbol] = cumulative.get(symbol, 0) + int(row[cols["ltq"]])
            source = LTQ_SOURCE
        ts = parse_ts(row[cols["ts"]])
        oi = row[cols["oi"]].strip() if "oi" in cols else ""
        yield Tick(
            exchange=row[cols["exchange"]].strip() if "exchange" in cols else exchange,
            token=token,
            symbol=symbol,
            source=source,
            ts_exchange=ts,
            ts_recv=ts,
            ltp=float(row[cols["ltp"]]),
            volume=volume,
            oi=int(oi) if oi else None,
        )


def jsonl_ticks(lines: Iterable[str]) -> Iterator[Tick]:
    from tickstream.model import Tick, decode_json

    for line in lines:
        if line.strip():
            yield decode_json(line, Tick)


def read_ticks(stream: TextIO, exchange: str) -> Iterator[Tick]:
    first = ""
    for first in stream:
        if first.strip():
            break
    lines = _chain(first, stream)
    return jsonl_ticks(lines) if first.lstrip().startswith("{") else csv_ticks(lines, exchange)


def _chain(first: str, rest: Iterable[str]) -> Iterator[str]:
    if first:
        yield first
    yield from rest


def build(ticks: Iterable[Tick], interval: str) -> tuple[list[Candle], dict[str, object]]:
    """Run ticks through the engine with one interval; candles with revisions applied."""
    from tickstream.model import Interval
    from tickstream.pipeline.candles import CandleConfig
    from tickstream.pipeline.engine import EngineConfig, PipelineEngine

    cfg = EngineConfig(candles=CandleConfig(intervals=(Interval.parse(interval),)))
    engine = PipelineEngine(cfg, indicator_factory=None)
    final: dict[tuple[str, int, int], Candle] = {}
    batch: list[Tick] = []
    seeded: set[tuple[str, int]] = set()
    for tick in ticks:
        if tick.source == LTQ_SOURCE and (tick.exchange, tick.token) not in seeded:
            seeded.add((tick.exchange, tick.token))
            engine.candles.seed_volume(tick, 0)
        batch.append(tick)
        if len(batch) >= 10_000:
            _collect(engine.process(batch, 0), final)
            batch = []
    _collect(engine.process(batch, 0), final)
    _collect(engine.flush(), final)
    return list(final.values()), dict(engine.counters.snapshot())


def _collect(out: EngineOutput, final: dict[tuple[str, int, int], Candle]) -> None:
    # A revision always follows its candle's close, so closes then revisions keeps the latest.
    for c in (*out.candles, *out.revisions):
        final[(c.exchange, c.token, c.start)] = c


def write_candles(candles: Iterable[Candle], out: TextIO) -> int:
    from tickstream.calendar import ist_datetime

    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(OUTPUT_COLUMNS)
    n = 0
    for c in candles:
        writer.writerow(
            [
                ist_datetime(c.start).isoformat(),
                c.symbol,
                repr(c.open),
                repr(c.high),
                repr(c.low),
                repr(c.close),
                c.volume,
                c.ticks,
                str(c.partial).lower(),
                str(c.incomplete).lower(),
            ]
        )
        n += 1
    return n


def candles(
    file: str = typer.Argument("-", help="Ticks file (CSV or JSON lines), or - for stdin."),
    interval: str = typer.Option("1m", "--interval", "-i", help="1s, 1m, 5m, 15m, 1h or 1d."),
    exchange: str = typer.Option("NSE", "--exchange", "-e", help="Exchange of CSV rows."),
) -> None:
    """Build candles from ticks."""
    try:
        if file == "-":
            built, counters = build(read_ticks(sys.stdin, exchange), interval)
        else:
            with Path(file).open(encoding="utf-8", newline="") as stream:
                built, counters = build(read_ticks(stream, exchange), interval)
    except (OSError, ValueError, KeyError, IndexError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    rows = write_candles(built, sys.stdout)
    typer.echo(
        f"{counters['ticks_in']} ticks, {rows} candles, quarantined {counters['quarantined']}, "
        f"duplicates {counters['deduplicated']}, out of session {counters['out_of_session']}",
        err=True,
    )


def register(app: typer.Typer) -> None:
    app.command(name="candles", help=HELP)(candles)
