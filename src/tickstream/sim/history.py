"""Deterministic historical candles for the simulator's REST history endpoints (pure, no I/O).

Every number is a function of ``(instrument key, IST date)`` only, so any request, in any order, in
any process, returns the same bars.

Model, per trading day ``d`` of the instrument's exchange:

* **Day close** ``ref * exp(L(d))``: ``L`` is multi-scale value noise (hash-seeded lattice values at
  1, 4, 16, 64 and 256 calendar days, linearly interpolated). It needs no recursion over earlier
  days, stays within about +-30 % of the reference price, and moves about 1 % a day.
* **Day open** is the previous trading day's close times a small seeded gap (``~0.3 %``), so the
  series is continuous across days (the next open is near the previous close).
* **Minutes**: a Brownian bridge in log price from the day's open to its close, one point per
  minute boundary of the continuous session (:mod:`tickstream.calendar`); a minute's open is the
  previous minute's close. Wicks are seeded and keep ``low <= open, close <= high``. Every price is
  an integer number of ticks (``tick_size``).
* **Volume** follows a U-shaped intraday curve (heavy at the open and the close) with seeded
  noise, in multiples of the lot size; indices have no volume (0, as the brokers send).
* **Open interest** (options and futures): a seeded walk in lots; 0 for everything else.

Bars of any interval are aggregates of the minute bars (``open`` first, ``close`` last, ``high``
max, ``low`` min, ``volume`` sum, ``oi`` last), buckets aligned to the session open. A day bar is
stamped at IST midnight of its date, as both brokers stamp daily candles.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Iterator
from functools import lru_cache
from typing import Final

import msgspec
import numpy as np
import numpy.typing as npt

from tickstream.calendar import IST_OFFSET_NS, ist_date, ist_midnight_ns, session_for
from tickstream.model import Instrument, from_ticks, to_ticks

__all__ = ["Bar", "DayArrays", "bars", "day_arrays", "ist_stamp", "reference_price"]

NS: Final = 1_000_000_000
MINUTE_NS: Final = 60 * NS
DAY_S: Final = 86_400
_SCALES: Final = ((1, 0.012), (4, 0.015), (16, 0.03), (64, 0.06), (256, 0.12))
_GAP_SIGMA: Final = 0.003
_DAY_SIGMA: Final = 0.012
_WICK_SIGMA: Final = 0.35  # of a minute's sigma, in ticks after scaling
_DERIVATIVES: Final = frozenset({"CE", "PE", "FUT", "OPTIDX", "OPTSTK", "FUTIDX", "FUTSTK"})
_MAX_GAP_DAYS: Final = 20

I64 = npt.NDArray[np.int64]


class Bar(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One OHLCV bar. ``start_ns``: bucket start (IST midnight for day bars), epoch ns UTC."""

    start_ns: int
    open: float
    high: float
    low: float
    close: float
    volume: int
    oi: int


class DayArrays(msgspec.Struct, frozen=True):
    """A day's minute bars as arrays; prices in integer ticks."""

    start_ns: I64
    open: I64
    high: I64
    low: I64
    close: I64
    volume: I64
    oi: I64


@lru_cache(maxsize=1 << 16)
def _unit(*parts: object) -> float:
    """A uniform number in [-1, 1) determined by ``parts``."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**63 - 1.0


def _seed(*parts: object) -> int:
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=16).digest()
    return int.from_bytes(digest, "big")


@lru_cache(maxsize=1 << 14)
def _level(key: str, day: dt.date) -> float:
    """Log offset of the day's close from the reference price (multi-scale value noise)."""
    n = day.toordinal()
    total = 0.0
    for scale, amp in _SCALES:
        i, rem = divmod(n, scale)
        frac = rem / scale
        a, b = _unit(key, scale, i), _unit(key, scale, i + 1)
        total += amp * (a + (b - a) * frac)
    return total


def _previous_trading_day(exchange: str, day: dt.date) -> dt.date | None:
    for back in range(1, _MAX_GAP_DAYS):
        prev = day - dt.timedelta(days=back)
        if session_for(exchange, prev) is not None:
            return prev
    return None


def reference_price(instrument: Instrument, prices: dict[str, float]) -> float:
    """The reference price of ``instrument``: from ``prices`` by key, else a documented fallback.

    The universe's reference prices cover indices and equities; options are priced by the live
    market model, so history uses 1 % of the strike for them (a plausible premium near the money)
    and 100.0 for anything else unknown.
    """
    price = prices.get(instrument.key)
    if price is not None and price > 0:
        return price
    if instrument.strike:
        return max(instrument.strike * 0.01, 1.0)
    return 100.0


def _tick(instrument: Instrument) -> float:
    return instrument.tick_size if instrument.tick_size else 0.05


def _bridge(
    rng: np.random.Generator, n: int, log_open: float, log_close: float
) -> npt.NDArray[np.float64]:
    """n + 1 log prices from ``log_open`` to ``log_close`` (a Brownian bridge)."""
    sigma = _DAY_SIGMA / math.sqrt(n)
    walk = np.concatenate(([0.0], np.cumsum(rng.standard_normal(n) * sigma)))
    t = np.arange(n + 1) / n
    path: npt.NDArray[np.float64] = log_open + walk - t * walk[-1] + t * (log_close - log_open)
    return path


def _volumes(rng: np.random.Generator, instrument: Instrument, n: int) -> I64:
    if instrument.instrument_type == "INDEX" or instrument.segment == "INDICES":
        return np.zeros(n, dtype=np.int64)
    lot = instrument.lot_size or 1
    day_volume = 10 ** (5.0 + 1.5 * (_unit(instrument.key, "volume") + 1.0) / 2.0)
    t = (np.arange(n) + 0.5) / n
    curve = 1.0 + 3.0 * (2.0 * t - 1.0) ** 2
    noise = rng.lognormal(0.0, 0.35, n)
    shares = day_volume * curve / curve.sum() * noise
    lots: I64 = np.floor(shares / lot).astype(np.int64) + 1
    return lots * lot


def _open_interest(rng: np.random.Generator, instrument: Instrument, day: dt.date, n: int) -> I64:
    if instrument.instrument_type not in _DERIVATIVES:
        return np.zeros(n, dtype=np.int64)
    lot = instrument.lot_size or 1
    base_lots = 20_000 + int(10_000 * _unit(instrument.key, "oi", day.toordinal()))
    walk = np.cumsum(rng.integers(-40, 41, n))
    return np.maximum(base_lots + walk, 0).astype(np.int64) * lot


def _close_ticks(instrument: Instrument, day: dt.date, ref: float, tick: float) -> int:
    return max(to_ticks(ref * math.exp(_level(instrument.key, day)), tick), 1)


def _open_ticks(instrument: Instrument, day: dt.date, ref: float, tick: float) -> int:
    prev = _previous_trading_day(instrument.exchange, day)
    prev_day = prev if prev is not None else day - dt.timedelta(days=1)
    prev_close = from_ticks(_close_ticks(instrument, prev_day, ref, tick), tick)
    gap = _GAP_SIGMA * _unit(instrument.key, "gap", day.toordinal()) * math.sqrt(3.0)
    return max(to_ticks(prev_close * math.exp(gap), tick), 1)


@lru_cache(maxsize=512)
def day_arrays(instrument: Instrument, day: dt.date, ref: float) -> DayArrays | None:
    """The minute bars of ``instrument`` on ``day`` (None when its exchange is closed)."""
    session = session_for(instrument.exchange, day)
    if session is None:
        return None
    n = (session.close_ns - session.open_ns) // MINUTE_NS
    tick = _tick(instrument)
    rng = np.random.default_rng(_seed(instrument.key, day.isoformat()))
    open_t, close_t = (
        _open_ticks(instrument, day, ref, tick),
        _close_ticks(instrument, day, ref, tick),
    )
    path = _bridge(rng, n, math.log(open_t), math.log(close_t))
    points = np.maximum(np.rint(np.exp(path)), 1).astype(np.int64)
    points[0], points[-1] = open_t, close_t
    opens, closes = points[:-1], points[1:]
    wick = np.abs(rng.standard_normal((2, n))) * (_WICK_SIGMA * _DAY_SIGMA / math.sqrt(n))
    body_hi, body_lo = np.maximum(opens, closes), np.minimum(opens, closes)
    highs = body_hi + np.rint(body_hi * wick[0]).astype(np.int64)
    lows = np.maximum(body_lo - np.rint(body_lo * wick[1]).astype(np.int64), 1)
    starts = session.open_ns + np.arange(n, dtype=np.int64) * MINUTE_NS
    arrays = DayArrays(
        start_ns=starts,
        open=opens,
        high=highs,
        low=lows,
        close=closes,
        volume=_volumes(rng, instrument, n),
        oi=_open_interest(rng, instrument, day, n),
    )
    for arr in (starts, opens, highs, lows, closes, arrays.volume, arrays.oi):
        arr.setflags(write=False)  # cached and shared between requests
    return arrays


def _aggregate(day: dt.date, a: DayArrays, interval_s: int) -> Iterator[tuple[int, ...]]:
    """(start_ns, o, h, l, c, v, oi) in ticks for each bucket of ``interval_s`` seconds."""
    n = len(a.open)
    if interval_s >= DAY_S:
        yield (
            ist_midnight_ns(day),
            int(a.open[0]),
            int(a.high.max()),
            int(a.low.min()),
            int(a.close[-1]),
            int(a.volume.sum()),
            int(a.oi[-1]),
        )
        return
    step = max(interval_s // 60, 1)
    idx = np.arange(0, n, step)
    last = np.minimum(idx + step, n) - 1
    columns = (
        a.start_ns[idx],
        a.open[idx],
        np.maximum.reduceat(a.high, idx),
        np.minimum.reduceat(a.low, idx),
        a.close[last],
        np.add.reduceat(a.volume, idx),
        a.oi[last],
    )
    yield from zip(*(c.tolist() for c in columns), strict=True)


def bars(
    instrument: Instrument, interval_s: int, start_ns: int, end_ns: int, ref: float
) -> list[Bar]:
    """Bars of ``interval_s`` seconds whose start lies in ``[start_ns, end_ns]`` (both inclusive).

    ``interval_s`` is a whole number of minutes, or 86400 (or more) for day bars.
    """
    if interval_s < 60 or (interval_s < DAY_S and interval_s % 60):
        raise ValueError(f"interval must be whole minutes or a day, got {interval_s}s")
    tick = _tick(instrument)
    out: list[Bar] = []
    day, last_day = ist_date(start_ns), ist_date(end_ns)
    while day <= last_day:
        arrays = day_arrays(instrument, day, ref)
        if arrays is not None:
            for ts, o, h, lo, c, v, oi in _aggregate(day, arrays, interval_s):
                if start_ns <= ts <= end_ns:
                    out.append(
                        Bar(
                            start_ns=ts,
                            open=from_ticks(o, tick),
                            high=from_ticks(h, tick),
                            low=from_ticks(lo, tick),
                            close=from_ticks(c, tick),
                            volume=v,
                            oi=oi,
                        )
                    )
        day += dt.timedelta(days=1)
    return out


@lru_cache(maxsize=8192)
def _iso_day(day_no: int) -> str:
    return (dt.date(1970, 1, 1) + dt.timedelta(days=day_no)).isoformat()


def ist_stamp(ts_ns: int, offset: str) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` in IST followed by ``offset`` (``+0530`` Kite, ``+05:30`` Angel).

    The same text as ``ist_datetime(ts).strftime(...)``, an order of magnitude faster (a 60-day
    minute request formats 15,000 stamps).
    """
    day_no, sod = divmod((ts_ns + IST_OFFSET_NS) // NS, 86_400)
    h, rem = divmod(sod, 3600)
    m, s = divmod(rem, 60)
    return f"{_iso_day(day_no)}T{h:02d}:{m:02d}:{s:02d}{offset}"
