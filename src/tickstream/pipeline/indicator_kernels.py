"""The six O(1) streaming indicator kernels behind :mod:`tickstream.pipeline.indicators`.

Exact definitions (and the TA-Lib equivalences they are tested against) are in that module's
docstring. Import the classes from there; this module only keeps each file a readable size.
Every kernel has ``update(...) -> float | None`` (None while warming up) and a cheap
``snapshot()`` / ``restore(state)`` pair: plain floats, ``__slots__``, no numpy per update.
"""

from __future__ import annotations

import math
from typing import Final, TypeAlias

from tickstream.calendar import DAY_NS, IST_OFFSET_NS

__all__ = ["Bollinger", "Ema", "SessionVwap", "Supertrend", "WilderAtr", "WilderRsi"]

_TA_EPSILON: Final = 1e-14  # TA-Lib's TA_IS_ZERO threshold (RSI of a flat series is 0)
_EXACT_EVERY_WRAPS: Final = 10  # Bollinger: exact recomputation at least every 10 turns of the ring
# Bollinger: recompute exactly once the squared deviations are within 1e4x of the rounding they
# may carry (about eps * bound): keeps sigma's relative error near 1e-11 even as a window goes flat.
_M2_NOISE: Final = 1e-4


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

    __slots__ = ("_gain", "_loss", "_n", "_nf", "_nm1", "_prev", "period", "value")

    State: TypeAlias = tuple[int, float | None, float, float, float | None]

    def __init__(self, period: int = 14) -> None:
        if period < 2:
            raise ValueError(f"RSI period must be >= 2, got {period}")
        self.period = period
        self._nf = float(period)
        self._nm1 = float(period - 1)
        self._n = 0  # differences seen during warm-up
        self._prev: float | None = None
        self._gain = 0.0  # sum of gains during warm-up, then the Wilder average
        self._loss = 0.0
        self.value: float | None = None

    def update(self, close: float) -> float | None:
        prev = self._prev
        self._prev = close
        if prev is None:
            return None
        diff = close - prev
        if self.value is None:
            return self._warm_up(diff)
        nm1 = self._nm1
        gain = self._gain * nm1
        loss = self._loss * nm1
        if diff < 0:
            loss -= diff
        else:
            gain += diff
        return self._emit(gain / self._nf, loss / self._nf)

    def _warm_up(self, diff: float) -> float | None:
        if diff < 0:
            self._loss -= diff
        else:
            self._gain += diff
        self._n += 1
        if self._n < self.period:
            return None
        return self._emit(self._gain / self._nf, self._loss / self._nf)

    def _emit(self, gain: float, loss: float) -> float:
        self._gain = gain
        self._loss = loss
        total = gain + loss
        value = 100.0 * (gain / total) if total >= _TA_EPSILON else 0.0
        self.value = value
        return value

    def snapshot(self) -> WilderRsi.State:
        return (self._n, self._prev, self._gain, self._loss, self.value)

    def restore(self, state: WilderRsi.State) -> None:
        self._n, self._prev, self._gain, self._loss, self.value = state


class WilderAtr:
    """Average true range with Wilder smoothing, SMA-seeded like TA-Lib."""

    __slots__ = ("_n", "_nf", "_nm1", "_prev_close", "_sum", "period", "value")

    State: TypeAlias = tuple[int, float | None, float, float | None]

    def __init__(self, period: int = 14) -> None:
        if period < 2:
            raise ValueError(f"ATR period must be >= 2, got {period}")
        self.period = period
        self._nf = float(period)
        self._nm1 = float(period - 1)
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
        atr = self.value
        if atr is not None:
            atr = (atr * self._nm1 + tr) / self._nf
            self.value = atr
            return atr
        self._n += 1
        self._sum += tr
        if self._n == self.period:
            self.value = self._sum / self._nf
        return self.value

    def snapshot(self) -> WilderAtr.State:
        return (self._n, self._prev_close, self._sum, self.value)

    def restore(self, state: WilderAtr.State) -> None:
        self._n, self._prev_close, self._sum, self.value = state


class Bollinger:
    """Bollinger bands over a fixed window: SMA ± k population standard deviations.

    ``update`` returns the middle band; ``upper`` and ``lower`` hold the outer bands (all None
    during warm-up). The window's mean and sum of squared deviations are updated in O(1) with
    Welford's replace step on data shifted by ``_ref`` (the mean at the last exact recomputation),
    so the rounding of a large price level never enters the variance. Both are recomputed exactly
    (two-pass, ``math.fsum``; ``_ref`` moves to the new mean) every 10 turns of the ring, and
    sooner when the squared deviations shrink towards the rounding error they may carry (a window
    going flat), so sigma stays accurate to ~1e-11 relative and is exactly 0 on a flat window.
    """

    __slots__ = (
        "_bound",
        "_dmean",
        "_k",
        "_m2",
        "_nf",
        "_pos",
        "_ref",
        "_ring",
        "_wraps",
        "lower",
        "period",
        "upper",
        "value",
    )

    State: TypeAlias = tuple[int, int, float, float, float, float, tuple[float, ...], float | None]

    def __init__(self, period: int = 20, k: float = 2.0) -> None:
        if period < 2:
            raise ValueError(f"Bollinger period must be >= 2, got {period}")
        self.period = period
        self._nf = float(period)
        self._k = k
        self._ring = [0.0] * period
        self._pos = 0  # next slot to write: the count while warming up, then the oldest value
        self._wraps = 0  # full turns of the ring since the last exact recomputation
        self._ref = 0.0  # shift: the window mean at the last exact recomputation
        self._dmean = 0.0  # window mean minus _ref
        self._m2 = 0.0  # sum of squared deviations from the mean
        self._bound = 0.0  # scale of the rounding error m2 collected since the last exact pass
        self.value: float | None = None
        self.upper: float | None = None
        self.lower: float | None = None

    def update(self, close: float) -> float | None:
        ring = self._ring
        pos = self._pos
        old = ring[pos]
        ring[pos] = close
        pos += 1
        if self.value is None:  # warming up
            if pos < self.period:
                self._pos = pos
                return None
            self._pos = 0
            return self._exact()
        ref = self._ref
        new = close - ref  # exact (Sterbenz) while prices stay within 2x of ref
        out = old - ref
        step = new - out
        dmean = self._dmean
        new_dmean = dmean + step / self._nf
        m2 = self._m2 + step * (new - new_dmean + out - dmean)
        bound = self._bound + abs(step) * (abs(new) + abs(out))
        if pos == self.period:
            pos = 0
            self._wraps += 1
        self._pos = pos
        if m2 <= _M2_NOISE * bound or self._wraps == _EXACT_EVERY_WRAPS:
            return self._exact()
        self._dmean = new_dmean
        self._m2 = m2
        self._bound = bound
        return self._emit()

    def _exact(self) -> float:
        """Recompute mean and squared deviations from the ring (two-pass, exact sums)."""
        nf = self._nf
        ref = math.fsum(self._ring) / nf  # the mean, rounded: exact differences x - ref follow
        shifted = [x - ref for x in self._ring]
        dmean = math.fsum(shifted) / nf  # what the rounding of ref left out
        self._ref = ref
        self._dmean = dmean
        self._m2 = math.fsum((d - dmean) * (d - dmean) for d in shifted)
        self._bound = 0.0
        self._wraps = 0
        return self._emit()

    def _emit(self) -> float:
        m2 = self._m2
        mean = self._ref + self._dmean
        width = self._k * math.sqrt(m2 / self._nf) if m2 > 0.0 else 0.0
        self.upper = mean + width
        self.lower = mean - width
        self.value = mean
        return mean

    def snapshot(self) -> Bollinger.State:
        ring = tuple(self._ring)
        return (
            self._pos,
            self._wraps,
            self._ref,
            self._dmean,
            self._m2,
            self._bound,
            ring,
            self.value,
        )

    def restore(self, state: Bollinger.State) -> None:
        self._pos, self._wraps, self._ref, self._dmean, self._m2, self._bound, ring, value = state
        self._ring[:] = ring
        if value is None:
            self.value = self.upper = self.lower = None
        else:
            self._emit()


class SessionVwap:
    """Volume-weighted average of the typical price, reset at each IST session date."""

    __slots__ = ("_day_end", "_day_start", "_pv", "_vol", "value")

    State: TypeAlias = tuple[int, int, float, float, float | None]

    def __init__(self) -> None:
        self._day_start = 0  # [start, end) of the current IST day in epoch ns; empty at first
        self._day_end = 0
        self._pv = 0.0
        self._vol = 0.0
        self.value: float | None = None

    def update(
        self, ts_ns: int, high: float, low: float, close: float, volume: float
    ) -> float | None:
        if not self._day_start <= ts_ns < self._day_end:
            # IST midnight on or before ts_ns: pure integer arithmetic, independent of local TZ
            start = ts_ns - (ts_ns + IST_OFFSET_NS) % DAY_NS
            self._day_start = start
            self._day_end = start + DAY_NS
            self._pv = 0.0
            self._vol = 0.0
        pv = self._pv + (high + low + close) / 3.0 * volume
        vol = self._vol + volume
        self._pv = pv
        self._vol = vol
        value = pv / vol if vol > 0 else None
        self.value = value
        return value

    def snapshot(self) -> SessionVwap.State:
        return (self._day_start, self._day_end, self._pv, self._vol, self.value)

    def restore(self, state: SessionVwap.State) -> None:
        self._day_start, self._day_end, self._pv, self._vol, self.value = state


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
