"""CandleBuilder: OHLCV candles per instrument and interval, bucketed by exchange time.

Buckets
    ``[start, end)`` with ``start`` = :func:`tickstream.calendar.bucket_start` (aligned to the
    IST session open: 5m at 09:15, 09:20, ...) and ``end = min(start + interval, session close)``.
    The session bounds are cached per exchange, so the per-tick bucket is one integer division.
    Ticks outside the continuous session make no candle (counted ``out_of_session``), but their
    cumulative volume is still the baseline (the pre-open auction volume is not put in 09:15).
No-trade intervals
    No candle is emitted for a bucket without ticks: no synthetic flat bars, so indicators see
    only real bars. Ticks without a price (``ltp`` None or 0) count as ``no_price`` and make none.
OHLC
    open = ltp of the earliest tick by ``ts_exchange``, close = ltp of the latest (ties: the
    later arrival), high/low = extremes, ``ticks`` = number of ticks, ``oi`` = the latest oi.
Volume
    The change of the cumulative day ``volume`` (never summed ``ltq``), per instrument: each tick
    adds ``volume - previous cumulative volume of the same IST day`` to its buckets. The first
    tick of an IST day we have no earlier value for (e.g. we joined mid-day) is the baseline and
    adds 0. A late tick (older than the instrument's newest) adds 0 and leaves the baseline: its
    trades are already inside the newer tick's cumulative volume. A decrease within a day is a
    reset (counted ``volume_resets``): new baseline, adds 0. So the candle volumes of a day
    always sum to the cumulative volume change over the ticks they cover.
partial
    ``True`` when the instrument's first tick we ever saw is after the bucket start: we may have
    missed the beginning of that bucket (we joined mid-bucket). Seeing any tick of the instrument
    at or before a bucket's start (the pre-open, an earlier bucket) means later buckets are whole.
incomplete
    ``True`` when a gap ``[start_ns, end_ns]`` (sequence gap or feed disconnect, see
    :meth:`CandleBuilder.mark_gap`) overlaps the bucket.
Closing (exchange-time watermark per exchange)
    The watermark of an exchange is the newest ``ts_exchange`` seen on it (or the estimate given
    to :meth:`on_timer`). A bucket closes, and its Candle is emitted, once the watermark reaches
    ``end + grace_ns``; ``grace_ns`` absorbs the small cross-instrument disorder of a live feed.
    A quiet instrument's candle therefore closes as soon as *any* instrument of its exchange (or
    the timer) passes its end plus the grace.
Late ticks
    A tick for the most recently closed bucket of its (instrument, interval) while the watermark
    is still before ``end + allowed_lateness_ns`` *revises* it: the candle is emitted again with
    ``revision + 1``. Older buckets, or later than that window, are not changed (counted
    ``late_dropped``); the tick itself still flows on to be stored raw. Its volume delta (non-zero
    only when it is newest for its instrument but its bucket was closed by other instruments'
    ticks) is carried into the next bucket that series opens, so volume is never lost. Only the
    most recent closed bucket is revisable, so indicator state can always be corrected with one
    step back.

Output is an ordered list of Candle events (:meth:`drain`): ``revision == 0`` is a close,
``revision > 0`` a revision of the last closed candle of that series.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass

from tickstream.calendar import DAY_NS, session_for_ts
from tickstream.model import NS_PER_SEC, Candle, Interval, Tick
from tickstream.pipeline._buckets import NEVER, Inst, Series, Slot
from tickstream.pipeline.counters import PipelineCounters

__all__ = ["CandleBuilder", "CandleConfig"]

InstrumentKey = tuple[str, int]


@dataclass(frozen=True, slots=True)
class CandleConfig:
    intervals: tuple[Interval, ...] = (Interval.S1, Interval.M1, Interval.M5)
    grace_ns: int = 1 * NS_PER_SEC
    allowed_lateness_ns: int = 10 * NS_PER_SEC

    def __post_init__(self) -> None:
        if not self.intervals or len(set(self.intervals)) != len(self.intervals):
            raise ValueError("intervals must be non-empty and distinct")
        if self.grace_ns < 0 or self.allowed_lateness_ns < self.grace_ns:
            raise ValueError("need 0 <= grace_ns <= allowed_lateness_ns")


class CandleBuilder:
    """Builds candles for every instrument and configured interval; see the module docstring."""

    def __init__(
        self, config: CandleConfig | None = None, counters: PipelineCounters | None = None
    ) -> None:
        self.config = cfg = config or CandleConfig()
        self._counters = counters or PipelineCounters()
        self._intervals = cfg.intervals
        self._grace = cfg.grace_ns
        self._lateness = cfg.allowed_lateness_ns
        self._max_iv = max(iv.nanos for iv in cfg.intervals)
        self._insts: dict[InstrumentKey, Inst] = {}
        self._sessions: dict[str, tuple[int, int]] = {}
        self._wm: dict[str, int] = {}
        self._ends: dict[str, list[int]] = {}  # heap of pending bucket ends per exchange
        self._pending: dict[tuple[str, int], list[Slot]] = {}  # (exchange, end) -> slots
        self._events: list[Candle] = []

    # -- public API ------------------------------------------------------------------------

    def add(self, tick: Tick) -> None:
        """Apply one accepted tick (events collect until :meth:`drain`)."""
        exchange, ts = tick.exchange, tick.ts_exchange
        inst = self._insts.get((exchange, tick.token))
        if inst is None:
            inst = self._insts[(exchange, tick.token)] = Inst(tick, self._intervals)
        late = ts < inst.last_ts
        volume = tick.volume
        dv = 0
        if volume is not None:
            cum = inst.vcum
            if not late and cum <= volume and inst.vday_start <= ts < inst.vday_end:
                dv, inst.vcum = volume - cum, volume  # the hot path of _volume_delta
            else:
                dv = self._volume_delta(inst, volume, ts, late)
        if not late:
            inst.last_ts = ts
        bounds = self._sessions.get(exchange)
        if bounds is None or not bounds[0] <= ts < bounds[1]:
            bounds = self._session(exchange, ts)
        if bounds is None:
            self._counters.out_of_session += 1
        elif tick.ltp:
            self._apply(inst, ts, tick.ltp, dv, tick.oi, bounds)
        else:
            self._counters.no_price += 1
        wm = self._wm
        if ts > wm.get(exchange, NEVER):
            wm[exchange] = ts
            ends = self._ends.get(exchange)
            if ends and ends[0] + self._grace <= ts:
                self._close_until(exchange, ts - self._grace)

    def seed_volume(self, tick: Tick, cumulative: int) -> None:
        """Make ``cumulative`` the known volume of ``tick``'s instrument on ``tick``'s IST day.

        Call before adding ``tick``; its volume then counts from ``cumulative`` instead of being
        the day's baseline (e.g. a previously stored value, or 0 for quantities summed from 0).
        """
        key = (tick.exchange, tick.token)
        inst = self._insts.get(key)
        if inst is None:
            inst = self._insts[key] = Inst(tick, self._intervals)
        inst.set_volume_day(tick.ts_exchange, cumulative)

    def on_timer(self, watermark_ns: int, exchange: str | None = None) -> None:
        """Advance the watermark of ``exchange`` (or of every exchange seen) to an estimate."""
        for ex in [exchange] if exchange is not None else list(self._wm):
            if watermark_ns > self._wm.get(ex, NEVER):
                self._advance(ex, watermark_ns)

    def mark_gap(self, instruments: Iterable[InstrumentKey], start_ns: int, end_ns: int) -> None:
        """Flag buckets overlapping ``[start_ns, end_ns]`` incomplete (open, future and the
        revisable last closed one, which is re-emitted as a revision)."""
        for key in instruments:
            inst = self._insts.get(key)
            if inst is None:
                continue
            inst.gaps.append((start_ns, end_ns))
            wm = self._wm.get(inst.exchange, NEVER)
            for series in inst.series:
                for slot in series.open:
                    if slot.start <= end_ns and start_ns < slot.end:
                        slot.incomplete = True
                c = series.closed
                if (
                    c is not None
                    and not c.incomplete
                    and c.start <= end_ns
                    and start_ns < c.end
                    and wm < c.end + self._lateness
                ):
                    c.incomplete = True
                    self._revise(c)

    def flush(self) -> None:
        """Close every open bucket (end of replay, shutdown), in end order per exchange."""
        for exchange in list(self._ends):
            self._close_until(exchange, 2**62)

    def drain(self) -> list[Candle]:
        """The candle events since the last drain, in order (revision > 0 = a revision)."""
        events, self._events = self._events, []
        return events

    def current(self, key: InstrumentKey, interval: Interval) -> Candle | None:
        """Snapshot of the newest open bucket of (instrument, interval), for live dashboards."""
        inst = self._insts.get(key)
        if inst is None:
            return None
        for series in inst.series:
            if series.interval is interval and series.open:
                return series.open[-1].candle()
        return None

    def watermark(self, exchange: str) -> int | None:
        return self._wm.get(exchange)

    def watermarks(self) -> dict[str, int]:
        return dict(self._wm)

    # -- internals -------------------------------------------------------------------------

    def _session(self, exchange: str, ts: int) -> tuple[int, int] | None:
        session = session_for_ts(exchange, ts)
        if session is None:
            return None
        bounds = (session.open_ns, session.close_ns)
        self._sessions[exchange] = bounds
        return bounds if session.contains(ts) else None

    def _volume_delta(self, inst: Inst, volume: int, ts: int, late: bool) -> int:
        if ts >= inst.vday_end:  # first tick of a later IST day: the baseline
            inst.set_volume_day(ts, volume)
            return 0
        if late or ts < inst.vday_start:
            return 0
        cum, inst.vcum = inst.vcum, volume
        if volume >= cum:
            return volume - cum
        self._counters.volume_resets += 1
        return 0

    def _apply(
        self, inst: Inst, ts: int, ltp: float, dv: int, oi: int | None, bounds: tuple[int, int]
    ) -> None:
        for series in inst.series:
            op = series.open
            if op:
                s = op[-1]
                if s.start <= ts < s.end and ts >= s.last_ts:
                    # Hot path, an in-order tick of the newest open bucket (Slot.add inlined).
                    if ltp > s.high:
                        s.high = ltp
                    elif ltp < s.low:
                        s.low = ltp
                    s.close, s.last_ts = ltp, ts
                    if oi is not None:
                        s.oi = oi
                    s.volume += dv
                    s.ticks += 1
                    continue
            open_ns, close_ns = bounds
            iv = series.iv_ns
            start = open_ns if iv >= DAY_NS else ts - (ts - open_ns) % iv
            end = start + iv
            self._route(series, start, end if end < close_ns else close_ns, ts, ltp, dv, oi)

    def _route(
        self, series: Series, start: int, end: int, ts: int, ltp: float, dv: int, oi: int | None
    ) -> None:
        for slot in series.open:
            if slot.start == start:
                slot.add(ts, ltp, dv, oi)
                return
        exchange = series.inst.exchange
        wm = self._wm.get(exchange, NEVER)
        closed = series.closed
        if closed is not None and start <= closed.start:
            if start == closed.start and wm < closed.end + self._lateness:
                closed.add(ts, ltp, dv, oi)
                self._counters.late_revised += 1
                self._revise(closed)
            else:
                self._counters.late_dropped += 1
                series.carry += dv
            return
        if wm >= end + self._lateness:
            self._counters.late_dropped += 1
            series.carry += dv
            return
        slot = self._new_slot(series, start, end, ts)
        slot.add(ts, ltp, dv + series.carry, oi)
        series.carry = 0
        if wm >= end + self._grace:  # late for a bucket never opened, inside the window
            self._counters.late_revised += 1
            self._close(slot)
        else:
            self._register(exchange, slot)

    def _new_slot(self, series: Series, start: int, end: int, ts: int) -> Slot:
        inst = series.inst
        slot = Slot(series, start, end, inst.first_ts > start)
        if inst.gaps:
            inst.gaps = [g for g in inst.gaps if g[1] >= ts - self._max_iv]
            slot.incomplete = any(gs <= end and start <= ge for gs, ge in inst.gaps)
        op = series.open
        if not op or op[-1].start < start:
            op.append(slot)
        else:
            op.append(slot)
            op.sort(key=lambda s: s.start)
        return slot

    def _register(self, exchange: str, slot: Slot) -> None:
        key = (exchange, slot.end)
        lst = self._pending.get(key)
        if lst is None:
            self._pending[key] = [slot]
            heapq.heappush(self._ends.setdefault(exchange, []), slot.end)
        else:
            lst.append(slot)

    def _advance(self, exchange: str, wm: int) -> None:  # keep in step with add()
        self._wm[exchange] = wm
        ends = self._ends.get(exchange)
        if ends and ends[0] + self._grace <= wm:
            self._close_until(exchange, wm - self._grace)

    def _close_until(self, exchange: str, limit: int) -> None:
        ends = self._ends.get(exchange, [])
        while ends and ends[0] <= limit:
            end = heapq.heappop(ends)
            for slot in self._pending.pop((exchange, end)):
                self._close(slot)

    def _close(self, slot: Slot) -> None:
        series = slot.series
        op = series.open
        if op[0] is slot:
            del op[0]
        else:
            op.remove(slot)
        series.closed = slot
        counters = self._counters
        counters.candles_emitted[series.label] += 1
        if slot.incomplete:
            counters.candles_incomplete += 1
        self._events.append(slot.candle())

    def _revise(self, slot: Slot) -> None:
        slot.revision += 1
        self._counters.candles_revised += 1
        self._events.append(slot.candle())
