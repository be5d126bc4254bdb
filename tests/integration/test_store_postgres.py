from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Iterator

import pytest

from tickstream.calendar import ist_midnight_ns
from tickstream.storage.base import StoreUnavailableError
from tickstream.storage.postgres import PostgresStore, ist_days, partition_ddl, quote_ident

from conformance.store_suite import (
    T0,
    StoreConformance,
    all_ticks,
    create_temp_database,
    drop_temp_database,
    make_tick,
)

TRUNCATE = (
    "TRUNCATE ticks, instruments, candles_1s, candles_1m, candles_5m, candles_15m,"
    " candles_1h, candles_1d"
)


@pytest.fixture(scope="module")
def pg_dsn(database_url: str) -> Iterator[str]:
    dsn = create_temp_database(database_url)
    yield dsn
    drop_temp_database(database_url, dsn)


@pytest.fixture
async def store(pg_dsn: str) -> AsyncIterator[PostgresStore]:
    s = PostgresStore(pg_dsn)
    await s.open()
    await s.pool.execute(TRUNCATE)
    yield s
    await s.close()


class TestPostgresStoreConformance(StoreConformance):
    pass


async def test_postgres_plain_flavor_creates_one_partition_per_ist_day(
    store: PostgresStore,
) -> None:
    day1 = make_tick(0, ts_exchange=ist_midnight_ns(dt.date(2026, 11, 20)) + 3_600 * 10**9)
    day2 = make_tick(1, ts_exchange=ist_midnight_ns(dt.date(2026, 11, 23)) + 3_600 * 10**9)
    assert await store.write_ticks([day1, day2]) == 2
    names = {
        r[0]
        for r in await store.pool.fetch(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'ticks'::regclass"
        )
    }
    assert store.flavor == "plain"
    assert {"ticks_p20261120", "ticks_p20261123"} <= names
    assert await all_ticks(store) == [day1, day2]


async def test_postgres_concurrent_open_applies_each_migration_once(database_url: str) -> None:
    dsn = await asyncio.to_thread(create_temp_database, database_url, "ts_migr")
    try:
        stores = [PostgresStore(dsn) for _ in range(3)]
        await asyncio.gather(*(s.open() for s in stores))
        rows = await stores[0].pool.fetch(
            "SELECT version, name, flavor FROM schema_migrations ORDER BY version"
        )
        assert [tuple(r) for r in rows] == [(1, "core", "plain"), (2, "ticks", "plain")]
        for s in stores:
            await s.close()
    finally:
        await asyncio.to_thread(drop_temp_database, database_url, dsn)


async def test_postgres_store_reopen_keeps_data_and_skips_migrations(pg_dsn: str) -> None:
    first = PostgresStore(pg_dsn)
    await first.open()
    await first.pool.execute(TRUNCATE)
    await first.write_ticks([make_tick(0), make_tick(1)])
    await first.close()
    second = PostgresStore(pg_dsn)
    await second.open()
    assert await all_ticks(second) == [make_tick(0), make_tick(1)]
    assert await second.write_ticks([make_tick(1)]) == 0
    await second.close()


async def test_postgres_unreachable_server_raises_store_unavailable() -> None:
    store = PostgresStore("postgresql://nobody:pw@127.0.0.1:1/none")
    with pytest.raises(StoreUnavailableError) as info:
        await store.open()
    assert "pw" not in str(info.value)
    assert "pw" not in repr(store)


def test_postgres_partition_ddl_uses_validated_name_and_integer_bounds() -> None:
    ddl = partition_ddl(dt.date(2026, 11, 20))
    lo = ist_midnight_ns(dt.date(2026, 11, 20))
    assert ddl == (
        'CREATE TABLE IF NOT EXISTS "ticks_p20261120" PARTITION OF ticks'
        f" FOR VALUES FROM ({lo}) TO ({lo + 86_400 * 10**9})"
    )
    with pytest.raises(ValueError, match="refusing identifier"):
        quote_ident('ticks_p2026"; DROP TABLE ticks; --')


def test_postgres_ist_days_splits_at_ist_midnight() -> None:
    midnight = ist_midnight_ns(dt.date(2026, 11, 21))
    assert ist_days([midnight - 1, midnight, T0]) == {
        dt.date(2026, 11, 20),
        dt.date(2026, 11, 21),
        dt.date(2025, 11, 21),
    }


async def test_postgres_copy_path_rolls_back_whole_batch_on_bad_row(store: PostgresStore) -> None:
    ok = make_tick(0)
    with pytest.raises(OverflowError):
        await store.write_ticks([ok, make_tick(1, token=2**63)])  # bigint overflow
    assert await all_ticks(store) == []


async def test_postgres_concurrent_overlapping_batches_store_each_tick_once(
    store: PostgresStore, pg_dsn: str
) -> None:
    other = PostgresStore(pg_dsn)
    await other.open()
    ticks = [make_tick(i, token=2885 + i % 3) for i in range(300)]
    forward, backward = ticks[:200], list(reversed(ticks[100:]))
    try:
        counts = await asyncio.gather(
            store.write_ticks(forward),
            other.write_ticks(backward),
            store.write_ticks(backward),
            other.write_ticks(forward),
        )
    finally:
        await other.close()
    stored = [t for tok in (2885, 2886, 2887) for t in await all_ticks(store, token=tok)]
    assert sum(counts) == 300
    assert sorted(stored, key=lambda t: t.ts_recv) == ticks
