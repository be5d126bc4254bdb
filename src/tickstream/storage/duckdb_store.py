"""DuckDB store: the embedded default, one file under the data directory.

DuckDB is synchronous and a connection must not be used from two threads at once, so every call
runs on one dedicated worker thread; the event loop never blocks on a query.

Writes build one Arrow table per batch (the row encoding of :mod:`tickstream.storage.base`,
vectorised by :mod:`tickstream.storage.columnar`) and insert the rows whose key
``(exchange, token, ts_exchange, ts_recv, tick_id)`` is not stored yet: an anti-join against the
table restricted to the batch's ``ts_exchange`` range (zone maps skip the rest), after dropping
repeats inside the batch. A redelivered tick is a no-op and never rejects the rest of its batch.
The ``ticks`` table has no primary-key index: maintaining the ART index cost more than everything
else in a write (~5 us/tick). Key uniqueness holds because every write to a database file goes
through one lock (DuckDB lets one process at a time open a file for writing). A file created
before this change keeps its primary key; the same statement works on it. The payload column is
zstd-compressed (a third of the size, and checkpoints no longer try every codec on it).
The default row group size is kept on purpose: 8192-row groups (an ATTACH option) wrote large
batches straight to the file for ~20% less ingest CPU, but made the replay's keyset page reads
~30% slower (bench/replay.py), so they were measured and reverted.
Candles are upserted (``ON CONFLICT DO UPDATE ... WHERE`` the incoming revision is not older).

History spans hot and cold data: when an archive directory is configured, ``query_ticks`` also
reads the Parquet files of the days in range (``<archive>/exchange=X/date=D/kind=K/*.parquet``, see
:mod:`tickstream.storage.archive`) and unions them with the table, so a day that was archived and
deleted from the table is still served, identically. Only a *local* archive is read this way; an
S3 archive is read with :func:`tickstream.storage.archive.read_archive`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from operator import itemgetter
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from tickstream.model import Candle, Instrument, Interval, Tick
from tickstream.storage import archive as _archive
from tickstream.storage.base import (
    TickBlob,
    TickKey,
    TickPage,
    candle_from_row,
    candle_row,
    decode_cursor,
    encode_cursor,
    instrument_from_payload,
    instrument_row,
    msgpack_array,
    ticks_from_blob,
    ticks_from_payloads,
)
from tickstream.storage.columnar import (
    candle_table,
    encode_ticks,
    first_of_each_key,
    payload_blob,
    tick_table,
)
from tickstream.storage.duckdb_window import TickWindow, read_window
from tickstream.storage.sql import INSTRUMENT_SEARCH, latest_candles

__all__ = ["DuckDBStore"]

log = logging.getLogger(__name__)
R = TypeVar("R")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ticks (
    exchange VARCHAR NOT NULL, token BIGINT NOT NULL, ts_exchange BIGINT NOT NULL,
    ts_recv BIGINT NOT NULL, tick_id BIGINT NOT NULL, source VARCHAR NOT NULL, seq BIGINT,
    ltp DOUBLE, volume BIGINT, payload BLOB USING COMPRESSION zstd NOT NULL);
CREATE TABLE IF NOT EXISTS candles (
    exchange VARCHAR NOT NULL, token BIGINT NOT NULL, interval VARCHAR NOT NULL,
    start BIGINT NOT NULL, symbol VARCHAR NOT NULL, open DOUBLE NOT NULL, high DOUBLE NOT NULL,
    low DOUBLE NOT NULL, close DOUBLE NOT NULL, volume BIGINT NOT NULL, oi BIGINT,
    ticks BIGINT NOT NULL, partial BOOLEAN NOT NULL, incomplete BOOLEAN NOT NULL,
    revision BIGINT NOT NULL, indicators VARCHAR,
    PRIMARY KEY (exchange, token, interval, start));
CREATE TABLE IF NOT EXISTS instruments (
    exchange VARCHAR NOT NULL, token BIGINT NOT NULL, symbol VARCHAR NOT NULL, name VARCHAR,
    instrument_type VARCHAR, expiry VARCHAR, payload BLOB NOT NULL,
    PRIMARY KEY (exchange, token));
"""

_TICK_SCHEMA = pa.schema(
    [
        ("exchange", pa.string()),
        ("token", pa.int64()),
        ("ts_exchange", pa.int64()),
        ("ts_recv", pa.int64()),
        ("tick_id", pa.int64()),
        ("source", pa.string()),
        ("seq", pa.int64()),
        ("ltp", pa.float64()),
        ("volume", pa.int64()),
        ("payload", pa.binary()),
    ]
)
# $1, $2 = the batch's lowest and highest ts_exchange: only that slice of the table is probed.
_INSERT_NEW_TICKS = """
INSERT INTO ticks SELECT * FROM _tick_batch b
WHERE NOT EXISTS (
    SELECT 1 FROM ticks t
    WHERE t.ts_exchange >= $1 AND t.ts_exchange <= $2
      AND t.ts_exchange = b.ts_exchange AND t.tick_id = b.tick_id AND t.ts_recv = b.ts_recv
      AND t.token = b.token AND t.exchange = b.exchange)
"""
# One writer lock per database file in this process (":memory:" databases are private).
_FILE_LOCKS: dict[str, threading.Lock] = {}
_FILE_LOCKS_GUARD = threading.Lock()


def _write_lock(path: str) -> threading.Lock:
    if path == ":memory:":
        return threading.Lock()
    key = str(Path(path).resolve())
    with _FILE_LOCKS_GUARD:
        return _FILE_LOCKS.setdefault(key, threading.Lock())


_SELECT_HOT = """
SELECT payload, ts_exchange, ts_recv, tick_id FROM ticks
WHERE exchange = ? AND token = ? AND ts_exchange >= ? AND ts_exchange < ?
  AND (ts_exchange, ts_recv, tick_id) > (?, ?, ?)
ORDER BY ts_exchange, ts_recv, tick_id LIMIT ?
"""
# Hot table UNION the archive's Parquet files for the days in range (UNION also drops a row that
# is in both, i.e. archived but not yet deleted).
_SELECT_HOT_AND_COLD = """
SELECT payload, ts_exchange, ts_recv, tick_id FROM (
    SELECT payload, ts_exchange, ts_recv, tick_id FROM ticks
    WHERE exchange = ? AND token = ? AND ts_exchange >= ? AND ts_exchange < ?
      AND (ts_exchange, ts_recv, tick_id) > (?, ?, ?)
    UNION
    SELECT payload, ts_exchange, ts_recv, tick_id FROM read_parquet(?)
    WHERE token = ? AND ts_exchange >= ? AND ts_exchange < ?
      AND (ts_exchange, ts_recv, tick_id) > (?, ?, ?)
)
ORDER BY ts_exchange, ts_recv, tick_id LIMIT ?
"""
_SCAN = (
    "SELECT payload, exchange, token, ts_exchange, ts_recv, tick_id FROM ticks"
    " WHERE ts_exchange >= ? AND ts_exchange < ? AND (? IS NULL OR exchange = ?)"
    " AND (exchange, token, ts_exchange, ts_recv, tick_id) > (?, ?, ?, ?, ?)"
    " ORDER BY exchange, token, ts_exchange, ts_recv, tick_id LIMIT ?"
)
_DELETE = (
    "DELETE FROM ticks WHERE ts_exchange >= ? AND ts_exchange < ? AND (? IS NULL OR exchange = ?)"
)
_CANDLE_UPSERT = """
INSERT INTO candles SELECT * FROM _candle_batch
ON CONFLICT (exchange, token, interval, start) DO UPDATE SET
    symbol = excluded.symbol, open = excluded.open, high = excluded.high, low = excluded.low,
    close = excluded.close, volume = excluded.volume, oi = excluded.oi, ticks = excluded.ticks,
    partial = excluded.partial, incomplete = excluded.incomplete, revision = excluded.revision,
    indicators = excluded.indicators
WHERE excluded.revision >= candles.revision
"""
_CANDLE_QUERY = (
    "SELECT exchange, token, interval, start, symbol, open, high, low, close, volume, oi,"
    " ticks, partial, incomplete, revision, indicators FROM candles"
    " WHERE exchange = ? AND token = ? AND interval = ? AND start >= ? AND start < ?"
)  # no ORDER BY: DuckDB's sort costs ~1.5 ms on 375 rows; Python sorts them in ~30 us
_INSTRUMENT_UPSERT = (
    "INSERT OR REPLACE INTO instruments VALUES (?, ?, ?, ?, ?, ?, ?)"  # exchange..payload
)
_by_start = itemgetter(3)  # the candle query's ``start`` column
# (exchange, token, ts_exchange, ts_recv, tick_id) below every real key: where a scan starts
_SCAN_START = ("", -(2**63), -(2**63), -(2**63), -(2**63))


def _first_key(start_ns: int, limit: int, after: str | None) -> TickKey:
    """The keyset position a page starts after. (start - 1, *, *) sorts before every row at or
    after start: the first page needs no special case in the keyset condition."""
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    return decode_cursor(after) if after else TickKey(start_ns - 1, 0, 0)


class DuckDBStore:
    """Embedded TickStore in one DuckDB file (``":memory:"`` for tests)."""

    name = "duckdb"

    def __init__(self, path: str | Path = ":memory:", *, archive_dir: str | Path | None = None):
        self.path = str(path)
        self.archive_dir = None if archive_dir is None else Path(archive_dir)
        self._con: duckdb.DuckDBPyConnection | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._ticks_written = 0
        self._lock = _write_lock(self.path)

    def __repr__(self) -> str:
        return f"DuckDBStore(path={self.path!r}, archive_dir={self.archive_dir!s})"

    async def _run(self, fn: Callable[..., R], *args: Any) -> R:
        if self._executor is None:
            raise RuntimeError("store is not open")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    @property
    def _db(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            raise RuntimeError("store is not open")
        return self._con

    async def open(self) -> None:
        if self._con is not None:
            return
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="duckdb")
        self._con = await self._run(duckdb.connect, self.path)
        await self._run(self._db.execute, _SCHEMA)
        log.info("duckdb store open at %s", self.path)

    async def close(self) -> None:
        if self._con is None or self._executor is None:
            return
        await self._run(self._con.close)
        self._executor.shutdown(wait=True)
        self._con = None
        self._executor = None

    # ---- ticks ----------------------------------------------------------------------------

    def _write_ticks_sync(self, ticks: Sequence[Tick]) -> int:
        enc = encode_ticks(ticks)
        table = tick_table(ticks, enc)
        keep = first_of_each_key(ticks, enc.tick_ids)
        if keep is not None:
            table = table.take(keep)
        ts = table.column("ts_exchange")
        bounds = [pc.min(ts).as_py(), pc.max(ts).as_py()]
        con = self._db
        with self._lock:
            con.register("_tick_batch", table)
            try:
                row = con.execute(_INSERT_NEW_TICKS, bounds).fetchone()
            finally:
                con.unregister("_tick_batch")
        return int(row[0]) if row else 0

    async def write_ticks(self, ticks: Sequence[Tick]) -> int:
        if not ticks:
            return 0
        n = await self._run(self._write_ticks_sync, ticks)
        self._ticks_written += n
        return n

    def _query_blob_sync(
        self, exchange: str, token: int, start_ns: int, end_ns: int, limit: int, key: TickKey
    ) -> TickBlob:
        keyset = [token, start_ns, end_ns, *key]
        files = _archive.local_files(self.archive_dir, exchange, start_ns, end_ns)
        if files:
            sql, params = _SELECT_HOT_AND_COLD, [exchange, *keyset, files, *keyset, limit + 1]
        else:
            sql, params = _SELECT_HOT, [exchange, *keyset, limit + 1]
        # Arrow result: the payloads arrive as one buffer, no Python object per row
        table = self._db.sql(sql, params=params).to_arrow_table()
        count = min(table.num_rows, limit)
        cursor = None
        if table.num_rows > limit:
            last = table.slice(limit - 1, 1).select(["ts_exchange", "ts_recv", "tick_id"])
            cursor = encode_cursor(TickKey(*(c[0].as_py() for c in last.columns)))
        body = payload_blob(table.column("payload").slice(0, count))
        return TickBlob(count, msgpack_array(count, body), cursor)

    def _query_ticks_sync(
        self, exchange: str, token: int, start_ns: int, end_ns: int, limit: int, key: TickKey
    ) -> TickPage:
        page = self._query_blob_sync(exchange, token, start_ns, end_ns, limit, key)
        return TickPage(ticks_from_blob(page.blob), page.next_cursor)  # on the worker

    async def query_ticks(
        self,
        exchange: str,
        token: int,
        start_ns: int,
        end_ns: int,
        *,
        limit: int = 10_000,
        after: str | None = None,
    ) -> TickPage:
        key = _first_key(start_ns, limit, after)
        return await self._run(
            self._query_ticks_sync, exchange, token, start_ns, end_ns, limit, key
        )

    async def query_tick_blob(
        self,
        exchange: str,
        token: int,
        start_ns: int,
        end_ns: int,
        *,
        limit: int = 10_000,
        after: str | None = None,
    ) -> TickBlob:
        """``query_ticks`` without decoding: the page as one msgpack array (see TickBlob)."""
        key = _first_key(start_ns, limit, after)
        return await self._run(self._query_blob_sync, exchange, token, start_ns, end_ns, limit, key)

    async def query_tick_window(
        self,
        instruments: Sequence[tuple[str, int]],
        after: Sequence[TickKey],
        start_ns: int,
        end_ns: int,
        *,
        limit: int = 40_000,
        sources: Collection[str] | None = None,
        exclude_source: str = "replay",
        until_ns: int | None = None,
    ) -> TickWindow:
        """Every listed instrument's ticks in ``[start_ns, end_ns)`` strictly after its ``after``
        key, merged by (ts_exchange, position in ``instruments``, ts_recv, tick_id), at most
        ``limit``; from the table and the local archive (see :mod:`.duckdb_window`).
        ``sources`` keeps only those sources; None keeps all but ``exclude_source``. An empty
        window read with ``until_ns`` also says where the next rows start (``next_ts``)."""
        if len(after) != len(instruments) or limit < 1:
            raise ValueError("one after-key per instrument and limit >= 1 are required")
        return await self._run(
            read_window, self._db, self.archive_dir, instruments, after,
            (start_ns, end_ns, until_ns), limit, sources, exclude_source,
        )  # fmt: skip

    async def scan_ticks(
        self, start_ns: int, end_ns: int, *, exchange: str | None = None, batch_size: int = 50_000
    ) -> AsyncIterator[list[Tick]]:
        """Hot-table ticks only (the archive is what this feeds)."""
        last: tuple[Any, ...] = _SCAN_START
        while True:
            params = [start_ns, end_ns, exchange, exchange, *last, batch_size]
            rows = await self._run(lambda p: self._db.execute(_SCAN, p).fetchall(), params)
            if not rows:
                return
            yield await self._run(ticks_from_payloads, [r[0] for r in rows])
            if len(rows) < batch_size:
                return
            last = tuple(rows[-1][1:])

    async def delete_ticks(self, start_ns: int, end_ns: int, *, exchange: str | None = None) -> int:
        params = [start_ns, end_ns, exchange, exchange]
        row = await self._run(lambda: self._db.execute(_DELETE, params).fetchone())
        return int(row[0]) if row else 0

    # ---- candles --------------------------------------------------------------------------

    def _write_candles_sync(self, candles: Sequence[Candle]) -> int:
        rows = [candle_row(c) for c in latest_candles(candles)]
        table = candle_table(rows)
        con = self._db
        con.register("_candle_batch", table)
        try:
            row = con.execute(_CANDLE_UPSERT).fetchone()
        finally:
            con.unregister("_candle_batch")
        return int(row[0]) if row else 0

    async def write_candles(self, candles: Sequence[Candle]) -> int:
        if not candles:
            return 0
        return await self._run(self._write_candles_sync, candles)

    async def query_candles(
        self, exchange: str, token: int, interval: Interval, start_ns: int, end_ns: int
    ) -> list[Candle]:
        params = [exchange, token, Interval(interval).value, start_ns, end_ns]
        return await self._run(self._query_candles_sync, params)

    def _query_candles_sync(self, params: list[Any]) -> list[Candle]:
        rows = self._db.execute(_CANDLE_QUERY, params).fetchall()
        rows.sort(key=_by_start)
        return [candle_from_row(r) for r in rows]

    # ---- instruments ----------------------------------------------------------------------

    async def upsert_instruments(self, instruments: Sequence[Instrument]) -> int:
        if not instruments:
            return 0
        rows = [instrument_row(i) for i in {i.key: i for i in instruments}.values()]
        await self._run(lambda: self._db.executemany(_INSTRUMENT_UPSERT, rows))
        return len(rows)

    async def search_instruments(
        self, query: str, *, exchange: str | None = None, limit: int = 20
    ) -> list[Instrument]:
        params = [query.strip(), exchange, limit]
        rows = await self._run(lambda: self._db.execute(INSTRUMENT_SEARCH, params).fetchall())
        return [instrument_from_payload(r[0]) for r in rows]

    def stats(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "path": self.path,
            "archive_dir": None if self.archive_dir is None else str(self.archive_dir),
            "ticks_written": self._ticks_written,
        }
