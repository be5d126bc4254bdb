from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickstream.model import Interval
from tickstream.storage import BACKENDS, backend_class, create_store
from tickstream.storage.base import (
    TickKey,
    candle_from_row,
    candle_row,
    decode_cursor,
    encode_cursor,
    tick_columns,
)
from tickstream.storage.duckdb_store import DuckDBStore
from tickstream.storage.pg_migrate import load_migrations
from tickstream.storage.postgres import PostgresStore

from conformance.store_suite import T0, StoreConformance, all_ticks, make_candle, make_tick

i64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)


@pytest.fixture
async def store() -> AsyncIterator[DuckDBStore]:
    s = DuckDBStore(":memory:")
    await s.open()
    yield s
    await s.close()


class TestDuckDBStoreConformance(StoreConformance):
    pass


async def test_duckdb_file_store_keeps_ticks_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "ticks.duckdb"
    ticks = [make_tick(i) for i in range(12)]
    first = DuckDBStore(path)
    await first.open()
    await first.write_ticks(ticks)
    await first.close()
    second = DuckDBStore(path)
    await second.open()
    assert await all_ticks(second) == ticks
    assert await second.write_ticks(ticks) == 0
    await second.close()


async def test_duckdb_query_on_closed_store_raises(tmp_path: Path) -> None:
    s = DuckDBStore(tmp_path / "x.duckdb")
    with pytest.raises(RuntimeError, match="not open"):
        await s.write_ticks([make_tick(0)])


async def test_duckdb_query_zero_limit_raises(store: DuckDBStore) -> None:
    with pytest.raises(ValueError, match="limit"):
        await store.query_ticks("NSE", 2885, 0, 1, limit=0)


@settings(max_examples=60, deadline=None)
@given(i64, i64, i64)
def test_cursor_roundtrip_any_key_equal(a: int, b: int, c: int) -> None:
    assert decode_cursor(encode_cursor(TickKey(a, b, c))) == TickKey(a, b, c)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 10**6))
def test_tick_id_same_tick_same_id_other_content_other_id(i: int, bump: int) -> None:
    a = tick_columns([make_tick(i)]).tick_id[0]
    again = tick_columns([make_tick(i)]).tick_id[0]
    changed = tick_columns([make_tick(i, volume=make_tick(i).volume + bump)]).tick_id[0]
    assert a == again
    assert a != changed


@settings(max_examples=40, deadline=None)
@given(
    st.integers(0, 500),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.sampled_from(list(Interval)),
    st.integers(0, 5),
)
def test_candle_row_roundtrip_equal(i: int, close: float, interval: Interval, rev: int) -> None:
    c = make_candle(i, close=close, interval=interval, revision=rev)
    assert candle_from_row(tuple(candle_row(c))) == c


def test_store_registry_names_every_backend_class() -> None:
    assert backend_class("duckdb") is DuckDBStore
    assert backend_class("postgres") is PostgresStore
    assert sorted(BACKENDS) == ["duckdb", "postgres"]
    with pytest.raises(ValueError, match="unknown store backend"):
        backend_class("mongo")


def test_create_store_picks_backend_from_url_or_settings(tmp_path: Path) -> None:
    class Settings:
        database_url = None
        data_dir = tmp_path

    pg = create_store("postgresql://u:secret@127.0.0.1:5440/db")
    embedded = create_store(Settings())
    by_url = create_store(f"duckdb://{tmp_path}/a.duckdb")
    assert isinstance(pg, PostgresStore)
    assert "secret" not in repr(pg)
    assert isinstance(embedded, DuckDBStore)
    assert embedded.path == str(tmp_path / "tickstream.duckdb")
    assert embedded.archive_dir == tmp_path / "archive"
    assert isinstance(by_url, DuckDBStore) and by_url.path == f"{tmp_path}/a.duckdb"


async def test_duckdb_candle_batch_keeps_highest_revision(store: DuckDBStore) -> None:
    v2 = make_candle(0, revision=2, close=9.5)
    await store.write_candles([make_candle(0, revision=3), v2, make_candle(0, revision=1)])
    got = await store.query_candles("NSE", 2885, Interval.M1, T0, T0 + 60 * 10**9)
    assert got == [make_candle(0, revision=3)]


def test_migrations_pick_the_flavor_variant_in_version_order() -> None:
    plain = load_migrations("plain")
    timescale = load_migrations("timescale")
    assert [(m.version, m.name) for m in plain] == [(1, "core"), (2, "ticks")]
    assert [(m.version, m.name) for m in timescale] == [(1, "core"), (2, "ticks")]
    assert "PARTITION BY RANGE (ts_exchange)" in plain[1].sql
    assert "create_hypertable" in timescale[1].sql
    assert "materialized_only = false" in timescale[1].sql
    with pytest.raises(ValueError, match="flavor"):
        load_migrations("mysql")


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 40), max_size=60), st.integers(0, 60))
async def test_duckdb_any_redelivery_pattern_stores_each_tick_once(
    indexes: list[int], split: int
) -> None:
    ticks = [make_tick(i) for i in indexes]
    unique = {t.ts_recv: t for t in ticks}
    s = DuckDBStore()
    await s.open()
    try:
        inserted = await s.write_ticks(ticks[:split]) + await s.write_ticks(ticks[split:])
        inserted += await s.write_ticks(ticks)
        stored = await all_ticks(s)
    finally:
        await s.close()
    assert inserted == len(unique)
    assert stored == [unique[k] for k in sorted(unique)]
