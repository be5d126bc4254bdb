"""The simulated exchange clock: epoch-ns exchange time that is always inside a trading session.

Modes:

``session`` (default)
    If the wall clock is inside today's NSE continuous session, exchange time is wall time.
    Otherwise exchange time starts at 10:00 IST of the most recent trading day that has begun (a
    holiday- and weekend-aware look-up in :mod:`tickstream.calendar`) and advances with the
    monotonic clock, so a run on a Sunday night still shows a live market with in-session
    timestamps. When simulated time reaches the session close it carries on at the next trading
    day's open (time never goes back).
``wall``
    Exchange time is wall time (``time.time_ns``), whatever the hour.
``fixed``
    Exchange time starts at the given ``start_ns`` and advances with the monotonic clock.

``speed`` scales the advance in ``session`` and ``fixed`` modes (2.0 = two exchange seconds per
real second). The time sources are injectable so tests run without sleeping.
"""

from __future__ import annotations

import datetime as dt
import enum
import time
from collections.abc import Callable
from typing import Final

from tickstream.calendar import ist_date, ist_ns, session_for

__all__ = ["ClockMode", "SimClock", "latest_session_start"]

_EXCHANGE: Final = "NSE"
_START_HOUR: Final = 10
_MAX_DAYS_BACK: Final = 30


class ClockMode(enum.StrEnum):
    SESSION = "session"
    WALL = "wall"
    FIXED = "fixed"


def latest_session_start(wall_ns: int, *, hour: int = _START_HOUR) -> int:
    """``hour``:00 IST of the latest trading day whose session has opened by ``wall_ns``."""
    day = ist_date(wall_ns)
    for _ in range(_MAX_DAYS_BACK):
        session = session_for(_EXCHANGE, day)
        if session is not None and session.open_ns <= wall_ns:
            return ist_ns(day, hour)
        day -= dt.timedelta(days=1)
    raise ValueError("no trading day in the last 30 days")  # pragma: no cover - calendar bug


def _next_open(after_ns: int) -> int:
    day = ist_date(after_ns) + dt.timedelta(days=1)
    for _ in range(_MAX_DAYS_BACK):
        session = session_for(_EXCHANGE, day)
        if session is not None:
            return session.open_ns
        day += dt.timedelta(days=1)
    raise ValueError("no trading day in the next 30 days")  # pragma: no cover - calendar bug


class SimClock:
    """Exchange time for the simulator; see the module docstring for the modes."""

    def __init__(
        self,
        mode: ClockMode | str = ClockMode.SESSION,
        *,
        start_ns: int | None = None,
        speed: float = 1.0,
        wall_ns: Callable[[], int] = time.time_ns,
        monotonic_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.mode = ClockMode(mode)
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self.speed = speed
        self._wall = wall_ns
        self._mono = monotonic_ns
        self._mono0 = monotonic_ns()
        now = wall_ns()
        if self.mode is ClockMode.FIXED:
            if start_ns is None:
                raise ValueError("mode 'fixed' needs start_ns")
            self.start_ns = start_ns
        elif self.mode is ClockMode.SESSION:
            session = session_for(_EXCHANGE, ist_date(now))
            live = session is not None and session.contains(now)
            self.start_ns = now if live else latest_session_start(now)
        else:
            self.start_ns = now
        self._seg_start = self.start_ns  # exchange time at the start of the current session segment
        self._seg_elapsed = 0  # simulated ns consumed before the current segment

    def elapsed_ns(self) -> int:
        """Simulated nanoseconds since the clock started."""
        return int((self._mono() - self._mono0) * self.speed)

    def now_ns(self) -> int:
        """Current exchange time, epoch ns UTC."""
        if self.mode is ClockMode.WALL:
            return self._wall()
        t = self._seg_start + self.elapsed_ns() - self._seg_elapsed
        if self.mode is ClockMode.FIXED:
            return t
        return self._fold(t)

    def _fold(self, t: int) -> int:
        # Carry time past the session close over to the next trading day's open.
        while True:
            session = session_for(_EXCHANGE, ist_date(self._seg_start))
            if session is None or t < session.close_ns:
                return t
            overflow = t - session.close_ns
            self._seg_elapsed += session.close_ns - self._seg_start
            self._seg_start = _next_open(session.close_ns)
            t = self._seg_start + overflow
