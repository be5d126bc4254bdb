"""``tickstream indicators``: add the streaming indicators to a candles CSV.

Input columns (header names are case-insensitive, any order, extra columns are kept):
``ts`` (or ``date``, ``datetime``, ``timestamp``, ``time``), ``open``, ``high``, ``low``,
``close`` and optionally ``volume`` (0 when absent). An unnamed leading column (a pandas index, as
in Kite exports saved with pandas) is kept and ignored.

Timestamps are detected per cell:

* an integer is epoch time whose unit follows from its size: below 1e11 seconds, below 1e14
  milliseconds, below 1e17 microseconds, else nanoseconds;
* a decimal number is epoch seconds with a fraction;
* anything else is ISO-8601 *with* a UTC offset (``2023-04-03 09:15:00+05:30``,
  ``2017-12-15T09:15:00+0530``, ``...Z``), to microsecond precision; a bare date ``YYYY-MM-DD``
  means 00:00 IST that day. A time without an offset is an error: it is never guessed.

Rows must be in strictly increasing time (one closed candle each) with finite prices; otherwise
the command stops with exit code 2 and names the row. ``--exchange`` picks the session calendar.

Output: the input rows unchanged, followed by ema_9, ema_21, vwap, rsi_14, atr_14, bb_upper,
bb_middle, bb_lower, supertrend, supertrend_direction (shortest round-trip float text; an empty
cell while the indicator warms up).
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import re
import sys
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Final, TextIO

import typer

if TYPE_CHECKING:
    from tickstream.model import Candle, Indicators

OUTPUT_COLUMNS: Final = (
    "ema_9",
    "ema_21",
    "vwap",
    "rsi_14",
    "atr_14",
    "bb_upper",
    "bb_middle",
    "bb_lower",
    "supertrend",
    "supertrend_direction",
)
_TS_NAMES: Final = ("ts", "date", "datetime", "timestamp", "time")
_INT_RE: Final = re.compile(r"-?\d+")
_DECIMAL_RE: Final = re.compile(r"-?\d+\.\d*")
_NS: Final = 1_000_000_000
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

HELP: Final = (
    "Add EMA 9/21, session VWAP, RSI 14, ATR 14, Bollinger 20/2 and Supertrend 10/3 to a candles "
    "CSV (FILE, or - for stdin) and write it to stdout.\n\n"
    "Columns: ts (or Date/date), open, high, low, close, volume; ts is ISO-8601 with an offset "
    "or epoch seconds/ms/us/ns. Warming-up cells are empty.\n\n"
    "Example: tickstream indicators SBIN_1min.csv > SBIN_1min_indicators.csv"
)


def parse_ts(text: str) -> int:
    """Epoch nanoseconds (UTC) of one timestamp cell; see the module docstring for the formats."""
    cell = text.strip()
    if _INT_RE.fullmatch(cell):
        value = int(cell)
        size = abs(value)
        scale = _NS if size < 10**11 else 10**6 if size < 10**14 else 10**3 if size < 10**17 else 1
        return value * scale
    if _DECIMAL_RE.fullmatch(cell):
        return int(Decimal(cell) * _NS)
    if len(cell) == 10:
        from tickstream.calendar import ist_midnight_ns

        return ist_midnight_ns(dt.date.fromisoformat(cell))
    stamp = dt.datetime.fromisoformat(cell)
    if stamp.tzinfo is None:
        raise ValueError(f"timestamp {cell!r} has no UTC offset")
    delta = stamp - _EPOCH
    return ((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds) * 1_000


def column_map(header: list[str]) -> dict[str, int]:
    """Index of ts, open, high, low, close and (if present) volume in ``header``."""
    names = [h.strip().lower() for h in header]
    found: dict[str, int] = {}
    for i, name in enumerate(names):
        key = "ts" if name in _TS_NAMES else name
        if key in ("ts", "open", "high", "low", "close", "volume") and key not in found:
            found[key] = i
    missing = [k for k in ("ts", "open", "high", "low", "close") if k not in found]
    if missing:
        raise ValueError(f"missing column(s) {', '.join(missing)} in header {header}")
    return found


def to_candle(row: list[str], cols: dict[str, int], exchange: str) -> Candle:
    """One CSV row as a Candle (ValueError or IndexError on a malformed row)."""
    from tickstream.model import Candle, Interval

    vol_col = cols.get("volume")
    volume = row[vol_col].strip() if vol_col is not None else ""
    prices = [float(row[cols[k]]) for k in ("open", "high", "low", "close")]
    if not all(math.isfinite(p) for p in prices):
        raise ValueError(f"non-finite price in {prices}")
    return Candle(
        exchange=exchange,
        token=0,
        symbol="",
        interval=Interval.M1,
        start=parse_ts(row[cols["ts"]]),
        open=prices[0],
        high=prices[1],
        low=prices[2],
        close=prices[3],
        volume=int(volume) if volume.isdigit() else int(float(volume or 0)),
    )


def _cells(ind: Indicators) -> list[str]:
    values = (
        ind.ema_9,
        ind.ema_21,
        ind.vwap,
        ind.rsi_14,
        ind.atr_14,
        ind.bb_upper,
        ind.bb_middle,
        ind.bb_lower,
        ind.supertrend,
    )
    cells = ["" if v is None else repr(v) for v in values]
    cells.append("" if ind.supertrend_direction is None else str(ind.supertrend_direction))
    return cells


def run(source: TextIO, sink: TextIO, exchange: str) -> int:
    """Stream ``source`` CSV to ``sink`` with the indicator columns; returns the rows written.

    Raises ValueError naming the data row (1-based, after the header) that is malformed or not
    strictly later than the row before.
    """
    from tickstream.pipeline.indicators import IndicatorSet

    indicators = IndicatorSet(exchange=exchange)
    reader = csv.reader(source)
    header = next(reader, None)
    if header is None:
        raise ValueError("empty input: expected a header row")
    cols = column_map(header)
    writer = csv.writer(sink, lineterminator="\n")
    writer.writerow([*header, *OUTPUT_COLUMNS])
    last = -(2**63)
    written = 0
    for n, row in enumerate(reader, start=1):
        if not row:
            continue
        try:
            candle = to_candle(row, cols, exchange)
        except (ValueError, IndexError) as exc:
            raise ValueError(f"row {n}: {exc}") from None
        if candle.start <= last:
            raise ValueError(f"row {n}: timestamp not after the row before")
        last = candle.start
        writer.writerow([*row, *_cells(indicators.update(candle))])
        written += 1
    return written


def indicators_command(
    file: str = typer.Argument("-", help="Candles CSV file, or - for stdin."),
    exchange: str = typer.Option("NSE", "--exchange", help="Exchange of the instrument."),
) -> None:
    try:
        if file == "-":
            run(sys.stdin, sys.stdout, exchange)
        else:
            with Path(file).open(newline="", encoding="utf-8") as fh:
                run(fh, sys.stdout, exchange)
    except (OSError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def register(app: typer.Typer) -> None:
    app.command(name="indicators", help=HELP)(indicators_command)
