"""Pipeline counters: plain ints and per-reason dicts, cheap to bump in the hot path.

One :class:`PipelineCounters` is shared by every stage of one engine. ``snapshot()`` gives a plain
dict for /metrics or logs. Invariant (tested): every tick handed to the engine ends in exactly one
of ``accepted``, ``quarantined`` (any reason), ``deduplicated`` or ``failover_dropped``::

    ticks_in == accepted + sum(quarantined.values()) + deduplicated + failover_dropped
"""

from __future__ import annotations

from collections import Counter

__all__ = ["PipelineCounters"]


class PipelineCounters:
    """Monotonic counters of one pipeline engine."""

    __slots__ = (
        "accepted",
        "candles_emitted",
        "candles_incomplete",
        "candles_revised",
        "deduplicated",
        "failover_dropped",
        "gaps",
        "late_dropped",
        "late_revised",
        "no_price",
        "out_of_session",
        "quarantined",
        "stale_ticks",
        "ticks_in",
        "volume_resets",
    )

    def __init__(self) -> None:
        self.ticks_in = 0
        self.accepted = 0
        self.quarantined: Counter[str] = Counter()
        self.deduplicated = 0
        self.failover_dropped = 0
        self.gaps = 0
        self.stale_ticks = 0
        self.out_of_session = 0
        self.no_price = 0
        self.volume_resets = 0
        self.late_revised = 0
        self.late_dropped = 0
        self.candles_emitted: Counter[str] = Counter()
        self.candles_revised = 0
        self.candles_incomplete = 0

    def snapshot(self) -> dict[str, int | dict[str, int]]:
        """All counters as plain ints and dicts (a copy; later bumps do not change it)."""
        out: dict[str, int | dict[str, int]] = {}
        for name in self.__slots__:
            value = getattr(self, name)
            out[name] = dict(value) if isinstance(value, Counter) else int(value)
        return out
