"""Where replayed ticks come from: keyset-paginated pages per instrument from any TickStore.

:func:`store_pages` is the per-instrument async generator: it walks
:meth:`~tickstream.storage.base.TickStore.query_ticks` page by page with the store's keyset cursor
(rows strictly after the last one seen; never OFFSET), so DuckDB (hot table + local Parquet
archive) and PostgreSQL are read the same way. Rows that are themselves replays
(``source == "replay"``) are skipped, so replaying a day twice never replays the first replay.

:class:`Prefetch` keeps the next page's query running while the current page is merged.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import re
from collections.abc import AsyncIterator, Collection, Sequence

from tickstream.calendar import ist_midnight_ns, ist_ns
from tickstream.model import Instrument, Tick
from tickstream.storage.base import TickKey, TickStore, encode_cursor

__all__ = [
    "REPLAY_SOURCE",
    "Prefetch",
    "day_range",
    "parse_hhmm",
    "resolve_instruments",
    "store_pages",
]

REPLAY_SOURCE = "replay"
_KEY = re.compile(r"^([A-Za-z_]+):(\d+)$")


async def store_pages(
    store: TickStore,
    exchange: str,
    token: int,
    start_ns: int,
    end_ns: int,
    *,
    after: TickKey | None = None,
    page_size: int = 10_000,
    sources: Collection[str] | None = None,
) -> AsyncIterator[list[Tick]]:
    """One instrument's ticks in ``[start_ns, end_ns)`` strictly after ``after``, page by page.

    ``sources`` keeps only those sources (None: every source except ``replay``). Pages are never
    empty; the generator ends after the last one."""
    cursor = encode_cursor(after) if after is not None else None
    lo = start_ns if after is None else max(start_ns, after.ts_exchange)
    while True:
        page = await store.query_ticks(exchange, token, lo, end_ns, limit=page_size, after=cursor)
        if page.ticks:
            # Same rows as moving the cursor alone, but the time bound lets the store skip
            # what lies before it (zone maps, time partitions) instead of filtering it again.
            lo = page.ticks[-1].ts_exchange
        if sources is None:
            ticks = [t for t in page.ticks if t.source != REPLAY_SOURCE]
        else:
            ticks = [t for t in page.ticks if t.source in sources]
        if ticks:
            yield ticks
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


class Prefetch:
    """Runs ``source``'s next ``__anext__`` in the background while the caller works."""

    def __init__(self, source: AsyncIterator[list[Tick]]) -> None:
        self._source = source
        self._task: asyncio.Task[list[Tick]] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._source.__anext__())

    async def next(self) -> list[Tick] | None:
        """The next page (None at the end); starts fetching the one after it."""
        self.start()
        assert self._task is not None
        try:
            page = await self._task
        except StopAsyncIteration:
            self._task = None
            return None
        self._task = asyncio.ensure_future(self._source.__anext__())
        return page

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await task
        aclose = getattr(self._source, "aclose", None)
        if aclose is not None:
            await aclose()


def parse_hhmm(text: str) -> tuple[int, int]:
    """``"09:15"`` -> (9, 15); ValueError otherwise."""
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", text.strip())
    if not m or int(m[1]) > 24 or int(m[2]) > 59:
        raise ValueError(f"invalid time {text!r}; expected HH:MM (IST)")
    return int(m[1]), int(m[2])


def day_range(day: dt.date, start: str | None = None, end: str | None = None) -> tuple[int, int]:
    """``[start, end)`` in epoch ns for an IST day and optional HH:MM IST bounds."""
    lo = ist_ns(day, *parse_hhmm(start)) if start else ist_midnight_ns(day)
    hi = ist_ns(day, *parse_hhmm(end)) if end else ist_midnight_ns(day + dt.timedelta(days=1))
    if hi <= lo:
        raise ValueError(f"empty time range: {start or '00:00'} .. {end or '24:00'}")
    return lo, hi


async def resolve_instruments(
    store: TickStore, names: Sequence[str], universe: Sequence[Instrument] = ()
) -> list[Instrument]:
    """Instruments for ``names``: ``EXCHANGE:TOKEN`` as given, else an exact symbol match in the
    store's instruments, else in ``universe``. Sorted by (exchange, token); unknown names fail."""
    found: dict[tuple[str, int], Instrument] = {}
    missing: list[str] = []
    by_symbol = {i.symbol.upper(): i for i in universe}
    for name in names:
        m = _KEY.match(name.strip())
        inst: Instrument | None
        if m:
            inst = Instrument(exchange=m[1].upper(), token=int(m[2]), symbol=name.strip())
        else:
            inst = await _lookup(store, name.strip()) or by_symbol.get(name.strip().upper())
        if inst is None:
            missing.append(name)
        else:
            found[(inst.exchange, inst.token)] = inst
    if missing:
        raise ValueError(f"unknown instruments: {', '.join(missing)}")
    return [found[k] for k in sorted(found)]


async def _lookup(store: TickStore, symbol: str) -> Instrument | None:
    for inst in await store.search_instruments(symbol, limit=5):
        if inst.symbol.upper() == symbol.upper():
            return inst
    return None
