"""Pure helpers for the market model: order books on the tick grid and option fair values.

Vectorised with numpy where the whole universe is touched every step; everything is integer ticks
until the single division that produces float prices.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from tickstream.calendar import ist_date, session_for

__all__ = [
    "BookPatterns",
    "book_levels",
    "bs_price",
    "first_in_session",
    "intraday_activity",
    "series_value",
]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

_SQRT2: float = math.sqrt(2.0)


def intraday_activity(frac: float) -> float:
    """U-shaped trade-arrival multiplier over the session (``frac`` 0 = open, 1 = close).

    3.0 at the open and close, 0.6 at midday; its mean over the session is 1.4.
    """
    x = min(max(frac, 0.0), 1.0) * 2.0 - 1.0
    return 0.6 + 2.4 * x * x


def _ncdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / _SQRT2))


def bs_price(spot: float, strike: float, years: float, vol: float, *, call: bool) -> float:
    """Black-Scholes value (no rates, no dividends); intrinsic value when ``years`` <= 0."""
    intrinsic = max(spot - strike, 0.0) if call else max(strike - spot, 0.0)
    if years <= 0 or vol <= 0 or spot <= 0:
        return intrinsic
    sd = vol * math.sqrt(years)
    d1 = (math.log(spot / strike) + 0.5 * sd * sd) / sd
    d2 = d1 - sd
    if call:
        return spot * _ncdf(d1) - strike * _ncdf(d2)
    return strike * _ncdf(-d2) - spot * _ncdf(-d1)


def book_levels(
    rng: np.random.Generator,
    ltp: I64,
    lot: I64,
    levels: int,
) -> tuple[I64, I64, I64, I64, I64, I64]:
    """Random books around ``ltp`` (integer ticks), one row per instrument.

    Returns bid prices, bid qtys, bid orders, ask prices, ask qtys, ask orders, each of shape
    ``(n, levels)``. Best bid < best ask, best bid <= ltp <= best ask, bids strictly decreasing,
    asks strictly increasing, every price >= 1 tick, quantities positive multiples of ``lot``.
    """
    n = ltp.shape[0]
    spread = rng.integers(1, 4, size=n)  # 1..3 ticks
    below = rng.integers(0, spread + 1)  # how far the best bid sits under the ltp
    best_bid = np.maximum(ltp - below, 1)
    best_ask = best_bid + spread
    gaps_b = rng.integers(1, 3, size=(n, levels)).cumsum(axis=1) - 1
    gaps_a = rng.integers(1, 3, size=(n, levels)).cumsum(axis=1) - 1
    gaps_b[:, 0] = 0
    gaps_a[:, 0] = 0
    bids = best_bid[:, None] - gaps_b
    bids = np.where(bids >= 1, bids, 0)  # a book thinner than ``levels`` near zero: price 0 rows
    asks = best_ask[:, None] + gaps_a
    bq = rng.integers(1, 60, size=(n, levels)) * lot[:, None]
    aq = rng.integers(1, 60, size=(n, levels)) * lot[:, None]
    bq = np.where(bids > 0, bq, 0)
    bo = np.where(bq > 0, np.minimum(bq // lot[:, None], rng.integers(1, 12, size=(n, levels))), 0)
    ao = np.minimum(aq // lot[:, None], rng.integers(1, 12, size=(n, levels)))
    return bids, bq, bo, asks, aq, ao


Book = tuple[I64, I64, I64, I64, I64, I64]


class BookPatterns:
    """``patterns`` random book shapes per instrument, as tick offsets from the last price.

    A step draws one shape per trading instrument, so a book is a function of (instrument, ltp,
    shape): the same book object can be reused (cached) whenever that triple comes back.
    """

    def __init__(
        self, rng: np.random.Generator, lot: I64, *, patterns: int = 16, levels: int = 5
    ) -> None:
        n = lot.shape[0]
        self.patterns = patterns
        far = np.full(n * patterns, 1 << 40, dtype=np.int64)  # no clipping at zero
        bp, bq, bo, ap, aq, ao = book_levels(rng, far, np.repeat(lot, patterns), levels)
        # One row per (instrument, shape): bid offsets, ask offsets, bid qty/orders, ask
        # qty/orders; a step gathers all six with one ``take`` (6 fancy gathers cost ~10x more).
        self._table = np.stack([far[:, None] - bp, ap - far[:, None], bq, bo, aq, ao], axis=1)

    def books(self, idx: I64, ltp: I64, k: I64) -> Book:
        """Books for instruments ``idx`` at last prices ``ltp`` (ticks) with shapes ``k``.

        Best bid <= ltp <= best ask and best bid < best ask; near zero the bid side is lifted so
        the best bid is one tick, and levels that would fall to zero or below are empty (0, 0, 0).
        """
        rows = self._table.take(idx * self.patterns + k, axis=0)  # (m, 6, levels)
        bid_off, ask_off, bq, bo, aq, ao = rows.transpose(1, 0, 2).copy()
        bids = ltp[:, None] - bid_off
        lift = np.maximum(1 - bids[:, 0], 0)
        bids = bids + lift[:, None]
        asks = ltp[:, None] + ask_off
        asks = asks + np.maximum(bids[:, 0] + 1 - asks[:, 0], 0)[:, None]
        keep = bids >= 1
        bids = np.where(keep, bids, 0)
        bq = np.where(keep, bq, 0)
        bo = np.where(keep, bo, 0)
        return bids, bq, bo, asks, aq, ao


def series_value(times: Sequence[int], values: Sequence[float], ts: int) -> float | None:
    """The last value at or before ``ts`` of a recorded series (None before its first point)."""
    import bisect

    i = bisect.bisect_right(times, ts)
    return None if i == 0 else values[i - 1]


def first_in_session(times: Sequence[int], values: Sequence[float]) -> float:
    """The first recorded value at or after its day's 09:15 IST open (pre-open values jump)."""
    session = session_for("NSE", ist_date(times[0]))
    if session is not None:
        for t, v in zip(times, values, strict=True):
            if t >= session.open_ns:
                return v
    return values[0]
