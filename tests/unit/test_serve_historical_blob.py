"""Bulk REST encoding of historical ticks and candles: byte-equal to the per-item encoders.

The ticks endpoint builds its page from the store's undecoded msgpack page (``query_tick_blob``)
instead of Tick objects; these tests pin its bytes to the old path (``tick_rest_json`` over
``query_ticks``) for generated ticks, for a DuckDB store page by page, and over HTTP.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import httpx
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickstream.bus.memory import MemoryBus
from tickstream.calendar import ist_ns
from tickstream.config import Settings
from tickstream.model import (
    NS_PER_SEC,
    Candle,
    Depth,
    DepthLevel,
    Indicators,
    Instrument,
    Interval,
    Mode,
    Status,
    Tick,
)
from tickstream.serve.app import create_app
from tickstream.serve.context import ServeContext
from tickstream.serve.rest import tick_page
from tickstream.serve.security import KeyStore, Scope
from tickstream.serve.wire import (
    candle_rest_json,
    candles_rest_array,
    envelope,
    ist_iso,
    ist_iso_many,
    split_tick_blob,
    tick_rest_json,
    ticks_rest_array,
)
from tickstream.storage.base import TickStore, msgpack_array
from tickstream.storage.duckdb_store import DuckDBStore
from tickstream.storage.ringbuffer import MemoryRingBuffer

from tick_days import day_of_ticks

DAY_START = ist_ns(dt.date(2024, 12, 2), 9, 15)
DAY_END = DAY_START + 86_400 * NS_PER_SEC
INST = Instrument(exchange="NSE", token=2885, symbol="RELIANCE")
_msgpack = msgspec.msgpack.Encoder().encode

# 1900..2100, nanosecond precision: whole seconds and whole microseconds are common in real data
ts_values = st.one_of(
    st.integers(-(2**61), 4_102_444_800 * NS_PER_SEC),
    st.integers(0, 4_102_444_800).map(lambda s: s * NS_PER_SEC),
    st.integers(0, 4_102_444_800_000_000).map(lambda us: us * 1000),
)
prices = st.floats(0.05, 1e6, allow_nan=False).map(lambda p: round(p, 2))
levels = st.builds(DepthLevel, prices, st.integers(0, 10**7), st.none() | st.integers(0, 500))


@st.composite
def ticks(draw: st.DrawFn) -> Tick:
    opt_price = st.none() | prices
    opt_int = st.none() | st.integers(0, 10**9)
    depth = st.none() | st.builds(
        Depth, st.tuples(*[levels] * draw(st.integers(0, 5))), st.lists(levels, max_size=20)
    )
    return Tick(
        exchange=draw(st.sampled_from(["NSE", "NFO", "INDICES"])),
        token=draw(st.integers(1, 2**31)),
        symbol=draw(st.text(max_size=12)),
        source=draw(st.sampled_from(["kite", "angel", "replay"])),
        ts_exchange=draw(ts_values),
        ts_recv=draw(ts_values),
        seq=draw(opt_int),
        ltp=draw(opt_price),
        volume=draw(opt_int),
        bid=draw(opt_price),
        oi=draw(opt_int),
        ts_last_trade=draw(st.none() | ts_values),
        depth=draw(depth),
        mode=draw(st.sampled_from(Mode)),
        status=draw(st.sampled_from(Status)),
    )


def blob_of(items: list[Tick]) -> bytes:
    return msgpack_array(len(items), b"".join(_msgpack(t) for t in items))


def old_ticks_array(items: list[Tick]) -> bytes:
    return b"[" + b",".join(tick_rest_json(t) for t in items) + b"]"


@given(st.lists(ts_values, max_size=50))
def test_ist_iso_many_any_times_equal_ist_iso(values: list[int]) -> None:
    assert ist_iso_many(values) == [ist_iso(v) for v in values]


def test_ist_iso_many_int64_extremes_equal_ist_iso() -> None:
    values = [-(2**63) + 1, 2**63 - 1, 0]
    assert ist_iso_many(values) == [ist_iso(v) for v in values]
    assert ist_iso_many(values)[2] == "1970-01-01T05:30:00+05:30"


def test_ist_iso_many_whole_second_and_fraction_keep_isoformat_shape() -> None:
    assert ist_iso_many([DAY_START, DAY_START + 250_000_999]) == [
        "2024-12-02T09:15:00+05:30",
        "2024-12-02T09:15:00.250000+05:30",
    ]


@settings(max_examples=60)
@given(st.lists(ticks(), max_size=8))
def test_ticks_rest_array_any_ticks_equal_tick_rest_json(items: list[Tick]) -> None:
    assert ticks_rest_array(blob_of(items)) == old_ticks_array(items)


def test_ticks_rest_array_stale_ltp_tick_keeps_status_before_mode() -> None:
    tick = Tick(
        exchange="NSE", token=1, symbol="X", source="kite", ts_exchange=DAY_START, ts_recv=1
    )
    stale = msgspec.structs.replace(tick, status=Status.STALE)
    got = msgspec.json.decode(ticks_rest_array(blob_of([stale, tick])))
    assert list(got[0])[-4:] == ["status", "mode", "ts_exchange_ist", "ts_recv_ist"]
    assert list(got[1])[-4:] == ["mode", "status", "ts_exchange_ist", "ts_recv_ist"]
    assert ticks_rest_array(blob_of([stale, tick])) == old_ticks_array([stale, tick])


def test_split_tick_blob_sizes_rejoin_to_the_same_ticks() -> None:
    items = [
        Tick(exchange="NSE", token=1, symbol="X", source="s", ts_exchange=i, ts_recv=i)
        for i in range(7)
    ]
    parts = split_tick_blob(blob_of(items), 3)
    decoded = [msgspec.msgpack.decode(p, type=list[Tick]) for p in parts]
    assert [len(d) for d in decoded] == [3, 3, 1]
    assert [t for d in decoded for t in d] == items


def test_ticks_rest_array_empty_blob_is_empty_array() -> None:
    assert ticks_rest_array(blob_of([])) == b"[]"


indicators = st.none() | st.builds(
    Indicators,
    ema_9=st.none() | prices,
    rsi_14=st.none() | st.floats(0, 100),
    supertrend_direction=st.none() | st.sampled_from([-1, 1]),
)
candles = st.builds(
    Candle,
    exchange=st.just("NSE"),
    token=st.integers(1, 10**6),
    symbol=st.text(max_size=10),
    interval=st.sampled_from(Interval),
    start=ts_values,
    open=prices,
    high=prices,
    low=prices,
    close=prices,
    volume=st.integers(0, 10**9),
    oi=st.none() | st.integers(0, 10**9),
    partial=st.booleans(),
    revision=st.integers(0, 3),
    indicators=indicators,
)


@settings(max_examples=60)
@given(st.lists(candles, max_size=6), st.booleans())
def test_candles_rest_array_any_candles_equal_candle_rest_json(
    items: list[Candle], with_indicators: bool
) -> None:
    old = [candle_rest_json(c, indicators=with_indicators) for c in items]
    assert candles_rest_array(items, indicators=with_indicators) == b"[" + b",".join(old) + b"]"


# ---- against a DuckDB store -------------------------------------------------------------------


def ticks_of_day(n: int) -> list[Tick]:
    return day_of_ticks(
        n,
        day_start=DAY_START,
        token=INST.token,
        symbol=INST.symbol,
        price=2456.75,
        bid=2456.7,
        ask=2456.8,
    )


@pytest.fixture
async def store() -> AsyncIterator[DuckDBStore]:
    s = DuckDBStore(":memory:")
    await s.open()
    await s.upsert_instruments([INST])
    await s.write_ticks(ticks_of_day(2600))
    yield s
    await s.close()


async def old_page(store: DuckDBStore, limit: int, after: str | None) -> tuple[Any, ...]:
    page = await store.query_ticks("NSE", INST.token, DAY_START, DAY_END, limit=limit, after=after)
    return len(page.ticks), page.next_cursor, old_ticks_array(page.ticks)


@pytest.mark.parametrize("limit", [700, 1500, 10_000])
async def test_tick_page_duckdb_every_page_equals_old_path(store: DuckDBStore, limit: int) -> None:
    cursor: str | None = None
    pages = 0
    while True:
        new = await tick_page(
            store, "NSE", INST.token, DAY_START, DAY_END, limit=limit, after=cursor
        )
        assert new == await old_page(store, limit, cursor)
        pages += 1
        cursor = new[1]
        if cursor is None:
            break
    assert pages == -(-2600 // limit)


async def test_tick_page_duckdb_empty_range_is_empty_array(store: DuckDBStore) -> None:
    got = await tick_page(
        store, "NSE", INST.token, DAY_END, DAY_END + NS_PER_SEC, limit=10, after=None
    )
    assert got == (0, None, b"[]")


class _QueryTicksOnly:
    """A store without ``query_tick_blob``: the endpoint falls back to ``query_ticks``."""

    def __init__(self, store: DuckDBStore) -> None:
        self.query_ticks = store.query_ticks


async def test_tick_page_store_without_blob_equals_blob_path(store: DuckDBStore) -> None:
    args = ("NSE", INST.token, DAY_START, DAY_END)
    only = cast(TickStore, _QueryTicksOnly(store))  # deliberately a partial store
    fallback = await tick_page(only, *args, limit=1200, after=None)
    assert fallback == await tick_page(store, *args, limit=1200, after=None)
    assert fallback[0] == 1200


# ---- over HTTP ----------------------------------------------------------------------------------


@pytest.fixture
async def client(
    store: DuckDBStore, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    keys = KeyStore()
    key, _ = keys.create([Scope.READ], name="reader", save=False)
    ctx = ServeContext(
        Settings(data_dir=tmp_path), MemoryBus(), store, MemoryRingBuffer(10), None, [INST]
    )
    transport = httpx.ASGITransport(app=create_app(ctx, keys=keys))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c, key


async def test_historical_ticks_http_body_equals_old_envelope(
    store: DuckDBStore, client: tuple[httpx.AsyncClient, str]
) -> None:
    http, key = client
    params = {"instrument": "NSE:2885", "start": str(DAY_START), "end": str(DAY_END), "limit": 2000}
    r = await http.get("/api/v1/historical/ticks", params=params, headers={"X-API-Key": key})
    page = await store.query_ticks("NSE", INST.token, DAY_START, DAY_END, limit=2000)
    meta = {
        "instrument": "NSE:2885",
        "symbol": "RELIANCE",
        "start": DAY_START,
        "end": DAY_END,
        "count": 2000,
        "next_cursor": page.next_cursor,
    }
    assert r.status_code == 200
    assert r.content == envelope(meta, "ticks", [tick_rest_json(t) for t in page.ticks])


@pytest.mark.parametrize("with_indicators", [True, False])
async def test_historical_candles_http_body_equals_old_envelope(
    store: DuckDBStore, client: tuple[httpx.AsyncClient, str], with_indicators: bool
) -> None:
    ind = Indicators(ema_9=1.5, rsi_14=50.0, supertrend_direction=1)
    bars = [
        Candle(
            exchange="NSE",
            token=INST.token,
            symbol=INST.symbol,
            interval=Interval.M1,
            start=DAY_START + m * 60 * NS_PER_SEC,
            open=1.0,
            high=2.0,
            low=0.5,
            close=1.5,
            volume=100 + m,
            indicators=ind if m % 2 else None,
        )
        for m in range(30)
    ]
    await store.write_candles(bars)
    params = {
        "instrument": "NSE:2885",
        "interval": "1m",
        "start": str(DAY_START),
        "end": str(DAY_END),
        "indicators": str(with_indicators).lower(),
    }
    http, key = client
    r = await http.get("/api/v1/historical/candles", params=params, headers={"X-API-Key": key})
    meta = {
        "instrument": "NSE:2885",
        "symbol": "RELIANCE",
        "interval": "1m",
        "start": DAY_START,
        "end": DAY_END,
        "count": 30,
    }
    old = [candle_rest_json(c, indicators=with_indicators) for c in bars]
    assert r.status_code == 200
    assert r.content == envelope(meta, "candles", old)
