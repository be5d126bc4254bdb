from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from tickstream.cli import app
from tickstream.storage.archive import (
    archive_day,
    instrument_kind,
    open_target,
    read_archive,
    ticks_to_table,
)
from tickstream.storage.duckdb_store import DuckDBStore

from conformance.store_suite import T0, all_ticks, make_tick

DAY = dt.date(2025, 11, 21)  # IST date of T0 (10:10 IST)
DAY_START = T0 - (10 * 3600 + 10 * 60) * 10**9
DAY_END = DAY_START + 86_400 * 10**9


def day_ticks() -> list:
    eq = [make_tick(i) for i in range(30)]
    opt = [
        make_tick(i, exchange="NFO", token=43210, symbol="NIFTY25NOV24000CE", depth=None)
        for i in range(7)
    ]
    other_day = [make_tick(0, ts_exchange=DAY_END + 5, ts_recv=DAY_END + 9)]
    return eq + opt + other_day


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[DuckDBStore]:
    s = DuckDBStore(tmp_path / "ts.duckdb", archive_dir=tmp_path / "archive")
    await s.open()
    yield s
    await s.close()


async def test_archive_delete_then_query_serves_day_identically(
    store: DuckDBStore, tmp_path: Path
) -> None:
    ticks = day_ticks()
    await store.write_ticks(ticks)
    before = await all_ticks(store)
    pages_before = await store.query_ticks("NSE", 2885, DAY_START, DAY_END, limit=7)
    target = open_target(tmp_path / "archive")
    res = await archive_day(store, DAY, target)
    assert res.rows == 37
    assert await store.delete_ticks(DAY_START, DAY_END) == 37
    assert await all_ticks(store) == before
    assert await store.query_ticks("NSE", 2885, DAY_START, DAY_END, limit=7) == pages_before
    assert await all_ticks(store, token=43210) == []  # NFO token is on another exchange
    nfo = await store.query_ticks("NFO", 43210, 0, 2**62)
    assert nfo.ticks == ticks[30:37]


async def test_archive_layout_is_hive_partitioned_zstd(store: DuckDBStore, tmp_path: Path) -> None:
    await store.write_ticks(day_ticks())
    res = await archive_day(store, DAY, open_target(tmp_path / "archive"))
    root = (tmp_path / "archive").resolve()
    assert sorted(Path(f).relative_to(root).as_posix() for f in res.files) == [
        "exchange=NFO/date=2025-11-21/kind=OPT/part-0.parquet",
        "exchange=NSE/date=2025-11-21/kind=EQ/part-0.parquet",
    ]
    meta = pq.ParquetFile(res.files[0]).metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"


async def test_archive_readable_by_pandas_polars_and_duckdb(
    store: DuckDBStore, tmp_path: Path
) -> None:
    ticks = day_ticks()[:30]
    await store.write_ticks(ticks)
    await archive_day(store, DAY, open_target(tmp_path / "archive"))
    root = tmp_path / "archive"
    pdf = pd.read_parquet(root / "exchange=NSE")
    plf = pl.read_parquet(root / "exchange=NSE" / "**" / "*.parquet")
    db = duckdb.sql(
        f"SELECT exchange, kind, sum(volume) FROM read_parquet('{root}/**/*.parquet',"
        " hive_partitioning = true) GROUP BY ALL"
    ).fetchall()
    assert pdf["ltp"].tolist() == [t.ltp for t in ticks]
    assert set(pdf["kind"].astype(str)) == {"EQ"}
    assert plf["volume"].to_list() == [t.volume for t in ticks]
    assert db == [("NSE", "EQ", sum(t.volume for t in ticks))]


async def test_read_archive_returns_equal_ticks_for_one_token(
    store: DuckDBStore, tmp_path: Path
) -> None:
    ticks = day_ticks()
    await store.write_ticks(ticks)
    target = open_target(tmp_path / "archive")
    await archive_day(store, DAY, target)
    assert read_archive(target, "NSE", DAY, token=2885) == ticks[:30]
    assert read_archive(target, "NFO", DAY) == ticks[30:37]
    assert read_archive(target, "BSE", DAY) == []


async def test_archive_twice_rewrites_not_duplicates(store: DuckDBStore, tmp_path: Path) -> None:
    await store.write_ticks(day_ticks())
    target = open_target(tmp_path / "archive")
    await archive_day(store, DAY, target)
    await archive_day(store, DAY, target)
    await store.delete_ticks(DAY_START, DAY_END)
    assert await all_ticks(store) == day_ticks()[:30] + day_ticks()[37:]


def test_ticks_to_table_expands_depth_levels() -> None:
    t = make_tick(0)
    row = ticks_to_table([t]).to_pylist()[0]
    assert row["depth_bids"] == [
        {"price": 2456.7, "qty": 10, "orders": 2},
        {"price": 2456.65, "qty": 3, "orders": None},
    ]
    assert (row["mode"], row["status"], row["ltp"]) == ("full", "LIVE", 2456.75)


@pytest.mark.parametrize(
    ("exchange", "symbol", "kind"),
    [
        ("NSE", "RELIANCE", "EQ"),
        ("NFO", "NIFTY25NOV24000CE", "OPT"),
        ("NFO", "BANKNIFTY25NOVFUT", "FUT"),
        ("MCX", "CRUDEOIL25DECFUT", "FUT"),
        ("INDICES", "NIFTY 50", "IDX"),
    ],
)
def test_instrument_kind_from_exchange_and_symbol(exchange: str, symbol: str, kind: str) -> None:
    assert instrument_kind(exchange, symbol) == kind


def test_open_target_refuses_plain_http_off_loopback() -> None:
    with pytest.raises(ValueError, match="loopback"):
        open_target("s3://bucket/x", endpoint_url="http://example.invalid:9000")
    with pytest.raises(ValueError, match="bucket"):
        open_target("s3://")


async def _seed(path: Path) -> None:
    seed = DuckDBStore(path)
    await seed.open()
    await seed.write_ticks(day_ticks())
    await seed.close()


async def _served(path: Path, archive: Path) -> list:
    again = DuckDBStore(path, archive_dir=archive)
    await again.open()
    try:
        return await all_ticks(again)
    finally:
        await again.close()


def test_archive_command_archives_and_deletes_day(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TICKSTREAM_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    asyncio.run(_seed(tmp_path / "tickstream.duckdb"))

    result = CliRunner().invoke(app, ["archive", "--date", "2025-11-21", "--delete"])

    assert result.exit_code == 0, result.output
    assert "archived 37 ticks of 2025-11-21" in result.output
    assert "deleted 37 from the hot store" in result.output
    served = asyncio.run(_served(tmp_path / "tickstream.duckdb", tmp_path / "archive"))
    assert served == day_ticks()[:30] + day_ticks()[37:]


def test_archive_command_rejects_bad_date() -> None:
    result = CliRunner().invoke(app, ["archive", "--date", "21/11/2025"])
    assert result.exit_code == 2
    assert "not a date" in result.output


async def test_archived_but_kept_day_is_served_once(store: DuckDBStore, tmp_path: Path) -> None:
    ticks = day_ticks()
    await store.write_ticks(ticks)
    await archive_day(store, DAY, open_target(tmp_path / "archive"))
    page = await store.query_ticks("NSE", 2885, 0, 2**62, limit=12)
    rest = await store.query_ticks("NSE", 2885, 0, 2**62, after=page.next_cursor)
    assert page.ticks + rest.ticks == ticks[:30] + ticks[37:]
