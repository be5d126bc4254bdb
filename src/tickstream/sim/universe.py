"""The simulator's instrument universe: indices, NIFTY 50 equities and one NIFTY option chain.

The data comes from real public broker dumps, condensed once by ``scripts/make_sim_universe.py``
into the bundled ``universe.json`` (read through :mod:`importlib.resources`, so nothing outside the
package is touched at run time). For NSE equities Kite's ``exchange_token`` equals Angel's token;
the generator script checks this for every row and refuses to write the file otherwise. Indices keep
their broker-specific tokens (Kite ``256265`` = ``1001 << 8 | 9`` for NIFTY 50, Angel ``99926000``).
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

import msgspec

from tickstream.model import Instrument

__all__ = [
    "Universe",
    "default_universe",
    "load_universe",
    "parse_price_series",
    "read_universe",
    "reference_prices",
]


class Universe(msgspec.Struct, frozen=True):
    """The JSON document: instruments plus a reference previous close per ``Instrument.key``."""

    instruments: tuple[Instrument, ...]
    reference_prices: dict[str, float] = msgspec.field(default_factory=dict)
    sources: str = ""


def read_universe(path: Path | None = None) -> Universe:
    """Read a universe file (the bundled one when ``path`` is None)."""
    if path is None:
        return _bundled()
    return msgspec.json.decode(path.read_bytes(), type=Universe)


@lru_cache(maxsize=1)
def _bundled() -> Universe:
    data = resources.files("tickstream.sim").joinpath("universe.json").read_bytes()
    return msgspec.json.decode(data, type=Universe)


def load_universe(path: Path | None = None) -> list[Instrument]:
    """The instruments of a universe file (the bundled one when ``path`` is None)."""
    return list(read_universe(path).instruments)


def default_universe() -> list[Instrument]:
    """The bundled universe: NIFTY 50 + NIFTY BANK, ~50 NSE equities, one NIFTY option chain."""
    return load_universe()


def reference_prices(path: Path | None = None) -> dict[str, float]:
    """Previous-close reference price per ``Instrument.key`` (options are priced by the model)."""
    return dict(read_universe(path).reference_prices)


def parse_price_series(text: str) -> list[tuple[int, float]]:
    """A recorded price series: lines ``YYYY-MM-DD HH:MM:SS,value`` in IST (the NSE per-second
    index files) or ``epoch_ns,value``; blank lines and ``#`` comments are skipped."""
    import datetime as dt

    from tickstream.calendar import ist_ns

    out: list[tuple[int, float]] = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        stamp, _, value = line.rpartition(",")
        try:
            if stamp.isdigit():
                ts = int(stamp)
            else:
                when = dt.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S")  # noqa: DTZ007 - IST wall time, converted explicitly below
                ts = ist_ns(when.date(), when.hour, when.minute, when.second)
            out.append((ts, float(value)))
        except ValueError:
            raise ValueError(
                f"line {n}: expected 'YYYY-MM-DD HH:MM:SS,price', got {line!r:.60}"
            ) from None
    out.sort()
    return out
