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
  its mean and sum of squared deviations with Welford's add/remove updates (no sum-of-squares
  cancellation) and re-anchors them exactly from the ring of 20 closes once per 20 updates, so
  the rounding error stays bounded however long the stream runs.
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
import math
from typing import Final, TypeAlias

from tickstream.calendar import DAY_NS, IST_OFFSET_NS, session_for
from tickstream.model import Candle, Indicators

__all__ = [
    "Bollinger",
    "Ema",
    "IndicatorSet",
    "SessionVwap",
    "Supertrend",
    "WilderAtr",
    "WilderRsi",
]

_TA_EPSILON: Final = 1e-14  # TA-Lib's TA_IS_ZERO threshold (RSI of a flat series is 0)
_REFERENCE_DAY: Final = dt.date(2025, 1, 1)  # any date: only the exchange name is validated


class Ema:
    """Exponential moving average, SMA-seeded (TA-Lib's default)."""

    __slots__ = ("_k", "_n", "_sum", "period", "value")

    State: TypeAlias = tuple[int, float, float | None]

    def __init__(self, period: int) -> None:
        if period < 1:
            raise ValueError(f"EMA period must be >= 1, got {period}")
        self.period = period
        self._k = 2.0 / (period + 1)
        self._n = 0
        self._sum = 0.0
        self.value: float | None = None

    def update(self, close: float) -> float | None:
        prev = self.value
        if prev is not None:
            prev = (close - prev) * self._k + prev
            self.value = prev
            return prev
        self._n += 1
        self._sum += close
        if self._n == self.period:
            self.value = self._sum / self.period
        return self.value

    def snapshot(self) -> Ema.State:
        return (self._n, self._sum, self.value)

    def restore(self, state: Ema.State) -> None:
        self._n, self._sum, self.value = state


class WilderRsi:
    """Relative strength index with Wilder smoothing, seeded like TA-Lib."""

    __slots__ = ("_gain", "_loss", "_n", "_prev", "period", "value")

    State: TypeAlias = tuple[int, float | None, float, float, float | None]

    def __init__(self, period: int = 14) -> None:
        if period < 2:
            raise ValueError(f"RSI period must be >= 2, got {period}")
        self.period = period
        self._n = 0  # differences seen, capped at period
        self._prev: float | None = None
        self._gain = 0.0
        self._loss = 0.0
        self.value: float | None = None

    def update(self, close: float) -> float | None:
        prev = self._prev
        self._prev = close
        if prev is None:
            return None
        diff = close - prev
        n = self.period
        gain = self._gain
        loss = self._loss
        if self._n == n:
            loss *= n - 1
            gain *= n - 1
            if diff < 0:
                loss -= diff
            else:
                gain += diff
            loss /= n
            gain /= n
        else:
            if diff < 0:
                loss -= diff
            else:
                gain += diff
            self._n += 1
            if self._n < n:
                self._gain = gain
                self._loss = loss
                return None
            loss /= n
            gain /= n
        self._gain = gain
        self._loss = loss
        total = gain + loss
        value = 100.0 * (gain / total) if abs(total) >= _TA_EPSILON else 0.0
        self.value = value
        return value

    def snapshot(self) -> WilderRsi.State:
        return (self._n, self._prev, self._gain, self._loss, self.value)

    def restore(self, state: WilderRsi.State) -> None:
        self._n, self._prev, self._gain, self._loss, self.value = state


class WilderAtr:
    """Average true range with Wilder smoothing, SMA-seeded like TA-Lib."""

    __slots__ = ("_n", "_prev_close", "_sum", "period", "value")

    State: TypeAlias = tuple[int, float | None, float, float | None]

    def __init__(self, period: int = 14) -> None:
        if period < 2:
            raise ValueError(f"ATR period must be >= 2, got {period}")
        self.period = period
        self._n = 0  # true ranges seen during warm-up
        self._prev_close: float | None = None
        self._sum = 0.0
        self.value: float | None = None

    def update(self, high: float, low: float, close: float) -> float | None:
        pc = self._prev_close
        self._prev_close = close
        if pc is None:
            return None
        tr = high - low
        up = abs(pc - high)
        if up > tr:
            tr = up
        down = abs(pc - low)
        if down > tr:
            tr = down
        n = self.period
        atr = self.value
        if atr is not None:
            atr = (atr * (n - 1) + tr) / n
            self.value = atr
            return atr
        self._n += 1
        self._sum += tr
        if self._n == n:
            self.value = self._sum / n
        return self.value

    def snapshot(self) -> WilderAtr.State:
        return (self._n, self._prev_close, self._sum, self.value)

    def restore(self, state: WilderAtr.State) -> None:
        self._n, self._prev_close, self._sum, self.value = state


class Bollinger:
    """Bollinger bands over a fixed window: SMA ± k population standard deviations.

    ``update`` returns the middle band; ``upper`` and ``lower`` hold the outer bands (all None
    during warm-up).
    """

    __slots__ = ("_k", "_m2", "_mean", "_n", "_pos", "_ring", "lower", "period", "upper", "value")

    State: TypeAlias = tuple[
        int, int, float, float, tuple[float, ...], float | None, float | None, float | None
    ]

    def __init__(self, period: int = 20, k: float = 2.0) -> None:
        if period < 2:
            raise ValueError(f"Bollinger period must be >= 2, got {period}")
        self.period = period
        self._k = k
        self._ring = [0.0] * period
        self._pos = 0  # next slot to write (= oldest value once full)
        self._n = 0  # values in the window
        self._mean = 0.0
        self._m2 = 0.0  # sum of squared deviations from the mean
        self.value: float | None = None
        self.upper: float | None = None
        self.lower: float | None = None

    def update(self, close: float) -> float | None:
        ring = self._ring
        pos = self._pos
        n = self.period
        mean = self._mean
        if self._n == n:
            old = ring[pos]
            new_mean = mean + (close - old) / n
            self._m2 += (close - old) * (close - new_mean + old - mean)
            mean = new_mean
        else:
            self._n += 1
            delta = close - mean
            mean += delta / self._n
            self._m2 += delta * (close - mean)
        ring[pos] = close
        pos += 1
        if pos == n:
            pos = 0
            if self._n == n:
                mean = math.fsum(ring) / n
                self._m2 = sum((x - mean) * (x - mean) for x in ring)
        self._pos = pos
        self._mean = mean
        if self._n < n:
            return None
        var = self._m2 / n
        width = self._k * math.sqrt(var) if var > 0.0 else 0.0
        self.upper = mean + width
        self.lower = mean - width
        self.value = mean
        return mean

    def snapshot(self) -> Bollinger.State:
        ring = tuple(self._ring)
        return (self._n, self._pos, self._mean, self._m2, ring, self.value, self.upper, self.lower)

    def restore(self, state: Bollinger.State) -> None:
        self._n, self._pos, self._mean, self._m2, ring, self.value, self.upper, self.lower = state
        self._ring[:] = ring


class SessionVwap:
    """Volume-weighted average of the typical price, reset at each IST session date."""

    __slots__ = ("_day", "_pv", "_vol", "value")

    State: TypeAlias = tuple[int, float, float, float | None]

    def __init__(self) -> None:
        self._day = -(2**62)
        self._pv = 0.0
        self._vol = 0.0
        self.value: float | None = None

    def update(
        self, ts_ns: int, high: float, low: float, close: float, volume: float
    ) -> float | None:
        day = (ts_ns + IST_OFFSET_NS) // DAY_NS  # IST calendar day number, independent of local TZ
        if day != self._day:
            self._day = day
            self._pv = 0.0
            self._vol = 0.0
        self._pv += (high + low + close) / 3.0 * volume
        self._vol += volume
        value = self._pv / self._vol if self._vol > 0 else None
        self.value = value
        return value

    def snapshot(self) -> SessionVwap.State:
        return (self._day, self._pv, self._vol, self.value)

    def restore(self, state: SessionVwap.State) -> None:
        self._day, self._pv, self._vol, self.value = state


class Supertrend:
    """Supertrend (TradingView rules, +1 up / -1 down); ``update`` returns the line value."""

    __slots__ = ("_atr", "_lower", "_mult", "_prev_close", "_upper", "direction", "value")

    State: TypeAlias = tuple[WilderAtr.State, float | None, float, float, int | None, float | None]

    def __init__(self, period: int = 10, multiplier: float = 3.0) -> None:
        self._atr = WilderAtr(period)
        self._mult = multiplier
        self._prev_close: float | None = None
        self._upper = 0.0  # final upper band
        self._lower = 0.0  # final lower band
        self.direction: int | None = None
        self.value: float | None = None

    def update(self, high: float, low: float, close: float) -> float | None:
        atr = self._atr.update(high, low, close)
        pc = self._prev_close
        self._prev_close = close
        if atr is None:
            return None
        hl2 = (high + low) / 2.0
        upper = hl2 + self._mult * atr
        lower = hl2 - self._mult * atr
        direction = self.direction
        if direction is None or pc is None:
            direction = -1
        else:
            prev_upper = self._upper
            prev_lower = self._lower
            if not (upper < prev_upper or pc > prev_upper):
                upper = prev_upper
            if not (lower > prev_lower or pc < prev_lower):
                lower = prev_lower
            if direction == -1:
                if close > upper:
                    direction = 1
            elif close < lower:
                direction = -1
        self._upper = upper
        self._lower = lower
        self.direction = direction
        value = lower if direction == 1 else upper
        self.value = value
        return value

    def snapshot(self) -> Supertrend.State:
        return (
            self._atr.snapshot(),
            self._prev_close,
            self._upper,
            self._lower,
            self.direction,
            self.value,
        )

    def restore(self, state: Supertrend.State) -> None:
        atr, self._prev_close, self._upper, self._lower, self.direction, self.value = state
        self._atr.restore(atr)


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
    """All streaming indicators of one (instrument, interval), fed closed candles in order.

    :meth:`update` takes a snapshot of every indicator before applying a candle, so
    :meth:`revise` can replace that last candle (any number of times) when a late tick revised it.
    """

    __slots__ = ("_atr", "_bb", "_ema9", "_ema21", "_last_start", "_rsi", "_st", "_state", "_vwap")

    def __init__(self, *, exchange: str = "NSE") -> None:
        # Raises ValueError on an exchange the calendar does not know; every known exchange's
        # session lies within one IST date, which is what SessionVwap resets on.
        session_for(exchange, _REFERENCE_DAY)
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
            self._ema9.update(close),
            self._ema21.update(close),
            self._vwap.update(c.start, high, low, close, c.volume),
            self._rsi.update(close),
            self._atr.update(high, low, close),
            bb.upper if middle is not None else None,
            middle,
            bb.lower if middle is not None else None,
            st.update(high, low, close),
            st.direction,
        )
