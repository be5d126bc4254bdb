"""Secondary history sources: Yahoo Finance (via yfinance) and the simulator's deterministic bars.

:class:`YFinanceHistory` maps an instrument to Yahoo's symbol (``RELIANCE`` -> ``RELIANCE.NS``,
BSE ``.BO``, the main indices to ``^NSEI`` ...), calls yfinance in a worker thread (it is
synchronous) and converts its DataFrame with :func:`frame_to_candles`. yfinance is an optional
extra (``pip install 'tickstream[yfinance]'``); without it the source fails with a clear
HistoryError and the instrument is excluded. :class:`SimHistory` serves the simulator's bars
(used by ``tickstream backfill --source sim`` and by the tests of the fallback orchestration).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from typing import Any, Final

from tickstream.calendar import ist_datetime
from tickstream.feeds.history import HistoryError
from tickstream.model import Candle, Instrument, Interval

__all__ = ["SimHistory", "YFinanceHistory", "frame_to_candles", "yahoo_symbol"]

_YAHOO_INDICES: Final = {
    "NIFTY 50": "^NSEI",
    "NIFTY BANK": "^NSEBANK",
    "INDIA VIX": "^INDIAVIX",
    "SENSEX": "^BSESN",
}
_SUFFIX: Final = {"NSE": ".NS", "BSE": ".BO"}
#: our interval -> (yfinance's name, maximum days per request)
YAHOO_INTERVALS: Final[dict[Interval, tuple[str, int]]] = {
    Interval.M1: ("1m", 7),
    Interval.M5: ("5m", 59),
    Interval.M15: ("15m", 59),
    Interval.H1: ("60m", 729),
    Interval.D1: ("1d", 10_000),
}


def yahoo_symbol(instrument: Instrument) -> str:
    """Yahoo's ticker for an NSE/BSE equity or a main index (HistoryError otherwise)."""
    if instrument.exchange == "INDICES":
        found = _YAHOO_INDICES.get(instrument.symbol.upper())
        if found is None:
            raise HistoryError(f"yfinance: no Yahoo symbol for index {instrument.symbol}")
        return found
    suffix = _SUFFIX.get(instrument.exchange)
    if suffix is None:
        raise HistoryError(f"yfinance: no Yahoo symbol for {instrument.key}")
    return instrument.symbol + suffix


def frame_to_candles(frame: Any, instrument: Instrument, interval: Interval) -> list[Candle]:
    """A yfinance DataFrame (DatetimeIndex; Open, High, Low, Close, Volume) as Candles.

    A naive index is taken as IST; rows with a missing price are skipped.
    """
    index = frame.index
    if getattr(index, "tz", None) is None:
        index = index.tz_localize("Asia/Kolkata")
    starts = index.tz_convert("UTC").as_unit("ns").asi8.tolist()  # pandas may hold us or s
    columns = [frame[name].tolist() for name in ("Open", "High", "Low", "Close", "Volume")]
    out = []
    for start, o, h, low, c, v in zip(starts, *columns, strict=True):
        if any(math.isnan(x) for x in (o, h, low, c)):
            continue
        out.append(Candle(
            exchange=instrument.exchange, token=instrument.token, symbol=instrument.symbol,
            interval=interval, start=int(start), open=float(o), high=float(h), low=float(low),
            close=float(c), volume=0 if math.isnan(v) else int(v),
        ))  # fmt: skip
    return out


class YFinanceHistory:
    """Yahoo Finance via yfinance (the fallback source)."""

    name = "yfinance"

    def max_days(self, interval: Interval) -> int:
        return _spec(interval)[1]

    async def fetch(
        self, instrument: Instrument, interval: Interval, start_ns: int, end_ns: int
    ) -> list[Candle]:
        symbol = yahoo_symbol(instrument)
        name = _spec(interval)[0]
        try:
            frame = await asyncio.to_thread(_download, symbol, name, start_ns, end_ns)
        except HistoryError:
            raise
        except Exception as exc:  # yfinance raises many kinds; none is worth more than a message
            raise HistoryError(f"yfinance: {symbol}: {type(exc).__name__}: {exc}") from None
        if frame is None or len(frame) == 0:
            raise HistoryError(f"yfinance: {symbol}: no data")
        candles = frame_to_candles(frame, instrument, interval)
        return [c for c in candles if start_ns <= c.start < end_ns]


def _download(symbol: str, interval: str, start_ns: int, end_ns: int) -> Any:
    try:
        import yfinance  # optional extra; untyped (see the mypy override in pyproject)
    except ImportError:
        raise HistoryError(
            "yfinance is not installed: pip install 'tickstream[yfinance]'"
        ) from None
    ticker = yfinance.Ticker(symbol)
    return ticker.history(
        start=ist_datetime(start_ns), end=ist_datetime(end_ns), interval=interval,
        auto_adjust=False, actions=False, raise_errors=True,
    )  # fmt: skip


def _spec(interval: Interval) -> tuple[str, int]:
    try:
        return YAHOO_INTERVALS[interval]
    except KeyError:
        raise HistoryError(f"yfinance has no {interval.value} candles") from None


class SimHistory:
    """The simulator's deterministic bars as a history source."""

    name = "sim"

    def __init__(self, prices: Mapping[str, float] | None = None, max_days: int = 60) -> None:
        from tickstream.sim.universe import reference_prices

        self.prices = dict(prices) if prices is not None else reference_prices()
        self._max_days = max_days

    def max_days(self, interval: Interval) -> int:
        return self._max_days if interval is not Interval.D1 else 2000

    async def fetch(
        self, instrument: Instrument, interval: Interval, start_ns: int, end_ns: int
    ) -> list[Candle]:
        from tickstream.sim.history import bars, reference_price

        if interval is Interval.S1:
            raise HistoryError("sim: no 1s history")
        ref = reference_price(instrument, self.prices)
        got = await asyncio.to_thread(bars, instrument, interval.seconds, start_ns, end_ns - 1, ref)
        return [
            Candle(
                exchange=instrument.exchange, token=instrument.token, symbol=instrument.symbol,
                interval=interval, start=b.start_ns, open=b.open, high=b.high, low=b.low,
                close=b.close, volume=b.volume, oi=b.oi or None,
            )
            for b in got
        ]  # fmt: skip
