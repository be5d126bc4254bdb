"""Replay against a real DuckDB store: order, tagging, sources, seek, archive, checkpoints."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from tickstream.calendar import ist_midnight_ns, ist_ns
from tickstream.model import Instrument, Tick
from tickstream.replay import Replay, ReplaySpec, day_range, load_checkpoint, store_pages
from tickstream.storage.archive import archive_day, open_target
from tickstream.storage.duckdb_store import DuckDBStore

DAY = dt.date(2024, 11, 21)
T0 = ist_ns(DAY, 9, 15)
NS = 1_000_000_000
MS = 1_000_000


def tick(token: int, ts: int, n: int, source: str = "kite") -> Tick:
    return Tick(
        exchange="NSE", token=token, symbol=f"S{token}", source=source,
        ts_exchange=ts, ts_recv=ts + 3 * MS, ltp=100.0 + n, volume=10 * n,
    )  # fmt: skip


def day_ticks() -> list[Tick]:
    """Three instruments, 200 ticks each, interleaved with shared stamps (ties)."""
    out = []
    for k in range(200):
        out.append(tick(11, T0 + k * 500 * MS, k))
        out.append(tick(22, T0 + k * 500 * MS, k))  # same stamp as token 11
        out.append(tick(33, T0 + k * 700 * MS + MS, k))
    return out


def spec(
    tokens: tuple[int, ...] = (11, 22, 33), *, page_size: int = 10_000, batch_size: int = 1000
) -> ReplaySpec:
    insts = tuple(Instrument(exchange="NSE", token=t, symbol=f"S{t}") for t in tokens)
    lo, hi = day_range(DAY)
    return ReplaySpec(insts, lo, hi, page_size=page_size, batch_size=batch_size)


def expected_order(ticks: list[Tick]) -> list[Tick]:
    return sorted(ticks, key=lambda t: (t.ts_exchange, t.exchange, t.token))


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[DuckDBStore]:
    s = DuckDBStore(tmp_path / "ts.duckdb", archive_dir=tmp_path / "archive")
    await s.open()
    await s.write_ticks(day_ticks())
    yield s
    await s.close()


async def collect(rep: Replay) -> list[Tick]:
    got: list[Tick] = []

    async def deliver(batch: list[Tick]) -> None:
        got.extend(batch)

    await rep.run(deliver)
    return got


async def test_replay_merges_instruments_in_time_order_tagged_replay(store: DuckDBStore) -> None:
    # Act
    got = await collect(Replay(store, spec(page_size=37, batch_size=50)))
    # Assert: the stored ticks in global time order, only the source changed
    want = [msgspec.structs.replace(t, source="replay") for t in expected_order(day_ticks())]
    assert got == want


async def test_replay_skips_rows_that_are_themselves_replays(store: DuckDBStore) -> None:
    # Arrange: a previous replay wrote its (re-tagged) ticks into the same store
    await store.write_ticks([msgspec.structs.replace(t, source="replay") for t in day_ticks()])
    # Act
    got = await collect(Replay(store, spec((11,))))
    # Assert
    assert len(got) == 200
    assert [t.ltp for t in got] == [100.0 + k for k in range(200)]


async def test_replay_sources_filter_keeps_only_named_live_source(store: DuckDBStore) -> None:
    # Arrange: a second live feed for token 11
    await store.write_ticks(
        [tick(11, T0 + k * NS + 7 * MS, 1000 + k, "angelone") for k in range(5)]
    )
    rep = Replay(store, dataclasses.replace(spec((11,)), sources=frozenset({"angelone"})))
    # Act
    got = await collect(rep)
    # Assert
    assert [t.ltp for t in got] == [1100.0, 1101.0, 1102.0, 1103.0, 1104.0]


async def test_replay_time_window_is_half_open(store: DuckDBStore) -> None:
    # Arrange: 09:15:10 .. 09:15:20 IST
    lo, hi = T0 + 10 * NS, T0 + 20 * NS
    rep = Replay(store, dataclasses.replace(spec(), start_ns=lo, end_ns=hi))
    # Act
    got = await collect(rep)
    # Assert
    want = [t for t in expected_order(day_ticks()) if lo <= t.ts_exchange < hi]
    assert [(t.token, t.ts_exchange) for t in got] == [(t.token, t.ts_exchange) for t in want]


async def test_replay_reads_archived_day_after_hot_rows_deleted(
    store: DuckDBStore, tmp_path: Path
) -> None:
    # Arrange
    await archive_day(store, DAY, open_target(tmp_path / "archive"))
    deleted = await store.delete_ticks(ist_midnight_ns(DAY), ist_midnight_ns(DAY) + 86_400 * NS)
    # Act
    got = await collect(Replay(store, spec(page_size=64)))
    # Assert
    assert deleted == 600
    assert [(t.token, t.ts_exchange, t.ltp) for t in got] == [
        (t.token, t.ts_exchange, t.ltp) for t in expected_order(day_ticks())
    ]


async def test_replay_seek_backwards_replays_from_that_time(store: DuckDBStore) -> None:
    # Arrange
    rep = Replay(store, spec((11,), batch_size=10))
    got: list[Tick] = []
    sought = False

    async def deliver(batch: list[Tick]) -> None:
        nonlocal sought
        got.extend(batch)
        if not sought and len(got) >= 50:
            sought = True
            rep.seek(T0 + 5 * NS)  # tick index 10

    # Act
    await rep.run(deliver)
    # Assert
    assert [t.ltp for t in got] == [100.0 + k for k in range(50)] + [
        100.0 + k for k in range(10, 200)
    ]


async def test_store_pages_are_keyset_pages_after_a_position(store: DuckDBStore) -> None:
    # Arrange
    from tickstream.replay.checkpoint import tick_key

    ticks = [t for t in day_ticks() if t.token == 22]
    lo, hi = day_range(DAY)
    # Act
    pages = [
        p
        async for p in store_pages(
            store, "NSE", 22, lo, hi, after=tick_key(ticks[49]), page_size=40
        )
    ]
    # Assert
    assert [len(p) for p in pages] == [40, 40, 40, 30]
    assert [t for p in pages for t in p] == ticks[50:]


async def test_replay_killed_midway_resumes_from_checkpoint_without_duplicates(
    store: DuckDBStore, tmp_path: Path
) -> None:
    # Arrange: a paced replay killed (cancelled) mid-way, after a few checkpoints
    path = tmp_path / "data" / "replay" / "r1.json"
    first: list[Tick] = []

    async def deliver_first(batch: list[Tick]) -> None:
        first.extend(batch)
        if len(first) >= 230:
            await asyncio.sleep(3600)  # the kill arrives while this batch is in flight

    rep1 = Replay(store, spec(batch_size=20), replay_id="r1", checkpoint=path, checkpoint_every=40)
    task = asyncio.create_task(rep1.run(deliver_first))
    while len(first) < 230:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    cp = load_checkpoint(path)
    assert cp is not None and not cp.done
    delivered = first[: cp.emitted]  # what the checkpoint vouches for
    # Act
    rep2 = Replay(store, spec(batch_size=20), replay_id="r1", checkpoint=path, checkpoint_every=40)
    second = await collect(rep2)
    # Assert
    want = [msgspec.structs.replace(t, source="replay") for t in expected_order(day_ticks())]
    assert rep2.resumed
    assert 0 < cp.emitted < 600
    assert delivered + second == want
    final = load_checkpoint(path)
    assert final is not None and final.done and final.emitted == 600


async def test_replay_checkpoint_of_other_replay_is_refused(
    store: DuckDBStore, tmp_path: Path
) -> None:
    # Arrange
    path = tmp_path / "cp.json"
    await collect(Replay(store, spec((11,)), checkpoint=path))
    # Act / Assert
    with pytest.raises(ValueError, match="different replay"):
        await collect(Replay(store, spec((11, 22)), checkpoint=path))
