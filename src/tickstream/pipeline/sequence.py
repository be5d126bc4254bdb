"""Gap detection and the LIVE/STALE status of each instrument's stream.

Per (source, exchange, token):

* A tick whose ``seq`` is exactly one more than the last is *in order*. A larger jump is a
  **sequence gap**: a :class:`GapEvent` (cause ``"seq_gap"``, from the previous tick's
  ``ts_exchange`` to this one's) is returned. A ``seq`` at or below the last is out of order
  (it does not move the last ``seq`` and does not count towards recovery), unless it is the
  first tick of a later IST day. The first ``seq`` of a day, and the first after a feed gap
  event (a reconnect may restart the numbering), is a new baseline: no gap is inferred across
  it. ``seq`` must count per (source, instrument). Ticks without ``seq``
  (Kite) are in order when their ``ts_exchange`` is not older than the last one.
* A **feed gap** (:meth:`SequenceTracker.on_gap`: a disconnect reported by a feed, for a list of
  instruments or for every instrument of a source) marks those instruments STALE.

"Whole again", precisely: after a gap an instrument is STALE until it has received
``recover_after`` (default 1) in-order ticks *after the gap's end*. For a sequence gap the end is
the tick that revealed it, so that tick itself is STALE and, with the default, the next in-order
tick is LIVE. For a feed gap the end is ``end_ns``: ticks stamped at or before it stay STALE,
and, with the default, the first in-order tick stamped after it (the feed's fresh snapshot after
reconnecting) is LIVE. Every emitted tick carries its status in ``Tick.status``.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from tickstream.calendar import DAY_NS, IST_OFFSET_NS
from tickstream.model import Status, Tick
from tickstream.pipeline.counters import PipelineCounters

__all__ = ["GapEvent", "SequenceConfig", "SequenceTracker"]

SEQ_GAP = "seq_gap"
_LIVE = Status.LIVE


class GapEvent(msgspec.Struct, frozen=True, kw_only=True):
    """Data missing for ``instruments`` ((exchange, token) pairs; None = all of ``source``)."""

    source: str
    instruments: tuple[tuple[str, int], ...] | None
    start_ns: int
    end_ns: int
    cause: str


@dataclass(frozen=True, slots=True)
class SequenceConfig:
    recover_after: int = 1

    def __post_init__(self) -> None:
        if self.recover_after < 1:
            raise ValueError("recover_after must be >= 1")


class _State:
    __slots__ = ("clear_after", "good", "seq", "stale", "ts")

    def __init__(self, seq: int | None, ts: int) -> None:
        self.seq = seq
        self.ts = ts
        self.stale = False
        self.good = 0
        self.clear_after = 0


class SequenceTracker:
    """Tracks ``seq`` and staleness per (source, exchange, token)."""

    def __init__(
        self, config: SequenceConfig | None = None, counters: PipelineCounters | None = None
    ) -> None:
        self._recover = (config or SequenceConfig()).recover_after
        self._counters = counters or PipelineCounters()
        self._state: dict[tuple[str, str, int], _State] = {}

    def process(self, tick: Tick) -> tuple[Tick, GapEvent | None]:
        """The tick with its status set, and the sequence gap it revealed (if any)."""
        key = (tick.source, tick.exchange, tick.token)
        st = self._state.get(key)
        if st is None:
            self._state[key] = _State(tick.seq, tick.ts_exchange)
            return self._with_status(tick, stale=False), None
        gap = None
        seq, last = tick.seq, st.seq
        if seq is None or last is None:
            in_order = tick.ts_exchange >= st.ts
            st.seq = seq if seq is not None else last
        elif seq == last + 1:
            in_order, st.seq = True, seq
        elif seq > last + 1:
            in_order, st.seq = False, seq
            gap = self._gap(tick, st)
        elif (tick.ts_exchange + IST_OFFSET_NS) // DAY_NS > (st.ts + IST_OFFSET_NS) // DAY_NS:
            in_order, st.seq = True, seq  # lower seq on a later IST day: numbering restarted
        else:  # a repeat or an older tick delivered late
            in_order = False
        if tick.ts_exchange > st.ts:
            st.ts = tick.ts_exchange
        if st.stale and gap is None and in_order and tick.ts_exchange > st.clear_after:
            st.good += 1
            if st.good >= self._recover:
                st.stale = False
        if gap is not None:
            self._counters.gaps += 1
        if not st.stale and tick.status is _LIVE:
            return tick, gap  # the common case, without a call
        return self._with_status(tick, stale=st.stale), gap

    def _gap(self, tick: Tick, st: _State) -> GapEvent:
        st.stale, st.good, st.clear_after = True, 0, tick.ts_exchange - 1
        return GapEvent(
            source=tick.source,
            instruments=((tick.exchange, tick.token),),
            start_ns=st.ts,
            end_ns=tick.ts_exchange,
            cause=SEQ_GAP,
        )

    def on_gap(self, event: GapEvent) -> list[tuple[str, int]]:
        """Mark the event's instruments STALE; returns the (exchange, token) pairs it covers."""
        self._counters.gaps += 1
        if event.instruments is None:
            keys = [k for k in self._state if k[0] == event.source]
        else:
            keys = [(event.source, ex, tok) for ex, tok in event.instruments]
        for key in keys:
            st = self._state.get(key)
            if st is not None:
                st.stale, st.good, st.seq = True, 0, None
                st.clear_after = max(st.clear_after, event.end_ns)
        if event.instruments is None:
            return [(k[1], k[2]) for k in keys]
        return list(event.instruments)

    def _with_status(self, tick: Tick, *, stale: bool) -> Tick:
        status = Status.STALE if stale else Status.LIVE
        if stale:
            self._counters.stale_ticks += 1
        if tick.status is status:
            return tick
        return msgspec.structs.replace(tick, status=status)
