"""Archive to an S3 API over real HTTP: moto's server on loopback (not an in-process stub)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer
from typer.testing import CliRunner

from tickstream.cli import app
from tickstream.storage.archive import archive_day, open_target, read_archive
from tickstream.storage.duckdb_store import DuckDBStore

from conformance.store_suite import T0, all_ticks, make_tick

DAY = dt.date(2025, 11, 21)
DAY_START = T0 - (10 * 3600 + 10 * 60) * 10**9
DAY_END = DAY_START + 86_400 * 10**9
BUCKET = "tickstream-archive"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    yield s3_endpoint
    for obj in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=obj["Key"])
    client.delete_bucket(Bucket=BUCKET)


def day_ticks() -> list:
    eq = [make_tick(i) for i in range(25)]
    fut = [make_tick(i, exchange="NFO", token=5001, symbol="NIFTY25NOVFUT") for i in range(5)]
    return eq + fut


@pytest.fixture
async def store() -> AsyncIterator[DuckDBStore]:
    s = DuckDBStore()
    await s.open()
    yield s
    await s.close()


def object_keys(endpoint: str) -> list[str]:
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket=BUCKET).get("Contents", []))


async def test_s3_archive_delete_then_read_back_identical(store: DuckDBStore, s3: str) -> None:
    ticks = day_ticks()
    await store.write_ticks(ticks)
    target = open_target(f"s3://{BUCKET}/ticks", endpoint_url=s3)

    res = await archive_day(store, DAY, target)
    deleted = await store.delete_ticks(DAY_START, DAY_END)

    assert (res.rows, deleted) == (30, 30)
    assert await all_ticks(store) == []
    assert object_keys(s3) == [
        "ticks/exchange=NFO/date=2025-11-21/kind=FUT/part-0.parquet",
        "ticks/exchange=NSE/date=2025-11-21/kind=EQ/part-0.parquet",
    ]
    back = await asyncio.to_thread(read_archive, target, "NSE", DAY, 2885)
    assert back == ticks[:25]
    assert await asyncio.to_thread(read_archive, target, "NFO", DAY) == ticks[25:]


def test_s3_archive_command_writes_objects(s3: str, tmp_path: Path) -> None:
    db = f"{tmp_path}/cli.duckdb"

    async def seed() -> None:
        s = DuckDBStore(db)
        await s.open()
        await s.write_ticks(day_ticks())
        await s.close()

    asyncio.run(seed())
    result = CliRunner().invoke(
        app,
        ["archive", "--date", "2025-11-21", "--store", db, "--to", f"s3://{BUCKET}/cli"],
        env={"AWS_ENDPOINT_URL": s3},
    )
    assert result.exit_code == 0, result.output
    assert f"archived 30 ticks of 2025-11-21 to s3://{BUCKET}/cli" in result.output
    assert "cli/exchange=NSE/date=2025-11-21/kind=EQ/part-0.parquet" in object_keys(s3)
