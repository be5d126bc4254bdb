"""Pacing of a replay by exchange time: when each tick is due on the replay's clock.

Pure: the clock is a number the caller passes in (seconds, e.g. ``loop.time()``). A schedule is
anchored at one point, ``(anchor_ts, anchor_clock)``: a tick stamped ``ts`` is due at
``anchor_clock + (ts - anchor_ts) / speed`` seconds. Every tick's due time is computed from the
anchor, never by adding up sleeps, so the lateness of one wake-up does not accumulate: 60 s of
exchange time at 10x ends 6 s after the first tick however many sleeps it took.

The anchor is set by the first tick and moved only by the controls: resuming after a pause,
seeking, or changing speed re-anchor at the current position, so time spent paused is not
"caught up" afterwards. ``speed=None`` is *max*: nothing is ever due in the future.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

from tickstream.model import NS_PER_SEC, Tick

__all__ = ["Pacer", "parse_speed"]


def parse_speed(text: str | float | None) -> float | None:
    """``"10"``/``"10x"``/``2.5`` -> a float; ``"max"``, ``"inf"``, ``"0"``, None -> None (max)."""
    if text is None:
        return None
    if isinstance(text, int | float):
        value = float(text)
    else:
        key = text.strip().lower()
        if key in ("max", "inf", "infinity", "∞", ""):
            return None
        key = key.removesuffix("x")
        try:
            value = float(key)
        except ValueError:
            raise ValueError(
                f"invalid speed {text!r}; expected a number like 10 or 'max'"
            ) from None
    if math.isinf(value) or value == 0:
        return None
    if value < 0 or math.isnan(value):
        raise ValueError(f"speed must be positive, got {text!r}")
    return value


class Pacer:
    """Due times of ticks for one speed; see the module docstring."""

    def __init__(self, speed: float | None) -> None:
        self.speed = speed
        self._anchor: tuple[int, float] | None = None  # (anchor_ts, anchor_clock)

    @property
    def anchored(self) -> bool:
        return self._anchor is not None

    def anchor(self, ts_exchange: int, clock: float) -> None:
        """Make ``ts_exchange`` due at ``clock`` (first tick, resume, seek, new speed)."""
        self._anchor = (ts_exchange, clock)

    def reset(self) -> None:
        """Forget the anchor: the next tick re-anchors (after a pause or a seek)."""
        self._anchor = None

    def set_speed(self, speed: float | None, ts_exchange: int | None, clock: float) -> None:
        """Change speed from position ``ts_exchange`` (the last emitted tick) at ``clock``."""
        self.speed = speed
        if ts_exchange is None:
            self._anchor = None
        else:
            self._anchor = (ts_exchange, clock)

    def due(self, ts_exchange: int) -> float:
        """Clock time at which a tick stamped ``ts_exchange`` is due (-inf at max speed)."""
        if self.speed is None or self._anchor is None:
            return -math.inf
        ts0, c0 = self._anchor
        return c0 + (ts_exchange - ts0) / (self.speed * NS_PER_SEC)

    def horizon(self, clock: float) -> int | None:
        """The newest exchange time due at ``clock`` (None: everything is due)."""
        if self.speed is None or self._anchor is None:
            return None
        ts0, c0 = self._anchor
        # round, not floor: a tick is due at its own due() time despite float rounding
        return ts0 + round((clock - c0) * self.speed * NS_PER_SEC)

    def split_due(self, ticks: Sequence[Tick], start: int, clock: float) -> int:
        """Index ``end`` such that ``ticks[start:end]`` are due at ``clock`` (ticks in time order).

        Anchors on ``ticks[start]`` when there is no anchor yet."""
        if start >= len(ticks):
            return start
        if self.speed is None:
            return len(ticks)
        if self._anchor is None:
            self._anchor = (ticks[start].ts_exchange, clock)
        horizon = self.horizon(clock)
        assert horizon is not None
        return bisect.bisect_right(ticks, horizon, lo=start, key=_ts)


def _ts(tick: Tick) -> int:
    return tick.ts_exchange
