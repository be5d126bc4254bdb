"""Replay source for stores that read a time window of many instruments in one query (DuckDB).

Per-instrument keyset pages are what PostgreSQL serves well (an index on the instrument and time),
but DuckDB's tick table has no per-instrument index: each page query scans the rest of the range,
so N instruments cost ~N scans of the day. :func:`window_chunks` instead reads consecutive
windows ``[lo, hi)`` of exchange time, each with ONE query that returns the rows of every replayed
instrument already merged in the replay's order (see :mod:`tickstream.storage.duckdb_window`):
the same ticks in the same order as merging the per-instrument pages, read once.

Window width adapts so that a window holds about ``target`` ticks, following the tick density;
an empty window also returns where the instruments' next rows start, and the next window starts
there (a night, a weekend, or the years before a range that starts at 0: one step). A window
that hits the row limit is continued from its last tick's timestamp, and each instrument's read
position (the key of the last tick read) keeps the continuation exact, as it does a resumed
replay's start.
The next window is fetched while the current one is being delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable, Collection, Mapping, Sequence

from tickstream.model import Instrument, Tick
from tickstream.replay.source import REPLAY_SOURCE
from tickstream.storage.base import TickKey
from tickstream.storage.duckdb_window import TickWindow

__all__ = ["ReadWindow", "next_width", "window_chunks"]

NS = 1_000_000_000
MIN_WIDTH_NS = 1_000_000  # 1 ms
MAX_WIDTH_NS = 86_400 * NS
FIRST_WIDTH_NS = 60 * NS


# ``DuckDBStore.query_tick_window`` (bound): the one store method a window replay reads with.
ReadWindow = Callable[..., Awaitable[TickWindow]]


def next_width(width: int, rows: int, target: int) -> int:
    """The next window's width after one of ``width`` ns held ``rows`` rows (aiming at
    ``target``): 4x wider when empty, else scaled to the density, at most 4x either way."""
    scaled = width * 4 if rows == 0 else max(width // 4, min(width * 4, width * target // rows))
    return max(MIN_WIDTH_NS, min(MAX_WIDTH_NS, scaled))


async def window_chunks(
    read: ReadWindow,
    instruments: Sequence[Instrument],
    start_ns: int,
    end_ns: int,
    positions: Mapping[str, TickKey],
    *,
    target: int = 10_000,
    sources: Collection[str] | None = None,
) -> AsyncGenerator[list[Tick], None]:
    """Merged ticks of ``instruments`` in ``[start_ns, end_ns)``, each strictly after its entry in
    ``positions`` (by instrument key; absent = from ``start_ns``), window by window."""
    keys = [(i.exchange, i.token) for i in instruments]
    floor = TickKey(start_ns - 1, -(2**63), -(2**63))
    after = [max(positions.get(i.key, floor), floor) for i in instruments]
    if not keys:
        return
    # An instrument may have more rows at its position's own timestamp (same ts, later key).
    lo, width, limit = max(start_ns, min(k.ts_exchange for k in after)), FIRST_WIDTH_NS, 4 * target

    def query(lo: int, hi: int) -> asyncio.Task[TickWindow]:
        return asyncio.ensure_future(
            read(
                keys, list(after), lo, hi, limit=limit, sources=sources,
                exclude_source=REPLAY_SOURCE, until_ns=end_ns,
            )
        )  # fmt: skip

    hi = min(lo + width, end_ns)
    task = query(lo, hi) if lo < end_ns else None
    try:
        while task is not None:
            window = await task
            for rank, key in window.last.items():
                after[rank] = key
            if window.truncated:  # the rest of the same window, from the last tick read on
                lo, width = window.ticks[-1].ts_exchange, max(MIN_WIDTH_NS, width // 2)
            elif window.ticks:
                lo, width = hi, next_width(width, len(window.ticks), target)
                hi = min(lo + width, end_ns)
            elif window.next_ts is None:  # nothing more for these instruments in the range
                task = None
                break
            else:  # jump over the empty stretch to where the next rows are (same width)
                lo = max(hi, window.next_ts)
                hi = min(lo + width, end_ns)
            task = query(lo, hi) if lo < end_ns else None  # prefetch while this one is handed on
            if window.ticks:
                yield window.ticks
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
