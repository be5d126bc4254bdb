"""TickStore conformance: subclass ``StoreConformance`` and provide an async ``store`` fixture
(opened, empty). Every assertion compares whole structs: what is written reads back ``==``."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from tickstream.model import (
    Candle,
    Depth,
    DepthLevel,
    Indicators,
    Instrument,
    Interval,
    Mode,
    Tick,
)
from tickstream.storage.base import TickStore, ticks_from_blob

T0 = 1_763_700_000_000_000_000  # 2025-11-21 04:40:00 UTC, a second boundary
SEC = 1_000_000_000


def make_tick(i: int, token: int = 2885, **over: Any) -> Tick:
    """A Kite-like full tick: no seq, second-resolution exchange time (10 ticks per second)."""
    fields: dict[str, Any] = {
        "exchange": "NSE",
        "token": token,
        "symbol": "RELIANCE",
        "source": "kite",
        "ts_exchange": T0 + (i // 10) * SEC,
        "ts_recv": T0 + i * 100_000_000 + 12_345,
        "ltp": 2456.75 + i * 0.05,
        "ltq": 5 + i % 3,
        "atp": 2455.1,
        "volume": 100_000 + i * 7,
        "bid": 2456.7,
        "ask": 2456.8,
        "bid_qty": 10,
        "ask_qty": 7,
        "open": 2440.0,
        "high": 2460.0,
        "low": 2431.05,
        "close": 2438.9,
        "change": 17.85,
        "change_pct": 0.7319,
        "ts_last_trade": T0 + (i // 10) * SEC,
        "depth": Depth(
            bids=(DepthLevel(2456.7, 10, 2), DepthLevel(2456.65, 3, None)),
            asks=(DepthLevel(2456.8, 7, 1),),
        ),
        "mode": Mode.FULL,
    }
    fields.update(over)
    return Tick(**fields)


def make_candle(i: int, **over: Any) -> Candle:
    fields: dict[str, Any] = {
        "exchange": "NSE",
        "token": 2885,
        "symbol": "RELIANCE",
        "interval": Interval.M1,
        "start": T0 + i * 60 * SEC,
        "open": 100.05,
        "high": 101.5,
        "low": 99.95,
        "close": 100.1 + i,
        "volume": 1234 + i,
        "ticks": 17,
        "indicators": Indicators(ema_9=100.25, rsi_14=55.5, supertrend_direction=-1),
    }
    fields.update(over)
    return Candle(**fields)


async def all_ticks(store: TickStore, token: int = 2885, limit: int = 10_000) -> list[Tick]:
    page = await store.query_ticks("NSE", token, 0, 2**62, limit=limit)
    return page.ticks


class StoreConformance:
    """Behaviour every TickStore backend must have."""

    async def test_store_written_ticks_read_back_equal(self, store: TickStore) -> None:
        ticks = [make_tick(i) for i in range(25)] + [make_tick(99, seq=None, depth=None, ltp=None)]
        assert await store.write_ticks(ticks) == 26
        assert await all_ticks(store) == sorted(ticks, key=lambda t: (t.ts_exchange, t.ts_recv))

    async def test_store_two_ticks_in_same_second_both_stored(self, store: TickStore) -> None:
        a = make_tick(0)
        b = make_tick(1)  # same exchange second, new price and volume
        assert a.ts_exchange == b.ts_exchange
        assert await store.write_ticks([a, b]) == 2
        assert await all_ticks(store) == [a, b]

    async def test_store_same_second_ticks_come_back_in_arrival_order(
        self, store: TickStore
    ) -> None:
        ticks = [make_tick(i) for i in range(10)]
        await store.write_ticks(list(reversed(ticks)))
        assert [t.volume for t in await all_ticks(store)] == [t.volume for t in ticks]

    async def test_store_replayed_batch_is_stored_once(self, store: TickStore) -> None:
        ticks = [make_tick(i) for i in range(30)]
        first = await store.write_ticks(ticks)
        second = await store.write_ticks(ticks)
        assert (first, second) == (30, 0)
        assert await all_ticks(store) == ticks

    async def test_store_batch_with_one_duplicate_stores_all_others(self, store: TickStore) -> None:
        await store.write_ticks([make_tick(5)])
        batch = [make_tick(i) for i in range(10)]
        assert await store.write_ticks(batch) == 9
        assert await all_ticks(store) == batch

    async def test_store_duplicate_within_one_batch_stored_once(self, store: TickStore) -> None:
        t = make_tick(3)
        assert await store.write_ticks([t, t, make_tick(4)]) == 2
        assert await all_ticks(store) == [t, make_tick(4)]

    async def test_store_replay_source_tick_does_not_collide_with_live(
        self, store: TickStore
    ) -> None:
        live = make_tick(0)
        replayed = msgspec.structs.replace(live, source="replay")
        assert await store.write_ticks([live, replayed]) == 2
        assert {t.source for t in await all_ticks(store)} == {"kite", "replay"}

    async def test_store_keyset_pages_cover_everything_once_in_order(
        self, store: TickStore
    ) -> None:
        ticks = [make_tick(i) for i in range(25)]
        await store.write_ticks(ticks)
        got: list[Tick] = []
        cursor: str | None = None
        pages = 0
        while True:
            page = await store.query_ticks("NSE", 2885, 0, 2**62, limit=10, after=cursor)
            got.extend(page.ticks)
            pages += 1
            cursor = page.next_cursor
            if cursor is None:
                break
        assert pages == 3
        assert got == ticks

    async def test_store_exact_page_size_last_page_has_no_cursor(self, store: TickStore) -> None:
        ticks = [make_tick(i) for i in range(10)]
        await store.write_ticks(ticks)
        page = await store.query_ticks("NSE", 2885, 0, 2**62, limit=10)
        assert page.ticks == ticks
        assert page.next_cursor is None

    async def test_store_time_range_is_half_open(self, store: TickStore) -> None:
        ticks = [make_tick(i) for i in range(40)]  # seconds T0 .. T0+3
        await store.write_ticks(ticks)
        page = await store.query_ticks("NSE", 2885, T0 + SEC, T0 + 3 * SEC)
        assert page.ticks == ticks[10:30]

    async def test_store_query_selects_only_the_instrument(self, store: TickStore) -> None:
        mine = [make_tick(i) for i in range(5)]
        other = [make_tick(i, token=11536, symbol="TCS") for i in range(5)]
        bse = [make_tick(i, exchange="BSE", token=2885) for i in range(5)]
        await store.write_ticks(other + mine + bse)
        assert await all_ticks(store) == mine
        assert await all_ticks(store, token=11536) == other

    async def test_store_bad_cursor_raises_value_error(self, store: TickStore) -> None:
        with pytest.raises(ValueError, match="cursor"):
            await store.query_ticks("NSE", 2885, 0, 2**62, after="not a cursor!")

    async def test_store_empty_write_returns_zero(self, store: TickStore) -> None:
        assert await store.write_ticks([]) == 0
        assert await store.write_candles([]) == 0
        assert await all_ticks(store) == []

    async def test_store_scan_returns_range_in_key_order(self, store: TickStore) -> None:
        a = [make_tick(i, token=3000) for i in range(15)]
        b = [make_tick(i, token=2000) for i in range(15)]
        await store.write_ticks(a + b)
        batches = [
            batch async for batch in store.scan_ticks(T0, T0 + SEC, exchange="NSE", batch_size=4)
        ]
        assert [len(x) for x in batches] == [4, 4, 4, 4, 4]
        assert [t for x in batches for t in x] == b[:10] + a[:10]

    async def test_store_delete_range_removes_only_that_range(self, store: TickStore) -> None:
        ticks = [make_tick(i) for i in range(30)]
        await store.write_ticks(ticks)
        assert await store.delete_ticks(T0, T0 + SEC, exchange="NSE") == 10
        assert await all_ticks(store) == ticks[10:]

    async def test_store_candles_read_back_equal_by_interval(self, store: TickStore) -> None:
        m1 = [make_candle(i) for i in range(5)]
        m5 = [make_candle(i, interval=Interval.M5, start=T0 + i * 300 * SEC) for i in range(2)]
        bare = make_candle(9, indicators=None, oi=12, partial=True, incomplete=True)
        assert await store.write_candles(m1 + m5 + [bare]) == 8
        got = await store.query_candles("NSE", 2885, Interval.M1, 0, 2**62)
        assert got == [*m1, bare]
        assert await store.query_candles("NSE", 2885, Interval.M5, 0, 2**62) == m5

    async def test_store_candles_all_optional_fields_none_read_back_equal(
        self, store: TickStore
    ) -> None:
        candles = [make_candle(i, indicators=None, oi=None) for i in range(3)]
        assert await store.write_candles(candles) == 3
        assert await store.query_candles("NSE", 2885, Interval.M1, 0, 2**62) == candles

    async def test_store_candle_revision_replaces_and_older_is_ignored(
        self, store: TickStore
    ) -> None:
        v0 = make_candle(0)
        v1 = make_candle(0, close=111.1, volume=9999, revision=1)
        await store.write_candles([v0])
        await store.write_candles([v1])
        await store.write_candles([v0])  # late redelivery of the older revision
        assert await store.query_candles("NSE", 2885, Interval.M1, 0, 2**62) == [v1]

    async def test_store_candles_come_back_in_start_order_whatever_the_write_order(
        self, store: TickStore
    ) -> None:
        candles = [make_candle(i) for i in range(8)]
        for batch in ([candles[5], candles[1]], candles[7:2:-1], [candles[0], candles[2]]):
            await store.write_candles(batch)
        await store.write_candles([make_candle(3, close=99.5, revision=1)])  # a revision, late
        got = await store.query_candles("NSE", 2885, Interval.M1, 0, 2**62)
        assert [c.start for c in got] == [c.start for c in candles]
        assert got[3] == make_candle(3, close=99.5, revision=1)

    async def test_store_candle_query_range_is_half_open(self, store: TickStore) -> None:
        candles = [make_candle(i) for i in range(5)]
        await store.write_candles(candles)
        got = await store.query_candles("NSE", 2885, Interval.M1, T0 + 60 * SEC, T0 + 180 * SEC)
        assert got == candles[1:3]

    async def test_store_instruments_search_ranks_exact_then_prefix(self, store: TickStore) -> None:
        rel = Instrument(exchange="NSE", token=2885, symbol="RELIANCE", name="RELIANCE INDUSTRIES")
        infra = Instrument(exchange="NSE", token=553, symbol="RELINFRA", name="RELIANCE INFRA")
        bse = Instrument(exchange="BSE", token=500325, symbol="RELIANCE", lot_size=1)
        tcs = Instrument(exchange="NSE", token=11536, symbol="TCS", name="TATA CONSULTANCY")
        assert await store.upsert_instruments([tcs, infra, rel, bse]) == 4
        assert await store.search_instruments("reliance", exchange="NSE") == [rel, infra]
        assert await store.search_instruments("consult") == [tcs]
        assert await store.search_instruments("REL", limit=1) == [bse]
        assert await store.search_instruments("zzz") == []

    async def test_store_instrument_upsert_replaces(self, store: TickStore) -> None:
        old = Instrument(exchange="NSE", token=2885, symbol="RELIANCE", lot_size=1)
        new = Instrument(exchange="NSE", token=2885, symbol="RELIANCE", lot_size=1, tick_size=0.1)
        await store.upsert_instruments([old])
        await store.upsert_instruments([new])
        assert await store.search_instruments("RELIANCE") == [new]

    async def test_store_stats_names_backend(self, store: TickStore) -> None:
        assert store.stats()["backend"] == store.name

    async def test_store_tick_blob_pages_decode_to_query_ticks_pages(
        self, store: TickStore
    ) -> None:
        ticks = [make_tick(i) for i in range(25)] + [make_tick(i, token=11536) for i in range(3)]
        await store.write_ticks(ticks)
        blob_store: Any = store  # query_tick_blob is beside the protocol, not in it
        blobs, pages = [], []
        cursor: str | None = None
        while True:
            blob = await blob_store.query_tick_blob("NSE", 2885, 0, 2**62, limit=10, after=cursor)
            page = await store.query_ticks("NSE", 2885, 0, 2**62, limit=10, after=cursor)
            blobs.append(blob)
            pages.append(page)
            cursor = blob.next_cursor
            if cursor is None:
                break
        assert [b.next_cursor for b in blobs] == [p.next_cursor for p in pages]
        assert [ticks_from_blob(b.blob) for b in blobs] == [p.ticks for p in pages]
        assert [b.n for b in blobs] == [10, 10, 5]
        assert [t for b in blobs for t in ticks_from_blob(b.blob)] == ticks[:25]

    async def test_store_tick_blob_empty_range_is_empty_array(self, store: TickStore) -> None:
        await store.write_ticks([make_tick(0)])
        blob_store: Any = store
        blob = await blob_store.query_tick_blob("NSE", 2885, T0 + SEC, T0 + 2 * SEC)
        assert (blob.n, ticks_from_blob(blob.blob), blob.next_cursor) == (0, [], None)
        with pytest.raises(ValueError, match="limit"):
            await blob_store.query_tick_blob("NSE", 2885, 0, 1, limit=0)

    async def test_store_redelivered_batches_then_new_batches_all_counted(
        self, store: TickStore
    ) -> None:
        ticks = [make_tick(i) for i in range(60)]
        first = [await store.write_ticks(ticks[i : i + 10]) for i in range(0, 30, 10)]
        again = [await store.write_ticks(ticks[i : i + 10]) for i in range(0, 30, 10)]
        mixed = await store.write_ticks(ticks[25:45])
        rest = [await store.write_ticks(ticks[i : i + 5]) for i in range(45, 60, 5)]
        assert (first, again, mixed, rest) == ([10, 10, 10], [0, 0, 0], 15, [5, 5, 5])
        assert await all_ticks(store) == ticks


def _with_database(dsn: str, database: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + database))


def create_temp_database(dsn: str, prefix: str = "ts_storage") -> str:
    """Create an empty database beside ``dsn``'s (isolation from concurrent test runs); returns
    its DSN. Drop it with :func:`drop_temp_database`."""
    import asyncio
    import uuid

    import asyncpg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"

    async def go() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(go())
    return _with_database(dsn, name)


def drop_temp_database(dsn: str, temp_dsn: str) -> None:
    import asyncio
    from urllib.parse import urlsplit

    import asyncpg

    name = urlsplit(temp_dsn).path.lstrip("/")

    async def go() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(go())
