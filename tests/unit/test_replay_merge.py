"""The k-way page merge: global (ts_exchange, stream rank) order, whatever the paging."""

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
        (t for rows in data for t in rows), key=lambda t: (t.ts_exchange, t.token)
    )  # sorted() is stable: within a stream the given order is kept
    # Act
    merged = list(merge_ticks([pages(rows, page) for rows in data]))
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


def test_merger_take_stops_at_the_horizon_of_the_earliest_page_end() -> None:
    # Arrange
    merger = PageMerger(2)
    merger.feed(0, [tick(1, 1), tick(1, 4)])
    merger.feed(1, [tick(2, 2)])
    # Act
    first = merger.take()
    # Assert: after token 2's page (ends at 2) the merger cannot know what stream 1 holds next
    assert [(t.token, t.ts_exchange - T0) for t in first] == [(1, 1), (2, 2)]
    assert merger.need() == [1]
    assert merger.take() == []
    merger.feed(1, None)
    assert [(t.token, t.ts_exchange - T0) for t in merger.take()] == [(1, 4)]
    assert merger.need() == [0]
    merger.feed(0, None)
    assert merger.finished


def test_merger_equal_stamp_at_horizon_waits_for_lower_rank_next_page() -> None:
    # Arrange: stream 0's page ends at 5 and its next page holds another tick at 5
    merger = PageMerger(2)
    merger.feed(0, [tick(1, 3, n=0), tick(1, 5, n=1)])
    merger.feed(1, [tick(2, 5, n=2), tick(2, 6, n=3)])
    # Act
    first = merger.take()
    merger.feed(0, [tick(1, 5, n=4)])
    second = merger.take()
    merger.feed(0, None)
    third = merger.take()
    # Assert: every tick at 5 of stream 0 precedes stream 1's
    assert [t.ltp for t in first] == [100.0, 101.0]
    assert [t.ltp for t in second] == [104.0]
    assert [t.ltp for t in third] == [102.0, 103.0]
    assert merger.need() == [1]


def test_merger_feed_stream_that_still_has_ticks_raises() -> None:
    # Arrange
    merger = PageMerger(1)
    merger.feed(0, [tick(1, 1)])
    # Act / Assert
    with pytest.raises(ValueError, match="still has ticks"):
        merger.feed(0, [tick(1, 2)])
