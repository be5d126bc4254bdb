"""K-way merge of per-instrument tick pages into one stream in global exchange-time order.

Pure: no I/O, no asyncio. :class:`PageMerger` is fed one page at a time per stream (whatever
produced it: a keyset-paginated store query, a list in a test) and hands out merged ticks until
some stream's page runs out; the caller then feeds that stream its next page (or ``None`` at its
end) and asks again. So memory is one page per stream, and the merge never guesses about a stream
whose next tick it has not seen.

Order
    Ticks are ordered by ``(ts_exchange, rank)`` where ``rank`` is the stream's position in the
    list of streams (the caller sorts instruments by ``(exchange, token)``); within a stream the
    given order is kept (stores return ``(ts_exchange, ts_recv, tick_id)`` order). Ties are
    therefore broken deterministically: the same pages in any split give the same output.

How
    A min-heap holds each stream's page end ``(last ts_exchange, rank)``. Its top ``(H, h)`` is
    the horizon: every stream's ticks before ``H`` (and at ``H`` for streams ranked before ``h``)
    are complete, because no later page can sort before them. Those runs, one per stream, are cut
    by bisection and merged by one stable C sort on ``ts_exchange`` (Timsort merges the k runs;
    equal stamps keep rank order), instead of a heap operation per tick; stream ``h`` then needs
    its next page.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Iterable, Iterator, Sequence
from operator import attrgetter

from tickstream.model import Tick

__all__ = ["PageMerger", "merge_ticks"]

_ts = attrgetter("ts_exchange")


class PageMerger:
    """Merges ``streams`` page-wise; see the module docstring."""

    def __init__(self, streams: int) -> None:
        if streams < 0:
            raise ValueError("streams must be >= 0")
        self._pages: list[Sequence[Tick] | None] = [None] * streams
        self._pos = [0] * streams
        self._ends: list[tuple[int, int]] = []  # min-heap of (last ts_exchange of page, stream)
        self._need: set[int] = set(range(streams))

    def need(self) -> list[int]:
        """Streams that must be fed (their next page or ``None``) before :meth:`take` can go on."""
        return sorted(self._need)

    @property
    def finished(self) -> bool:
        """True when every stream ended and every tick was taken."""
        return not self._ends and not self._need

    def feed(self, stream: int, page: Sequence[Tick] | None) -> None:
        """Give ``stream`` its next page; ``None`` (or an empty page) means the stream ended."""
        if stream not in self._need:
            raise ValueError(f"stream {stream} still has ticks; feed it only when need() says so")
        self._need.discard(stream)
        self._pos[stream] = 0
        if not page:
            self._pages[stream] = None
            return
        self._pages[stream] = page
        heapq.heappush(self._ends, (page[-1].ts_exchange, stream))

    def take(self) -> list[Tick]:
        """Every tick that is certain to come next (empty while a stream needs its next page)."""
        if self._need or not self._ends:
            return []
        horizon, h = heapq.heappop(self._ends)
        runs: list[Sequence[Tick]] = []
        pages, pos = self._pages, self._pos
        for s, page in enumerate(pages):
            if page is None:
                continue
            i = pos[s]
            if s == h:
                j = len(page)
            elif s < h:  # its page ends after the horizon, so its ticks at H are all here
                j = bisect.bisect_right(page, horizon, lo=i, key=_ts)
            else:  # stream h may hold more ticks at H that must come first
                j = bisect.bisect_left(page, horizon, lo=i, key=_ts)
            if j > i:
                runs.append(page[i:j])
                pos[s] = j
        pages[h] = None
        self._need.add(h)
        out = [t for run in runs for t in run]
        if len(runs) > 1:
            out.sort(key=_ts)  # stable: equal stamps stay in rank (then store) order
        return out


def merge_ticks(streams: Sequence[Iterable[Sequence[Tick]]]) -> Iterator[Tick]:
    """Synchronous merge of page iterables (tests, tools): the same order as the async replay."""
    merger = PageMerger(len(streams))
    iters = [iter(s) for s in streams]
    while not merger.finished:
        for s in merger.need():
            merger.feed(s, next(iters[s], None))
        yield from merger.take()
