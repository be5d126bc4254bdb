"""Storage benchmark: ingest and one-instrument-day query, ours beside a raw baseline.

- DuckDB ingest (``DuckDBStore.write_ticks``: encode, hash, Arrow, anti-join INSERT) vs DuckDB
  appending the same rows from a ready Arrow table into an identical table in a file opened the
  same way (``duckdb.connect``). Target >= 500k ticks/s. ``extra``
  also has the CPU per tick of the Python part alone (encode + hash + Arrow table, same batches).
- PostgreSQL ingest (``PostgresStore.write_ticks``: encode, COPY into ``ticks`` under a savepoint,
  falling back to staging + INSERT ... ON CONFLICT DO NOTHING on a duplicate, one transaction per
  batch) vs raw ``copy_records_to_table`` of the same, already encoded rows into an identical
  (unpartitioned) table. Target >= 50% of the baseline.
- One instrument-day (~25k ticks among other instruments) through ``query_ticks`` (decoded Tick
  structs), p50/p99, vs the raw SQL fetch of the same rows. Target < 50 ms. Beside it, the same
  page through ``query_tick_blob`` (one undecoded msgpack array: the fast path for an API that
  re-encodes or forwards) and "as API JSON": the page exactly as ``GET /api/v1/historical/ticks``
  builds it (``tickstream.serve.rest.tick_page``: ``query_tick_blob`` -> REST JSON with the IST
  fields, no Tick objects), beside in ``extra`` the per-item path it replaced (``query_ticks`` +
  ``tick_rest_json`` per tick, 3 runs).

Ingest rows also carry ``cpu_us_per_tick`` (this process's CPU time, all threads, per tick): the
2-core machine is shared, so wall-clock rates swing with other people's load.

PostgreSQL is read from ``.services/env`` (DATABASE_URL); the bench creates and drops its own
database. Run: ``.venv/bin/python bench/storage.py [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import duckdb
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tickstream.model import Depth, DepthLevel, Mode, Tick
from tickstream.serve.rest import tick_page
from tickstream.serve.wire import tick_rest_json
from tickstream.storage.base import TICK_COLUMNS, tick_columns, tick_rows
from tickstream.storage.columnar import encode_ticks, tick_table
from tickstream.storage.duckdb_store import _SCHEMA, _TICK_SCHEMA, DuckDBStore
from tickstream.storage.postgres import PostgresStore

from _common import Result, emit

ROOT = Path(__file__).resolve().parent.parent
T0 = 1_763_696_700_000_000_000  # 2025-11-21 09:15 IST
TARGET_TOKEN = 2885
QUOTE_TOKEN = 1594
BATCH = 5000


def make_ticks(
    n_target: int, n_other: int, *, token: int = TARGET_TOKEN, full: bool = True
) -> list[Tick]:
    """``n_target`` ticks of one instrument over the session among ``n_other`` of 19 others;
    full mode carries 5+5 depth levels, quote mode none."""
    depth = Depth(
        bids=tuple(DepthLevel(2456.7 - k * 0.05, 10 + k, 2) for k in range(5)),
        asks=tuple(DepthLevel(2456.8 + k * 0.05, 7 + k, 1) for k in range(5)),
    )
    out: list[Tick] = []
    total = n_target + n_other
    for i in range(total):
        tok = token if i % total < n_target else 1000 + i % 19
        ts = T0 + (i * 22_500 // total) * 1_000_000_000  # spread over 22,500 s (the session)
        out.append(
            Tick(
                exchange="NSE",
                token=tok,
                symbol="RELIANCE",
                source="kite",
                ts_exchange=ts,
                ts_recv=ts + 1_000 + i,
                ltp=2456.75 + (i % 200) * 0.05,
                ltq=5,
                volume=100_000 + i,
                bid=2456.7,
                ask=2456.8,
                bid_qty=10,
                ask_qty=7,
                depth=depth if full else None,
                mode=Mode.FULL if full else Mode.QUOTE,
            )
        )
    return out


def percentiles(samples_s: list[float]) -> tuple[float, float]:
    ms = sorted(s * 1000 for s in samples_s)
    return statistics.median(ms), ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]


def encode_cpu_us(ticks: list[Tick], batch: int) -> float:
    """CPU us per tick of write_ticks' Python part alone: msgpack + BLAKE2b + Arrow table."""
    c0 = time.process_time()
    for i in range(0, len(ticks), batch):
        part = ticks[i : i + batch]
        tick_table(part, encode_ticks(part))
    return (time.process_time() - c0) / len(ticks) * 1e6


async def duckdb_ingest(ticks: list[Tick], repeat: int, tmp: Path) -> Result:
    best_ours = best_base = 0.0
    cpu_ours = cpu_base = float("inf")
    table = pa.Table.from_arrays(list(tick_columns(ticks)), schema=_TICK_SCHEMA)
    for r in range(repeat):
        store = DuckDBStore(tmp / f"ours{r}.duckdb")
        await store.open()
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(0, len(ticks), 50_000):
            await store.write_ticks(ticks[i : i + 50_000])
        best_ours = max(best_ours, len(ticks) / (time.perf_counter() - t0))
        cpu_ours = min(cpu_ours, (time.process_time() - c0) / len(ticks) * 1e6)
        await store.close()
        con = duckdb.connect(str(tmp / f"base{r}.duckdb"))
        con.execute(_SCHEMA)
        con.register("batch", table)
        t0, c0 = time.perf_counter(), time.process_time()
        con.execute("INSERT INTO ticks SELECT * FROM batch")
        best_base = max(best_base, len(ticks) / (time.perf_counter() - t0))
        cpu_base = min(cpu_base, (time.process_time() - c0) / len(ticks) * 1e6)
        con.close()
    return Result(
        "duckdb ingest (write_ticks)",
        best_ours,
        best_base,
        "ticks/s",
        True,
        ">= 500k ticks/s",
        best_ours >= 500_000,
        f"{len(ticks)} full-mode ticks, batches of 50k, incl. msgpack+blake2b encoding;"
        " baseline = INSERT of a ready Arrow table (same rows) into an identical table",
        {
            "cpu_us_per_tick": round(cpu_ours, 2),
            "baseline_cpu_us_per_tick": round(cpu_base, 2),
            "encode_cpu_us_per_tick": round(min(encode_cpu_us(ticks, 50_000) for _ in range(2)), 2),
        },
    )


class Samples:
    """Per-run seconds: query_ticks (wall, cpu), raw SQL, query_tick_blob, ticks -> API JSON."""

    def __init__(self) -> None:
        self.ours: list[float] = []
        self.cpu: list[float] = []
        self.raw: list[float] = []
        self.blob: list[float] = []
        self.json: list[float] = []
        self.json_per_item: list[float] = []


async def fast_paths(store: DuckDBStore | PostgresStore, token: int, n: int, s: Samples) -> None:
    """One run of query_ticks, then query_tick_blob, then query_ticks + JSON encode."""
    end = T0 + 86_400 * 10**9
    t0, c0 = time.perf_counter(), time.process_time()
    page = await store.query_ticks("NSE", token, T0, end, limit=100_000)
    s.ours.append(time.perf_counter() - t0)
    s.cpu.append(time.process_time() - c0)
    assert len(page.ticks) == n
    t0 = time.perf_counter()
    blob = await store.query_tick_blob("NSE", token, T0, end, limit=100_000)
    s.blob.append(time.perf_counter() - t0)
    assert blob.n == n
    t0 = time.perf_counter()
    count, _, body = await tick_page(store, "NSE", token, T0, end, limit=100_000, after=None)
    s.json.append(time.perf_counter() - t0)
    assert count == n and body.startswith(b"[{")
    if len(s.json_per_item) < 3:  # the path tick_page replaced (slow: a few runs suffice)
        t0 = time.perf_counter()
        page = await store.query_ticks("NSE", token, T0, end, limit=100_000)
        old = b"[" + b",".join([tick_rest_json(t) for t in page.ticks]) + b"]"
        s.json_per_item.append(time.perf_counter() - t0)
        assert old == body


async def duckdb_query(store: DuckDBStore, token: int, n: int, runs: int) -> Samples:
    s = Samples()
    for _ in range(runs):
        await fast_paths(store, token, n, s)
        t0 = time.perf_counter()
        rows = store._db.execute(
            "SELECT payload FROM ticks WHERE exchange = 'NSE' AND token = ?"
            " ORDER BY ts_exchange, ts_recv, tick_id",
            [token],
        ).fetchall()
        s.raw.append(time.perf_counter() - t0)
        assert len(rows) == n
    return s


async def duckdb_queries(
    ticks: list[Tick], quotes: list[Tick], n: int, runs: int, tmp: Path
) -> list[Result]:
    store = DuckDBStore(tmp / "query.duckdb")
    await store.open()
    await store.write_ticks(ticks)
    await store.write_ticks(quotes)
    out = latency_rows("duckdb", await duckdb_query(store, TARGET_TOKEN, n, runs), n, "full")
    out += latency_rows("duckdb", await duckdb_query(store, QUOTE_TOKEN, n, runs), n, "quote")
    await store.close()
    return out


def latency_rows(backend: str, s: Samples, n: int, mode: str) -> list[Result]:
    (p50, p99), (b50, b99) = percentiles(s.ours), percentiles(s.raw)
    # CPU time of this process per query (all threads): what wall time approaches on an idle box
    extra = {"cpu_ms_p50": round(percentiles(s.cpu)[0], 1)}
    depth = "with 5+5 depth levels" if mode == "full" else "no depth"
    note = (
        f"{n} {mode}-mode ticks ({depth}) of one instrument-day, decoded to Tick structs;"
        " baseline = the same SQL fetching the raw payloads without decoding"
    )
    stage = f"{backend} query instrument-day {mode}"
    blob50, json50 = percentiles(s.blob)[0], percentiles(s.json)[0]
    return [
        Result(f"{stage} p50", p50, b50, "ms", False, "< 50 ms", p50 < 50, note, extra),
        Result(f"{stage} p99", p99, b99, "ms", False, "< 50 ms", p99 < 50, note, extra),
        Result(
            f"{stage} query_tick_blob p50",
            blob50,
            b50,
            "ms",
            False,
            "< 50 ms",
            blob50 < 50,
            "the same page undecoded (one msgpack array); baseline as above",
        ),
        Result(
            f"{stage} as API JSON p50",
            json50,
            b50,
            "ms",
            False,
            "< 50 ms",
            json50 < 50,
            "the API's page as JSON (serve.rest.tick_page: query_tick_blob -> REST JSON with"
            " the IST fields, no Tick objects); extra = the per-item path it replaced",
            {"per_item_path_p50_ms": round(percentiles(s.json_per_item)[0], 1)},
        ),
    ]


def services_dsn() -> str | None:
    env = ROOT / ".services" / "env"
    if not env.is_file():
        return None
    for line in env.read_text().splitlines():
        if line.startswith("DATABASE_URL="):
            return line.split("=", 1)[1].strip()
    return None


async def pg_bench(
    dsn: str, ticks: list[Tick], quotes: list[Tick], n_target: int, repeat: int, runs: int
) -> list[Result]:
    name = f"ts_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    bench_dsn = dsn.rsplit("/", 1)[0] + "/" + name
    try:
        return await _pg_measure(bench_dsn, ticks, quotes, n_target, repeat, runs)
    finally:
        await _drop_database(admin, name)
        await admin.close()


async def _drop_database(admin: asyncpg.Connection, name: str) -> None:
    """DROP ... WITH (FORCE) is refused while an autovacuum worker (a superuser backend) is in
    the database, which a fresh bulk load invites: wait for it a few times."""
    for attempt in range(10):
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        except asyncpg.InsufficientPrivilegeError:
            if attempt == 9:
                raise
            await asyncio.sleep(1.0)


async def _pg_measure(
    dsn: str, ticks: list[Tick], quotes: list[Tick], n_target: int, repeat: int, runs: int
) -> list[Result]:
    store = PostgresStore(dsn)
    await store.open()
    rows = tick_rows(ticks)
    best_ours = best_base = 0.0
    async with store.pool.acquire() as conn:
        await conn.execute("CREATE TABLE ticks_raw (LIKE ticks INCLUDING ALL)")
    for _ in range(repeat):
        await store.pool.execute("TRUNCATE ticks, ticks_raw")
        t0 = time.perf_counter()
        for i in range(0, len(ticks), BATCH):
            await store.write_ticks(ticks[i : i + BATCH])
        best_ours = max(best_ours, len(ticks) / (time.perf_counter() - t0))
        async with store.pool.acquire() as conn:
            t0 = time.perf_counter()
            for i in range(0, len(rows), BATCH):
                await conn.copy_records_to_table(
                    "ticks_raw", records=rows[i : i + BATCH], columns=TICK_COLUMNS
                )
            best_base = max(best_base, len(rows) / (time.perf_counter() - t0))
    await store.write_ticks(quotes)
    await store.pool.execute("ANALYZE ticks")
    full = latency_rows(
        "postgres", await pg_query(store, TARGET_TOKEN, n_target, runs), n_target, "full"
    )
    quote = latency_rows(
        "postgres", await pg_query(store, QUOTE_TOKEN, n_target, runs), n_target, "quote"
    )
    await store.close()
    ratio = best_ours / best_base
    return [
        Result(
            "postgres ingest (write_ticks)",
            best_ours,
            best_base,
            "ticks/s",
            True,
            ">= 50% of raw COPY",
            ratio >= 0.5,
            f"{len(ticks)} ticks, batches of {BATCH}; baseline = copy_records_to_table of the"
            " same encoded rows into an identical table",
        ),
        *full,
        *quote,
    ]


async def pg_query(store: PostgresStore, token: int, n: int, runs: int) -> Samples:
    s = Samples()
    for _ in range(runs):
        await fast_paths(store, token, n, s)
        t0 = time.perf_counter()
        got = await store.pool.fetch(
            "SELECT payload FROM ticks WHERE exchange = 'NSE' AND token = $1"
            " ORDER BY ts_exchange, ts_recv, tick_id",
            token,
        )
        s.raw.append(time.perf_counter() - t0)
        assert len(got) == n
    return s


async def main(quick: bool) -> None:
    n_target, n_other = (25_000, 5_000) if quick else (25_000, 100_000)
    repeat, runs = (1, 3) if quick else (2, 15)
    ticks = make_ticks(n_target, n_other)
    quotes = make_ticks(n_target, 0, token=QUOTE_TOKEN, full=False)
    # The bench's own data set is long-lived: keep it out of the collector's full scans, as a
    # server would after start-up (gc.freeze); the store code itself does not touch the GC.
    gc.collect()
    gc.freeze()
    load = os.getloadavg()
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp:
        results.append(await duckdb_ingest(ticks, repeat, Path(tmp)))
        results += await duckdb_queries(ticks, quotes, n_target, runs, Path(tmp))
    dsn = services_dsn()
    if dsn is None:
        results.append(Result("postgres", 0, None, "", notes="no .services/env: skipped"))
    else:
        results += await pg_bench(dsn, ticks, quotes, n_target, repeat, runs)
    for r in results:
        r.extra["loadavg_1_5_15_at_start"] = [round(x, 2) for x in load]
    gc.unfreeze()
    emit("storage", results)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller run (<= 10 s)")
    asyncio.run(main(parser.parse_args().quick))
