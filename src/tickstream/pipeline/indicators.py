"""Streaming technical indicators: O(1) work per closed candle, no I/O, no numpy in the hot path.

One :class:`IndicatorSet` per (instrument, interval) turns each closed
:class:`~tickstream.model.Candle` into a :class:`~tickstream.model.Indicators`. Every value is
``None`` until its indicator has seen enough candles (exactly where TA-Lib returns NaN). The
individual classes are usable on their own; each has ``update(...) -> float | None`` and a cheap
``snapshot()`` / ``restore(state)`` pair that :meth:`IndicatorSet.revise` uses to replace the last
candle after a late tick changed it.

Definitions (candle index ``i`` counts from 0; TA-Lib defaults, unstable period 0):

* **EMA n** (``ema_9``, ``ema_21``): the first value, at ``i = n-1``, is the SMA of the first n
  closes (summed in order, then divided by n); then ``ema = (close - ema) * k + ema`` with
  ``k = 2 / (n + 1)``. Same as ``talib.EMA``.
* **RSI 14, Wilder** (``rsi_14``): ``d = close - previous close``; the first averages, at
  ``i = 14``, are the sums of the first 14 gains (``d > 0``) and losses (``-d`` for ``d < 0``) over
  15 closes divided by 14; then ``avg = (avg * 13 + x) / 14`` for each side, and
  ``rsi = 100 * gain / (gain + loss)`` (0 when ``gain + loss`` is 0 within 1e-14). Same as
  ``talib.RSI``.
* **ATR 14, Wilder** (``atr_14``): ``TR = max(high - low, |high - prev close|, |low - prev close|)``
  needs a previous close, so TRs start at ``i = 1``; the first ATR, at ``i = 14``, is the mean of
  the first 14 TRs; then ``atr = (atr * 13 + TR) / 14``. Same as ``talib.ATR``.
* **Bollinger 20/2** (``bb_*``): ``middle`` = SMA of the last 20 closes, ``upper``/``lower`` =
  ``middle ± 2 * sigma`` with sigma the *population* standard deviation of those 20 closes; first
  value at ``i = 19``. Same as ``talib.BBANDS(nbdevup=2, nbdevdn=2, matype=0)``. The window keeps
  its mean and sum of squared deviations with Welford's replace step on shifted data (no
  sum-of-squares cancellation) and recomputes them exactly (two-pass, ``math.fsum``) from the ring
  of 20 closes once per 200 updates, so the rounding error stays bounded however long it runs.
* **Session VWAP** (``vwap``): ``sum(typical * volume) / sum(volume)`` with
  ``typical = (high + low + close) / 3``, both sums reset when the IST calendar date of
  ``candle.start`` changes (every exchange's session lies inside one IST day, see
  :mod:`tickstream.calendar`). ``None`` while the session's cumulative volume is 0, so an index
  (no volume) never has a VWAP.
* **Supertrend 10/3** (``supertrend``, ``supertrend_direction``): TradingView's ``ta.supertrend``
  with the sign of the direction flipped (+1 up, -1 down).

  - ``atr`` = Wilder ATR(10), SMA-seeded exactly like ``talib.ATR(timeperiod=10)``, so the first
    value is at ``i = 10``; ``hl2 = (high + low) / 2``.
  - basic bands: ``bu = hl2 + 3 * atr``, ``bl = hl2 - 3 * atr``.
  - final bands on the first ATR candle: ``fu = bu``, ``fl = bl``. Afterwards, with ``pc`` the
    previous close: ``fu = bu if bu < prev fu or pc > prev fu else prev fu`` and
    ``fl = bl if bl > prev fl or pc < prev fl else prev fl``.
  - direction on the first ATR candle: -1. Afterwards: if the previous direction was -1 it becomes
    +1 when ``close > fu`` (else stays -1); if it was +1 it becomes -1 when ``close < fl``.
  - ``supertrend = fl`` when the direction is +1, else ``fu``.
"""

from __future__ import annotations

import datetime as dt
from typing import Final, TypeAlias

from tickstream.calendar import session_for
from tickstream.model import Candle, Indicators
from tickstream.pipeline.indicator_kernels import (
    Bollinger,
    Ema,
    SessionVwap,
    Supertrend,
    WilderAtr,
    WilderRsi,
)

__all__ = [
    "Bollinger",
    "Ema",
    "IndicatorSet",
    "SessionVwap",
    "Supertrend",
    "WilderAtr",
    "WilderRsi",
]

_REFERENCE_DAY: Final = dt.date(2025, 1, 1)  # any date: only the exchange name is validated


_SetState: TypeAlias = tuple[
    Ema.State,
    Ema.State,
    WilderRsi.State,
    WilderAtr.State,
    Bollinger.State,
    SessionVwap.State,
    Supertrend.State,
]


class IndicatorSet:
    """All streaming indicators of one (instrument, interval), fed closed candles in time order.

    ``exchange`` names the calendar the VWAP session follows (ValueError if unknown); every
    exchange's session lies inside one IST date, so the VWAP resets when that date changes.
    :meth:`update` takes a snapshot of every indicator before applying a candle, so
    :meth:`revise` can replace that last candle (any number of times) when a late tick revised it.
    About 3 us per update on one core (``bench/indicators.py``).
    """

    __slots__ = ("_atr", "_bb", "_ema9", "_ema21", "_last_start", "_rsi", "_st", "_state", "_vwap")

    def __init__(self, *, exchange: str = "NSE") -> None:
        session_for(exchange, _REFERENCE_DAY)  # ValueError on an exchange the calendar lacks
        self._ema9 = Ema(9)
        self._ema21 = Ema(21)
        self._rsi = WilderRsi(14)
        self._atr = WilderAtr(14)
        self._bb = Bollinger(20, 2.0)
        self._vwap = SessionVwap()
        self._st = Supertrend(10, 3.0)
        self._state: _SetState | None = None
        self._last_start: int | None = None

    def update(self, candle: Candle) -> Indicators:
        """Apply a new closed candle and return the indicator values on it."""
        self._state = (
            self._ema9.snapshot(),
            self._ema21.snapshot(),
            self._rsi.snapshot(),
            self._atr.snapshot(),
            self._bb.snapshot(),
            self._vwap.snapshot(),
            self._st.snapshot(),
        )
        self._last_start = candle.start
        return self._apply(candle)

    def revise(self, candle: Candle) -> Indicators:
        """Replace the last candle given to :meth:`update` with its revised version.

        Raises ValueError when nothing was updated yet or ``candle.start`` is not the last start.
        """
        state = self._state
        if state is None or candle.start != self._last_start:
            raise ValueError(
                f"revise() needs the last updated candle (start={self._last_start}), "
                f"got start={candle.start}"
            )
        self._ema9.restore(state[0])
        self._ema21.restore(state[1])
        self._rsi.restore(state[2])
        self._atr.restore(state[3])
        self._bb.restore(state[4])
        self._vwap.restore(state[5])
        self._st.restore(state[6])
        return self._apply(candle)

    def _apply(self, c: Candle) -> Indicators:
        high = c.high
        low = c.low
        close = c.close
        bb = self._bb
        middle = bb.update(close)
        st = self._st
        return Indicators(
            ema_9=self._ema9.update(close),
            ema_21=self._ema21.update(close),
            vwap=self._vwap.update(c.start, high, low, close, c.volume),
            rsi_14=self._rsi.update(close),
            atr_14=self._atr.update(high, low, close),
            bb_upper=bb.upper,
            bb_middle=middle,
            bb_lower=bb.lower,
            supertrend=st.update(high, low, close),
            supertrend_direction=st.direction,
        )
