"""Validation of canonical ticks: a bad tick is quarantined with a reason, never fixed or dropped.

:meth:`Normalizer.check` returns ``None`` for a good tick or a :class:`Reason`. The engine passes
quarantined ticks on as ``(tick, reason)`` so a sink can store them, and counts them by reason.
Nothing is zero-filled or rewritten here.

Rules, in the order they are checked (the first failing rule is the reason):

``unknown_exchange``
    ``tick.exchange`` is not in :attr:`NormalizeConfig.exchanges` (default: every
    :class:`~tickstream.model.Exchange`).
``non_finite``
    NaN or +/-inf in any float field, including depth prices.
``ts_future`` / ``ts_past``
    ``ts_exchange`` more than ``max_future_ns`` after, or ``max_past_ns`` before, ``ts_recv``
    shifted by ``clock_offset_ns`` (the known offset of a simulated or replayed exchange clock from
    the wall clock; 0 for real brokers; settable per batch through ``Normalizer.clock_offset_ns``).
``high_below_low``
    The tick's day ``high < low`` (both present and non-zero).
``crossed_book``
    ``bid > ask`` (both present and > 0; 0 means an empty side) outside the pre-open
    (:meth:`tickstream.calendar.Session.in_preopen`), where an indicative crossed book is normal.
``non_positive_ltp``
    ``ltp <= 0`` once the instrument has traded (a tick with ``ltp > 0`` was accepted from this
    source); before the first trade an ``ltp`` of 0 means "no trade yet" and passes. A negative
    ``ltp`` is always quarantined, except on ``negative_price_exchanges`` (MCX/NCO: commodity
    futures have settled below zero), where no price sign rule applies.
``volume_decreased``
    The cumulative day ``volume`` went down within one IST day for one (source, exchange, token).
    The first tick of a new IST day is a new baseline, not an error. A tick that is older in
    exchange time than the last accepted one (late) must not carry *more* volume than it.

State is per (source, exchange, token), so two feeds for one instrument never judge each other.
Quarantined ticks do not change the state.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from math import isfinite

from tickstream.calendar import DAY_NS, IST_OFFSET_NS, session_for_ts
from tickstream.model import NS_PER_SEC, Depth, Exchange, Tick
from tickstream.pipeline.counters import PipelineCounters

__all__ = ["NormalizeConfig", "Normalizer", "Reason"]


class Reason(enum.StrEnum):
    """Why a tick was quarantined (low cardinality: used as a metric label)."""

    UNKNOWN_EXCHANGE = "unknown_exchange"
    NON_FINITE = "non_finite"
    TS_FUTURE = "ts_future"
    TS_PAST = "ts_past"
    HIGH_BELOW_LOW = "high_below_low"
    CROSSED_BOOK = "crossed_book"
    NON_POSITIVE_LTP = "non_positive_ltp"
    VOLUME_DECREASED = "volume_decreased"


@dataclass(frozen=True, slots=True)
class NormalizeConfig:
    """Tolerances of the validation rules (see the module docstring)."""

    max_future_ns: int = 5 * NS_PER_SEC
    max_past_ns: int = 600 * NS_PER_SEC
    clock_offset_ns: int = 0
    exchanges: frozenset[str] = field(default_factory=lambda: frozenset(e.value for e in Exchange))
    negative_price_exchanges: frozenset[str] = frozenset({"MCX", "NCO"})


def _floats_finite(t: Tick) -> bool:
    # A sum is finite when every term is (filter(None) drops None and 0.0); only a non-finite sum
    # looks at each value, so a huge-but-finite sum is not rejected. A tuple of attribute loads is
    # ~3x cheaper than operator.attrgetter on a msgspec Struct.
    values = (
        t.ltp,
        t.atp,
        t.bid,
        t.ask,
        t.open,
        t.high,
        t.low,
        t.close,
        t.change,
        t.change_pct,
        t.upper_circuit,
        t.lower_circuit,
        t.high_52w,
        t.low_52w,
    )
    return isfinite(sum(filter(None, values))) or all(isfinite(v) for v in values if v is not None)


def _depth_finite(depth: Depth) -> bool:
    return all(isfinite(level.price) for level in (*depth.bids, *depth.asks))


class _State:
    __slots__ = ("day_start", "traded", "ts", "volume")

    def __init__(self) -> None:
        self.traded = False
        self.day_start = -(2**62)  # IST midnight (epoch ns) of the day ``volume`` belongs to
        self.ts = -(2**62)
        self.volume = 0


class Normalizer:
    """Checks ticks one at a time; keeps only the little per-instrument state the rules need."""

    def __init__(
        self, config: NormalizeConfig | None = None, counters: PipelineCounters | None = None
    ) -> None:
        self._cfg = cfg = config or NormalizeConfig()
        self._exchanges = cfg.exchanges
        self._negative_ok = cfg.negative_price_exchanges
        self._max_future = cfg.max_future_ns
        self._max_past = cfg.max_past_ns
        self.clock_offset_ns = cfg.clock_offset_ns
        self._counters = counters or PipelineCounters()
        self._state: dict[tuple[str, str, int], _State] = {}

    def check(self, tick: Tick) -> Reason | None:
        """None when ``tick`` is good; otherwise the reason (counted, state unchanged)."""
        reason = self._stateless(tick)
        if reason is None:
            reason = self._stateful(tick)
            if reason is None:
                return None
        self._counters.quarantined[reason.value] += 1
        return reason

    def _stateless(self, t: Tick) -> Reason | None:
        if t.exchange not in self._exchanges:
            return Reason.UNKNOWN_EXCHANGE
        if not _floats_finite(t) or (t.depth is not None and not _depth_finite(t.depth)):
            return Reason.NON_FINITE
        skew = t.ts_exchange - t.ts_recv - self.clock_offset_ns
        if skew > self._max_future:
            return Reason.TS_FUTURE
        if -skew > self._max_past:
            return Reason.TS_PAST
        high = t.high
        if high and t.low and high < t.low:
            return Reason.HIGH_BELOW_LOW
        bid = t.bid
        if bid and bid > 0:
            ask = t.ask
            if ask and 0 < ask < bid and not _in_preopen(t):
                return Reason.CROSSED_BOOK
        return None

    def _stateful(self, t: Tick) -> Reason | None:
        key = (t.source, t.exchange, t.token)
        st = self._state.get(key)
        if st is None:
            st = self._state[key] = _State()
        ltp = t.ltp
        if (
            ltp is not None
            and ltp <= 0
            and (st.traded or ltp < 0)
            and t.exchange not in self._negative_ok
        ):
            return Reason.NON_POSITIVE_LTP
        volume = t.volume
        if volume is not None and not _volume_ok(st, t.ts_exchange, volume):
            return Reason.VOLUME_DECREASED
        if ltp and not st.traded and ltp > 0:
            st.traded = True
        return None


def _volume_ok(st: _State, ts: int, volume: int) -> bool:
    """Apply the cumulative-volume rule; records the new volume when the tick is accepted."""
    day_start = st.day_start
    if day_start <= ts < day_start + DAY_NS:
        if ts >= st.ts:
            if volume < st.volume:
                return False
            st.ts, st.volume = ts, volume
        elif volume > st.volume:
            return False
    elif ts >= day_start + DAY_NS:  # first tick of a later IST day: a new baseline
        st.day_start = ts - (ts + IST_OFFSET_NS) % DAY_NS
        st.ts, st.volume = ts, volume
    return True


def _in_preopen(t: Tick) -> bool:
    session = session_for_ts(t.exchange, t.ts_exchange)
    return session is not None and session.in_preopen(t.ts_exchange)
