"""K-way merge of per-instrument tick pages into one stream in global exchange-time order.

Pure: no I/O, no asyncio. :class:`PageMerger` is fed one page at a time per stream (whatever
produced it: a keyset-paginated store query, a list in a test) and hands out merged ticks until
some stream's page runs out; the caller then feeds that stream its next page (or ``None`` at its
end) and asks again. So memory is one page per stream, and the merge never guesses about a stream
whose next tick it has not seen.

Order
    Ticks are ordered by ``(ts_exchange, ts_recv, rank)`` where ``rank`` is the stream's position
    in the list of streams (the caller sorts instruments by ``(exchange, token)``). Within a
    stream the given order is kept (stores return ``(ts_exchange, ts_recv, tick_id)`` order), so
    ties are broken deterministically: the same pages in any split give the same output.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Sequence

from tickstream.model import Tick

__all__ = ["PageMerger", "merge_ticks"]

_Head = tuple[int, int, int]  # (ts_exchange, ts_recv, rank)


class PageMerger:
    """Merges ``streams`` page-wise; see the module docstring."""

    def __init__(self, streams: int) -> None:
        if streams < 0:
            raise ValueError("streams must be >= 0")
        self._pages: list[Sequence[Tick] | None] = [None] * streams
        self._pos = [0] * streams
        self._done = [False] * streams
        self._heap: list[_Head] = []
        self._need: set[int] = set(range(streams))

    def need(self) -> list[int]:
        """Streams that must be fed (their next page or ``None``) before :meth:`take` can go on."""
        return sorted(self._need)

    @property
    def finished(self) -> bool:
        """True when every stream ended and every tick was taken."""
        return not self._heap and not self._need

    def feed(self, stream: int, page: Sequence[Tick] | None) -> None:
        """Give ``stream`` its next page; ``None`` (or an empty page) means the stream ended."""
        if stream not in self._need:
            raise ValueError(f"stream {stream} still has ticks; feed it only when need() says so")
        self._need.discard(stream)
        if not page:
            self._done[stream] = True
            self._pages[stream] = None
            return
        self._pages[stream] = page
        self._pos[stream] = 0
        first = page[0]
        heapq.heappush(self._heap, (first.ts_exchange, first.ts_recv, stream))

    def take(self, max_ticks: int) -> list[Tick]:
        """Up to ``max_ticks`` merged ticks; fewer when a stream needs its next page."""
        out: list[Tick] = []
        if self._need:
            return out
        heap, pages, pos = self._heap, self._pages, self._pos
        room = max_ticks
        while heap and room > 0:
            s = heap[0][2]
            page = pages[s]
            assert page is not None
            i, n = pos[s], len(page)
            j = _run_end(page, i, min(n, i + room), s, heap) if len(heap) > 1 else min(n, i + room)
            out += page[i:j]
            room -= j - i
            if j < n:
                pos[s] = j
                nxt = page[j]
                heapq.heapreplace(heap, (nxt.ts_exchange, nxt.ts_recv, s))
            else:
                heapq.heappop(heap)
                pages[s] = None
                self._need.add(s)
                break
        return out


def _run_end(page: Sequence[Tick], i: int, stop: int, s: int, heap: list[_Head]) -> int:
    """End of the run of ``page[i:]`` (stream ``s``, on top of ``heap``) that sorts before the
    next stream's head; at least one tick (``page[i]`` is the smallest head)."""
    other = heap[1]
    if len(heap) > 2 and heap[2] < other:
        other = heap[2]
    ts2, recv2, rank2 = other
    j = i + 1
    while j < stop:
        t = page[j]
        ts = t.ts_exchange
        if ts < ts2 or (ts == ts2 and (t.ts_recv, s) < (recv2, rank2)):
            j += 1
        else:
            break
    return j


def merge_ticks(streams: Sequence[Iterable[Sequence[Tick]]], batch: int = 1000) -> Iterator[Tick]:
    """Synchronous merge of page iterables (tests, tools): the same order as the async replay."""
    merger = PageMerger(len(streams))
    iters = [iter(s) for s in streams]
    while not merger.finished:
        for s in merger.need():
            merger.feed(s, next(iters[s], None))
        yield from merger.take(batch)
