"""IST trading sessions, holidays, and the candle bucket function.

Everything here is pure arithmetic on integer epoch nanoseconds. IST is a fixed UTC+05:30 (India has
no daylight saving), so no tz database lookup and no naive datetime is ever involved, and results do
not depend on the process's ``TZ``.

Sessions (IST):

=================  =============  ==============
exchange           pre-open       continuous
=================  =============  ==============
NSE, BSE, NFO,     09:00-09:08    09:15-15:30
BFO, INDICES
CDS, BCD           --             09:00-17:00
MCX, NCO           --             09:00-23:30
=================  =============  ==============

Holidays come from ``data/nse_holidays.csv`` (2025-2026; weekday closures). Years outside the file
are treated as weekday trading years. MCX keeps its own (evening) sessions on some NSE holidays; we
apply the NSE list to every exchange and say so here rather than guess.

Buckets: a bucket starts at ``open + k * interval`` for the day's session open, so 5-minute candles
start at 09:15, 09:20, ... and 1-hour candles at 09:15, 10:15, .... A timestamp outside
``[open, close)`` of a trading day has no bucket (``None``): no candles outside the session.
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Final

__all__ = [
    "DAY_NS",
    "IST",
    "IST_OFFSET_NS",
    "Session",
    "bucket_start",
    "holidays",
    "in_session",
    "is_trading_day",
    "ist_date",
    "ist_datetime",
    "ist_midnight_ns",
    "ist_ns",
    "session_for",
    "session_for_ts",
]

NS: Final = 1_000_000_000
DAY_NS: Final = 86_400 * NS
IST_OFFSET_NS: Final = (5 * 3600 + 30 * 60) * NS
IST: Final = dt.timezone(dt.timedelta(hours=5, minutes=30), "IST")
_EPOCH_ORDINAL: Final = dt.date(1970, 1, 1).toordinal()


@dataclass(frozen=True, slots=True)
class _Hours:
    open_s: int  # seconds after IST midnight
    close_s: int
    preopen: tuple[int, int] | None = None


def _hm(h: int, m: int) -> int:
    return h * 3600 + m * 60


_EQUITY: Final = _Hours(_hm(9, 15), _hm(15, 30), (_hm(9, 0), _hm(9, 8)))
_CURRENCY: Final = _Hours(_hm(9, 0), _hm(17, 0))
_COMMODITY: Final = _Hours(_hm(9, 0), _hm(23, 30))
_HOURS: Final[dict[str, _Hours]] = {
    "NSE": _EQUITY,
    "BSE": _EQUITY,
    "NFO": _EQUITY,
    "BFO": _EQUITY,
    "INDICES": _EQUITY,
    "CDS": _CURRENCY,
    "BCD": _CURRENCY,
    "MCX": _COMMODITY,
    "NCO": _COMMODITY,
}


@dataclass(frozen=True, slots=True)
class Session:
    """One trading day's session for one exchange, in epoch ns (UTC)."""

    date: dt.date
    open_ns: int
    close_ns: int
    preopen_start_ns: int | None
    preopen_end_ns: int | None

    def contains(self, ts_ns: int) -> bool:
        return self.open_ns <= ts_ns < self.close_ns

    def in_preopen(self, ts_ns: int) -> bool:
        if self.preopen_start_ns is None or self.preopen_end_ns is None:
            return False
        return self.preopen_start_ns <= ts_ns < self.preopen_end_ns


@lru_cache(maxsize=1)
def holidays() -> frozenset[dt.date]:
    """The weekday trading holidays in the bundled data file."""
    text = resources.files("tickstream.data").joinpath("nse_holidays.csv").read_text("utf-8")
    rows = csv.reader(line for line in text.splitlines() if line and not line.startswith("#"))
    next(rows)  # header
    return frozenset(dt.date.fromisoformat(r[0]) for r in rows)


def _hours(exchange: str) -> _Hours:
    try:
        return _HOURS[exchange]
    except KeyError:
        raise ValueError(
            f"unknown exchange {exchange!r}; expected one of {', '.join(sorted(_HOURS))}"
        ) from None


def ist_midnight_ns(day: dt.date) -> int:
    """Epoch ns of 00:00 IST on ``day``."""
    return (day.toordinal() - _EPOCH_ORDINAL) * DAY_NS - IST_OFFSET_NS


def ist_ns(day: dt.date, hour: int, minute: int = 0, second: int = 0) -> int:
    """Epoch ns of the given IST wall time on ``day``."""
    return ist_midnight_ns(day) + (hour * 3600 + minute * 60 + second) * NS


def ist_date(ts_ns: int) -> dt.date:
    """The IST calendar date of an epoch-ns timestamp."""
    return dt.date.fromordinal((ts_ns + IST_OFFSET_NS) // DAY_NS + _EPOCH_ORDINAL)


def ist_datetime(ts_ns: int) -> dt.datetime:
    """An aware datetime in IST (for display at the edges only)."""
    secs, ns = divmod(ts_ns, NS)
    return dt.datetime.fromtimestamp(secs, tz=IST).replace(microsecond=ns // 1000)


def is_trading_day(day: dt.date) -> bool:
    return day.weekday() < 5 and day not in holidays()


@lru_cache(maxsize=4096)
def session_for(exchange: str, day: dt.date) -> Session | None:
    """The session of ``exchange`` on ``day``, or None on a weekend or holiday."""
    hours = _hours(exchange)
    if not is_trading_day(day):
        return None
    midnight = ist_midnight_ns(day)
    pre = hours.preopen
    return Session(
        date=day,
        open_ns=midnight + hours.open_s * NS,
        close_ns=midnight + hours.close_s * NS,
        preopen_start_ns=midnight + pre[0] * NS if pre else None,
        preopen_end_ns=midnight + pre[1] * NS if pre else None,
    )


# Hot path: (exchange, IST day number) -> (open_ns, close_ns) or None. Bounded by days x exchanges.
_day_cache: dict[tuple[str, int], tuple[int, int] | None] = {}


def _open_close(exchange: str, ts_ns: int) -> tuple[int, int] | None:
    day_no = (ts_ns + IST_OFFSET_NS) // DAY_NS
    key = (exchange, day_no)
    try:
        return _day_cache[key]
    except KeyError:
        pass
    session = session_for(exchange, dt.date.fromordinal(day_no + _EPOCH_ORDINAL))
    value = (session.open_ns, session.close_ns) if session else None
    if len(_day_cache) > 100_000:
        _day_cache.clear()
    _day_cache[key] = value
    return value


def session_for_ts(exchange: str, ts_ns: int) -> Session | None:
    """The session of the IST day containing ``ts_ns`` (None on a closed day)."""
    return session_for(exchange, ist_date(ts_ns))


def in_session(exchange: str, ts_ns: int) -> bool:
    """True when ``ts_ns`` falls inside the continuous session ``[open, close)``."""
    oc = _open_close(exchange, ts_ns)
    return oc is not None and oc[0] <= ts_ns < oc[1]


def bucket_start(exchange: str, ts_ns: int, interval_ns: int) -> int | None:
    """Start of the candle bucket holding ``ts_ns``, aligned to the session open.

    Returns None outside the continuous session. An interval of a day or more gives the session
    open (one daily bar per session).
    """
    oc = _open_close(exchange, ts_ns)
    if oc is None:
        return None
    open_ns, close_ns = oc
    if not open_ns <= ts_ns < close_ns:
        return None
    if interval_ns >= DAY_NS:
        return open_ns
    return open_ns + (ts_ns - open_ns) // interval_ns * interval_ns
