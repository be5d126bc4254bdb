"""Mutable per-bucket state of :mod:`tickstream.pipeline.candles` (internal).

A :class:`Slot` is one bucket being built; frozen :class:`~tickstream.model.Candle` structs are
made only when it is emitted. A :class:`Series` holds the open slots and the last closed slot of
one (instrument, interval); an :class:`Inst` holds the series and the volume baseline of one
instrument.
"""

from __future__ import annotations

from typing import Final

from tickstream.calendar import DAY_NS, IST_OFFSET_NS
from tickstream.model import Candle, Interval, Tick

__all__ = ["NEVER", "Inst", "Series", "Slot"]

NEVER: Final = -(2**62)


class Slot:
    """A mutable bucket being built (one per open bucket; frozen Candles only on emit)."""

    __slots__ = (
        "close",
        "end",
        "first_ts",
        "high",
        "incomplete",
        "last_ts",
        "low",
        "oi",
        "open",
        "partial",
        "revision",
        "series",
        "start",
        "ticks",
        "volume",
    )

    def __init__(self, series: Series, start: int, end: int, partial: bool) -> None:
        self.series = series
        self.start = start
        self.end = end
        self.partial = partial
        self.incomplete = False
        self.revision = 0
        self.ticks = 0
        self.volume = 0
        self.oi: int | None = None
        self.first_ts = self.last_ts = NEVER
        self.open = self.high = self.low = self.close = 0.0

    def add(self, ts: int, ltp: float, dv: int, oi: int | None) -> None:
        if self.ticks == 0:
            self.open = self.high = self.low = self.close = ltp
            self.first_ts = self.last_ts = ts
            self.oi = oi
        else:
            if ltp > self.high:
                self.high = ltp
            elif ltp < self.low:
                self.low = ltp
            if ts >= self.last_ts:
                self.close, self.last_ts = ltp, ts
                if oi is not None:
                    self.oi = oi
            elif ts < self.first_ts:
                self.open, self.first_ts = ltp, ts
        self.volume += dv
        self.ticks += 1

    def candle(self) -> Candle:
        inst = self.series.inst
        return Candle(
            exchange=inst.exchange,
            token=inst.token,
            symbol=inst.symbol,
            interval=self.series.interval,
            start=self.start,
            open=self.open,
            high=self.high,
            low=self.low,
            close=self.close,
            volume=self.volume,
            oi=self.oi,
            ticks=self.ticks,
            partial=self.partial,
            incomplete=self.incomplete,
            revision=self.revision,
        )


class Series:
    __slots__ = ("carry", "closed", "inst", "interval", "iv_ns", "label", "open")

    def __init__(self, inst: Inst, interval: Interval) -> None:
        self.inst = inst
        self.interval = interval
        self.label = interval.value
        self.iv_ns = interval.nanos
        self.open: list[Slot] = []  # open buckets, by start (usually 0 or 1, a few with grace)
        self.closed: Slot | None = None  # the most recently closed bucket (revisable)
        self.carry = 0  # volume of dropped late ticks, added to the next bucket opened


class Inst:
    __slots__ = (
        "exchange",
        "first_ts",
        "gaps",
        "last_ts",
        "series",
        "symbol",
        "token",
        "vcum",
        "vday_end",
        "vday_start",
    )

    def __init__(self, tick: Tick, intervals: tuple[Interval, ...]) -> None:
        self.exchange = tick.exchange
        self.token = tick.token
        self.symbol = tick.symbol
        self.first_ts = tick.ts_exchange
        self.last_ts = NEVER
        # cumulative volume ``vcum`` known for the IST day [vday_start, vday_end); none yet
        self.vday_start = self.vday_end = NEVER
        self.vcum = 0
        self.gaps: list[tuple[int, int]] = []
        self.series = [Series(self, iv) for iv in intervals]

    def set_volume_day(self, ts: int, cumulative: int) -> None:
        self.vday_start = ts - (ts + IST_OFFSET_NS) % DAY_NS
        self.vday_end = self.vday_start + DAY_NS
        self.vcum = cumulative
