"""Sliding-window request limits per key, as the brokers enforce them (pure; clock injected).

Kite allows 3 historical requests a second per API key; Angel One allows 3 a second *and* 180 a
minute on ``getCandleData``. A :class:`SlidingWindowLimiter` holds any number of such windows and
admits a request only when every window has room. Windows slide (the last ``window_s`` seconds
before now), so a burst of 180 calls in ten seconds blocks the rest of that minute, as the real
API does. Refused requests are not counted.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence

__all__ = ["SlidingWindowLimiter"]


class SlidingWindowLimiter:
    """At most ``limit`` admitted requests per ``window_s`` seconds, per key, for every window."""

    def __init__(
        self,
        windows: Sequence[tuple[int, float]],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not windows or any(limit < 1 or span <= 0 for limit, span in windows):
            raise ValueError(f"windows must be (limit >= 1, seconds > 0) pairs, got {windows!r}")
        self._windows = tuple(sorted(windows, key=lambda w: w[1]))
        self._horizon = self._windows[-1][1]
        self._depth = max(limit for limit, _ in self._windows)
        self._clock = clock
        self._seen: dict[str, deque[float]] = {}

    def try_acquire(self, key: str) -> bool:
        """Admit and record one request for ``key`` if every window has room; else False."""
        now = self._clock()
        seen = self._seen.setdefault(key, deque(maxlen=self._depth))
        while seen and seen[0] <= now - self._horizon:
            seen.popleft()
        for limit, span in self._windows:
            if self._count_since(seen, now - span, limit) >= limit:
                return False
        seen.append(now)
        return True

    @staticmethod
    def _count_since(seen: deque[float], since: float, cap: int) -> int:
        count = 0
        for ts in reversed(seen):
            if ts <= since or count >= cap:
                break
            count += 1
        return count
