"""DuckDB file store: large batches (several vectors and row groups) store each tick once, and the
file-backed store behaves exactly like the in-memory one (the whole conformance suite)."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickstream.model import Tick
from tickstream.storage.duckdb_store import DuckDBStore

from conformance.store_suite import StoreConformance, all_ticks, make_tick

_ROW_GROUP_ROWS = 8_192  # a batch size that spans several DuckDB vectors and row-group boundaries
LARGE = 3 * _ROW_GROUP_ROWS + 50


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[DuckDBStore]:
    s = DuckDBStore(tmp_path / "conformance.duckdb")
    await s.open()
    yield s
    await s.close()


class TestDuckDBFileStoreConformance(StoreConformance):
    pass


def _ticks(n: int, start: int = 0) -> list[Tick]:
    return [make_tick(i) for i in range(start, start + n)]


async def test_duckdb_file_large_batch_redelivered_returns_zero_and_stores_once(
    tmp_path: Path,
) -> None:
    # Arrange: a large batch, then half of it again plus new ticks
    path = tmp_path / "redeliver.duckdb"
    first, overlap = _ticks(LARGE), _ticks(LARGE, start=LARGE // 2)
    store = DuckDBStore(path)
    await store.open()
    try:
        # Act
        counts = [
            await store.write_ticks(first),
            await store.write_ticks(first),
            await store.write_ticks(overlap),
        ]
        stored = await all_ticks(store, limit=3 * LARGE)
    finally:
        await store.close()
    # Assert
    assert counts == [LARGE, 0, LARGE // 2]
    assert stored == _ticks(LARGE + LARGE // 2)


async def test_duckdb_file_path_with_quote_reopens_with_ticks_equal(tmp_path: Path) -> None:
    # Arrange
    path = tmp_path / "o'brien's data" / "ts.duckdb"
    ticks = _ticks(30)
    store = DuckDBStore(path)
    await store.open()
    try:
        await store.write_ticks(ticks)
    finally:
        await store.close()
    again = DuckDBStore(path)
    # Act
    await again.open()
    try:
        stored = await all_ticks(again)
    finally:
        await again.close()
    # Assert
    assert stored == ticks


async def test_duckdb_file_closed_store_is_readable_by_a_plain_connection(tmp_path: Path) -> None:
    # Arrange
    path = tmp_path / "plain.duckdb"
    store = DuckDBStore(path)
    await store.open()
    try:
        await store.write_ticks(_ticks(LARGE))
    finally:
        await store.close()
    # Act: the file lock is released and every row is in the file
    con = duckdb.connect(str(path), read_only=True)
    try:
        row = con.execute("SELECT count(*), count(DISTINCT tick_id) FROM ticks").fetchone()
    finally:
        con.close()
    # Assert
    assert row == (LARGE, LARGE)


@settings(max_examples=4, deadline=None)
@given(st.integers(1, 2 * _ROW_GROUP_ROWS), st.integers(0, _ROW_GROUP_ROWS))
async def test_duckdb_file_any_two_batches_across_row_groups_store_each_tick_once(
    split: int, repeat: int
) -> None:
    # Arrange: ticks [0, split) then [split - repeat, split + ROW_GROUP_ROWS): the second batch
    # repeats up to `repeat` ticks of the first
    first = _ticks(split)
    second = _ticks(_ROW_GROUP_ROWS + min(repeat, split), start=split - min(repeat, split))
    with tempfile.TemporaryDirectory() as tmp:
        store = DuckDBStore(Path(tmp) / "any.duckdb")
        await store.open()
        try:
            # Act
            inserted = await store.write_ticks(first) + await store.write_ticks(second)
            stored = await all_ticks(store, limit=4 * _ROW_GROUP_ROWS)
        finally:
            await store.close()
    # Assert
    assert inserted == split + _ROW_GROUP_ROWS
    assert stored == _ticks(split + _ROW_GROUP_ROWS)
