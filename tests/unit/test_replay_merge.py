"""The k-way page merge: global (ts_exchange, ts_recv, stream rank) order, whatever the paging."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickstream.model import Tick
from tickstream.replay.merge import PageMerger, merge_ticks

T0 = 1_732_160_700_000_000_000


def tick(token: int, ts: int, recv: int = 0, n: int = 0) -> Tick:
    return Tick(
        exchange="NSE",
        token=token,
        symbol=f"S{token}",
        source="sim",
        ts_exchange=T0 + ts,
        ts_recv=T0 + ts + recv,
        ltp=100.0 + n,
    )


def pages(ticks: list[Tick], size: int) -> list[list[Tick]]:
    return [ticks[i : i + size] for i in range(0, len(ticks), size)]


# One stream = sorted (ts, recv) pairs; ``n`` numbers each tick so equal stamps stay distinct.
stream_st = st.lists(st.tuples(st.integers(0, 50), st.integers(0, 3)), max_size=40).map(sorted)


@settings(max_examples=60, deadline=None)
@given(streams=st.lists(stream_st, min_size=1, max_size=5), page=st.integers(1, 7))
def test_merge_any_paging_equals_stable_sort_by_time_then_rank(
    streams: list[list[tuple[int, int]]], page: int
) -> None:
    # Arrange
    data = [
        [tick(s, ts, recv, n) for n, (ts, recv) in enumerate(rows)]
        for s, rows in enumerate(streams)
    ]
    expected = sorted(
        (t for rows in data for t in rows), key=lambda t: (t.ts_exchange, t.ts_recv, t.token)
    )  # sorted() is stable: within a stream the given order is kept
    # Act
    merged = list(merge_ticks([pages(rows, page) for rows in data], batch=3))
    # Assert
    assert merged == expected


def test_merge_equal_stamps_across_streams_lower_rank_first() -> None:
    # Arrange
    a = [tick(1, 5, 0, 0), tick(1, 5, 0, 1)]
    b = [tick(2, 5, 0, 2)]
    # Act
    merged = list(merge_ticks([[b], [a]]))
    # Assert: stream 0 (token 2) wins the tie, stream 1 keeps its own order
    assert [(t.token, t.ltp) for t in merged] == [(2, 102.0), (1, 100.0), (1, 101.0)]


def test_merger_take_stops_when_a_stream_needs_its_next_page() -> None:
    # Arrange
    merger = PageMerger(2)
    merger.feed(0, [tick(1, 1), tick(1, 4)])
    merger.feed(1, [tick(2, 2)])
    # Act
    first = merger.take(10)
    # Assert: after token 2's only tick the merger cannot know what stream 1 holds next
    assert [(t.token, t.ts_exchange - T0) for t in first] == [(1, 1), (2, 2)]
    assert merger.need() == [1]
    assert merger.take(10) == []
    merger.feed(1, None)
    assert [(t.token, t.ts_exchange - T0) for t in merger.take(10)] == [(1, 4)]
    assert merger.need() == [0]
    merger.feed(0, None)
    assert merger.finished


def test_merger_feed_stream_that_still_has_ticks_raises() -> None:
    # Arrange
    merger = PageMerger(1)
    merger.feed(0, [tick(1, 1)])
    # Act / Assert
    with pytest.raises(ValueError, match="still has ticks"):
        merger.feed(0, [tick(1, 2)])


def test_merger_take_respects_max_ticks() -> None:
    # Arrange
    merger = PageMerger(1)
    merger.feed(0, [tick(1, i) for i in range(10)])
    # Act
    got = [merger.take(4), merger.take(4), merger.take(4)]
    # Assert
    assert [[t.ts_exchange - T0 for t in part] for part in got] == [
        [0, 1, 2, 3],
        [4, 5, 6, 7],
        [8, 9],
    ]
