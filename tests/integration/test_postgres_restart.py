"""PostgreSQL restarted (pg_ctl restart -m immediate) under a sink writing ticks: after recovery
every tick is stored exactly once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tickstream.bus.memory import MemoryBus
from tickstream.model import Tick
from tickstream.storage.postgres import PostgresStore
from tickstream.storage.sinks import TickSink

from conformance.store_suite import create_temp_database, drop_temp_database, make_tick

REPO = Path(__file__).resolve().parents[2]
TOKENS = (2885, 11536, 1594)
CHUNK = 150


@pytest.fixture
def pg_dsn(database_url: str) -> Iterator[str]:
    dsn = create_temp_database(database_url, "ts_restart")
    yield dsn
    drop_temp_database(database_url, dsn)


async def restart_postgres() -> None:
    proc = await asyncio.create_subprocess_exec(
        "bash",
        str(REPO / "scripts" / "services.sh"),
        "restart",
        "postgres",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode(errors="replace")


async def publish_until(bus: MemoryBus, done: asyncio.Event, sent: list[Tick]) -> None:
    """Publish chunks until ``done`` is set, then one more chunk (writes straddle the restart)."""
    i = 0
    while True:
        last = done.is_set()
        chunk = [make_tick(i + k, token=TOKENS[(i + k) % 3]) for k in range(CHUNK)]
        await bus.publish_many("ticks", chunk)
        sent.extend(chunk)
        i += CHUNK
        if last:
            return
        await asyncio.sleep(0.005)


async def test_postgres_restart_mid_write_every_tick_stored_exactly_once(pg_dsn: str) -> None:
    store = PostgresStore(pg_dsn)
    await store.open()
    bus = MemoryBus()
    await bus.start()
    sink = TickSink(
        bus,
        store,
        "ticks",
        batch_size=400,
        flush_interval_s=0.01,
        backoff_initial_s=0.05,
        backoff_max_s=0.5,
        stop_timeout_s=120,
    )
    await sink.start()
    sent: list[Tick] = []
    restarted = asyncio.Event()
    publisher = asyncio.create_task(publish_until(bus, restarted, sent))

    end = time.monotonic() + 60
    while sink.stats()["written"] < 2000 and time.monotonic() < end:
        await asyncio.sleep(0.01)
    await restart_postgres()
    restarted.set()
    await publisher
    await sink.stop()

    stats = sink.stats()
    rows = await store.pool.fetchrow(
        "SELECT count(*) AS n, count(DISTINCT (token, ts_exchange, ts_recv, tick_id)) AS d"
        " FROM ticks"
    )
    stored = [t async for batch in store.scan_ticks(0, 2**62) for t in batch]
    await store.close()
    await bus.close()

    assert stats["retries"] >= 1, stats  # the restart really interrupted writing
    assert stats["spool"] == 0
    assert (rows["n"], rows["d"]) == (len(sent), len(sent))
    assert stored == sorted(sent, key=lambda t: (t.token, t.ts_exchange, t.ts_recv))
