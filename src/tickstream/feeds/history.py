"""Historical candles: chunking, pacing, retries and a fallback source, for any broker.

A :class:`HistorySource` fetches one chunk (a range no longer than its ``max_days`` for the
interval) and raises :class:`RateLimited` when the broker refuses for rate (Kite 429, Angel's
plain-text 403). :func:`fetch_candles` splits a range into chunks, paces each request through the
source's :class:`RateLimiter` and retries rate refusals with backoff. :class:`HistoryService`
tries the primary source, then (with a warning) the fallback; an instrument that fails on both is
excluded and logged. :func:`reference_levels` derives the previous close and high and the 20-day
average daily volume from daily candles.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import msgspec

from tickstream.calendar import DAY_NS
from tickstream.model import Candle, Instrument, Interval

__all__ = [
    "HistoryError",
    "HistoryService",
    "HistorySource",
    "RateLimited",
    "RateLimiter",
    "ReferenceLevels",
    "chunk_range",
    "fetch_candles",
    "reference_levels",
]

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


class HistoryError(Exception):
    """A history request that failed (the message never carries a credential)."""


class RateLimited(HistoryError):
    """The broker refused for rate: retry after a pause."""


class HistorySource(Protocol):
    """One source of candles (a broker's history endpoint, or a fallback)."""

    name: str

    def max_days(self, interval: Interval) -> int:
        """The longest range, in days, one request may cover for ``interval``."""
        ...

    async def fetch(
        self, instrument: Instrument, interval: Interval, start_ns: int, end_ns: int
    ) -> list[Candle]:
        """Candles starting in ``[start_ns, end_ns)``; RateLimited or HistoryError on failure."""
        ...


class RateLimiter:
    """Paces calls to one endpoint: at most ``limit`` per ``window_s`` for every window.

    ``margin_secs`` widens every window: the server stamps a request when it arrives, and two
    requests' network delays differ, so pacing exactly at the limit would still be refused.
    """

    def __init__(
        self,
        windows: Sequence[tuple[int, float]],
        *,
        margin_secs: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.windows = tuple(windows)
        self.margin_secs = margin_secs
        self._clock = clock
        self._sleep = sleep
        depth = max(limit for limit, _ in self.windows)
        self._sent: collections.deque[float] = collections.deque(maxlen=depth)
        self._lock = asyncio.Lock()

    def _wait(self, now: float) -> float:
        wait = 0.0
        sent = list(self._sent)
        for limit, span in self.windows:
            if len(sent) >= limit:
                wait = max(wait, sent[-limit] + span + self.margin_secs - now)
        return wait

    async def acquire(self) -> None:
        """Wait until a call is allowed, then record it."""
        async with self._lock:
            while (wait := self._wait(self._clock())) > 0:
                await self._sleep(wait)
            self._sent.append(self._clock())


def chunk_range(start_ns: int, end_ns: int, max_days: int) -> list[tuple[int, int]]:
    """``[start, end)`` as consecutive half-open chunks of at most ``max_days`` days."""
    if end_ns <= start_ns:
        return []
    step = max_days * DAY_NS
    return [(a, min(a + step, end_ns)) for a in range(start_ns, end_ns, step)]


async def fetch_candles(
    source: HistorySource,
    instrument: Instrument,
    interval: Interval,
    start_ns: int,
    end_ns: int,
    *,
    retries: int = 5,
    backoff_secs: float = 1.0,
    sleep: Sleep = asyncio.sleep,
) -> list[Candle]:
    """Every candle of the range, chunk by chunk, retrying rate refusals; sorted, de-duplicated."""
    out: dict[int, Candle] = {}
    for a, b in chunk_range(start_ns, end_ns, source.max_days(interval)):
        for attempt in range(retries + 1):
            try:
                got = await source.fetch(instrument, interval, a, b)
            except RateLimited:
                if attempt == retries:
                    raise
                await sleep(backoff_secs * 2**attempt)
                continue
            out.update((c.start, c) for c in got if start_ns <= c.start < end_ns)
            break
    return [out[k] for k in sorted(out)]


class HistoryService:
    """Primary source, then the fallback; instruments failing on both are excluded."""

    def __init__(
        self,
        primary: HistorySource,
        fallback: HistorySource | None = None,
        *,
        retries: int = 5,
        backoff_secs: float = 1.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.primary = primary
        self.fallback = fallback
        self._kw = {"retries": retries, "backoff_secs": backoff_secs, "sleep": sleep}
        self.excluded: list[str] = []
        self.fell_back: list[str] = []

    async def _one(
        self, source: HistorySource, inst: Instrument, interval: Interval, a: int, b: int
    ) -> list[Candle]:
        return await fetch_candles(source, inst, interval, a, b, **self._kw)  # type: ignore[arg-type]

    async def candles(
        self, instrument: Instrument, interval: Interval, start_ns: int, end_ns: int
    ) -> list[Candle] | None:
        """The candles, or None (logged, excluded) when no source could deliver them."""
        try:
            return await self._one(self.primary, instrument, interval, start_ns, end_ns)
        except HistoryError as exc:
            first = exc
        if self.fallback is None:
            log.error("history: %s excluded: %s: %s", instrument.symbol, self.primary.name, first)
            self.excluded.append(instrument.symbol)
            return None
        log.warning(
            "history: %s failed on %s (%s); falling back to %s",
            instrument.symbol, self.primary.name, first, self.fallback.name,
        )  # fmt: skip
        try:
            got = await self._one(self.fallback, instrument, interval, start_ns, end_ns)
        except HistoryError as exc:
            log.error(
                "history: %s excluded: %s: %s; %s: %s", instrument.symbol,
                self.primary.name, first, self.fallback.name, exc,
            )  # fmt: skip
            self.excluded.append(instrument.symbol)
            return None
        self.fell_back.append(instrument.symbol)
        return got


class ReferenceLevels(msgspec.Struct, frozen=True, kw_only=True):
    """Yesterday's close and high, and the average daily volume of the last ``days`` sessions."""

    symbol: str
    prev_close: float
    prev_high: float
    avg_daily_volume: float
    days: int


def levels_from_daily(symbol: str, daily: Sequence[Candle], before_ns: int, days: int = 20) -> (
    ReferenceLevels | None
):  # fmt: skip
    """Levels from daily candles that started before ``before_ns`` (None if there are none)."""
    past = sorted((c for c in daily if c.start < before_ns), key=lambda c: c.start)
    if not past:
        return None
    last, window = past[-1], past[-days:]
    return ReferenceLevels(
        symbol=symbol, prev_close=last.close, prev_high=last.high,
        avg_daily_volume=sum(c.volume for c in window) / len(window), days=len(window),
    )  # fmt: skip


async def reference_levels(
    service: HistoryService, instruments: Sequence[Instrument], today_ns: int, days: int = 20
) -> dict[str, ReferenceLevels]:
    """Previous close/high and ``days``-day average volume per instrument key (excluded: absent)."""
    start = today_ns - (days * 2 + 10) * DAY_NS  # enough calendar days for ``days`` sessions
    out: dict[str, ReferenceLevels] = {}
    for inst in instruments:
        daily = await service.candles(inst, Interval.D1, start, today_ns)
        levels = levels_from_daily(inst.symbol, daily or [], today_ns, days)
        if levels is not None:
            out[inst.key] = levels
    return out
