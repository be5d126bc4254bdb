from __future__ import annotations

import asyncio
from pathlib import Path

import duckdb

from tickstream.storage.duckdb_store import DuckDBStore

from conformance.store_suite import all_ticks, make_tick

# The ticks table as the store created it before the PK index was dropped (a file from then).
LEGACY_TICKS = """
CREATE TABLE ticks (
    exchange VARCHAR NOT NULL, token BIGINT NOT NULL, ts_exchange BIGINT NOT NULL,
    ts_recv BIGINT NOT NULL, tick_id BIGINT NOT NULL, source VARCHAR NOT NULL, seq BIGINT,
    ltp DOUBLE, volume BIGINT, payload BLOB NOT NULL,
    PRIMARY KEY (exchange, token, ts_exchange, ts_recv, tick_id));
"""


async def test_duckdb_legacy_file_with_primary_key_keeps_idempotent_writes(
    tmp_path: Path,
) -> None:
    path = tmp_path / "legacy.duckdb"
    con = duckdb.connect(str(path))
    con.execute(LEGACY_TICKS)
    con.close()
    ticks = [make_tick(i) for i in range(20)]
    store = DuckDBStore(path)
    await store.open()
    try:
        counts = [await store.write_ticks(ticks[:12]), await store.write_ticks(ticks)]
        stored = await all_ticks(store)
    finally:
        await store.close()
    assert counts == [12, 8]
    assert stored == ticks


async def test_duckdb_two_stores_on_one_file_store_a_concurrent_batch_once(
    tmp_path: Path,
) -> None:
    path = tmp_path / "shared.duckdb"
    first, second = DuckDBStore(path), DuckDBStore(path)
    await first.open()
    await second.open()
    ticks = [make_tick(i) for i in range(200)]
    try:
        counts = await asyncio.gather(*(s.write_ticks(ticks) for s in (first, second) * 3))
        stored = await all_ticks(first, limit=1000)
    finally:
        await first.close()
        await second.close()
    assert sorted(counts) == [0, 0, 0, 0, 0, 200]
    assert stored == ticks


async def test_duckdb_new_file_ticks_table_has_no_index_and_zstd_payload(
    tmp_path: Path,
) -> None:
    store = DuckDBStore(tmp_path / "new.duckdb")
    await store.open()
    try:
        sql = store._db.execute("SELECT sql FROM duckdb_tables() WHERE table_name = 'ticks'")
        ddl = sql.fetchone()
        indexes = store._db.execute(
            "SELECT count(*) FROM duckdb_constraints() WHERE table_name"
            " = 'ticks' AND constraint_type = 'PRIMARY KEY'"
        ).fetchone()
    finally:
        await store.close()
    assert ddl is not None and "USING COMPRESSION ZSTD" in ddl[0].upper()
    assert indexes == (0,)
