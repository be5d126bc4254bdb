"""The ticks endpoint's page builder over PostgreSQL: byte-equal to the per-item path.

``tickstream.serve.rest.tick_page`` encodes the store's undecoded page (``query_tick_blob``); the
old path decoded Tick objects (``query_ticks``) and encoded each with ``tick_rest_json``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterator

import pytest

from tickstream.calendar import ist_ns
from tickstream.model import NS_PER_SEC, Tick
from tickstream.serve.rest import tick_page
from tickstream.serve.wire import tick_rest_json
from tickstream.storage.postgres import PostgresStore

from conformance.store_suite import create_temp_database, drop_temp_database
from tick_days import day_of_ticks

DAY_START = ist_ns(dt.date(2024, 12, 2), 9, 15)
DAY_END = DAY_START + 86_400 * NS_PER_SEC
TOKEN = 2885


@pytest.fixture(scope="module")
def pg_dsn(database_url: str) -> Iterator[str]:
    dsn = create_temp_database(database_url, prefix="ts_serve_hist")
    yield dsn
    drop_temp_database(database_url, dsn)


def ticks_of_day(n: int) -> list[Tick]:
    return day_of_ticks(
        n, day_start=DAY_START, token=TOKEN, symbol="RELIANCE", price=100.0, bid=100.0, ask=100.05
    )


@pytest.fixture
async def store(pg_dsn: str) -> AsyncIterator[PostgresStore]:
    s = PostgresStore(pg_dsn)
    await s.open()
    await s.pool.execute("TRUNCATE ticks")
    await s.write_ticks(ticks_of_day(1300))
    yield s
    await s.close()


@pytest.mark.parametrize("limit", [500, 1200])
async def test_tick_page_postgres_every_page_equals_per_item_path(
    store: PostgresStore, limit: int
) -> None:
    cursor: str | None = None
    pages = 0
    while True:
        got = await tick_page(store, "NSE", TOKEN, DAY_START, DAY_END, limit=limit, after=cursor)
        page = await store.query_ticks("NSE", TOKEN, DAY_START, DAY_END, limit=limit, after=cursor)
        old = b"[" + b",".join(tick_rest_json(t) for t in page.ticks) + b"]"
        assert got == (len(page.ticks), page.next_cursor, old)
        pages += 1
        cursor = got[1]
        if cursor is None:
            break
    assert pages == -(-1300 // limit)


async def test_tick_page_postgres_empty_range_is_empty_array(store: PostgresStore) -> None:
    got = await tick_page(store, "NSE", TOKEN, DAY_END, DAY_END + NS_PER_SEC, limit=100, after=None)
    assert got == (0, None, b"[]")
