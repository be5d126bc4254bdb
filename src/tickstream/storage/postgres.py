"""PostgreSQL store (asyncpg): migrations, daily tick partitions, COPY + ON CONFLICT writes.

Schema (``storage/migrations``): ``instruments``; ``ticks`` keyed by
``(exchange, token, ts_exchange, ts_recv, tick_id)`` so two ticks in one second both survive (see
:mod:`tickstream.storage.base`); ``candles_1s`` ... ``candles_1d`` (``candles_1m``, ``candles_5m``
among them) written by the pipeline.

- Plain PostgreSQL: ``ticks`` is range-partitioned on ``ts_exchange`` by IST day. Before writing
  a batch that touches a new day the store creates ``ticks_pYYYYMMDD`` (``CREATE TABLE IF NOT
  EXISTS ... PARTITION OF``) under an advisory lock. DDL cannot take parameters, so the partition
  name and bounds are built only from a ``datetime.date`` and integers, the name is checked
  against a strict pattern and quoted as an identifier.
- TimescaleDB (when the extension is available): a hypertable with 1-day chunks and 1m/5m
  continuous aggregates (real-time aggregation on, refresh policies). That path is UNTESTED here:
  the local PostgreSQL has no timescaledb.

Writes, in one transaction per batch: repeats inside the batch are dropped client-side, then the
rows are ``COPY``-ed in key order (so concurrent writers cannot deadlock) straight into ``ticks``
under a savepoint (the fast path: as cheap as a raw COPY). If any row is already stored, the
unique key rejects that COPY; the store rolls back to the savepoint and takes the safe path:
``COPY`` into a per-connection ``TEMP`` staging table (``ON COMMIT DELETE ROWS``), then
``INSERT ... SELECT ... ON CONFLICT DO NOTHING``. After a conflict the next few batches go
straight to the safe path (a replayed day conflicts on every batch). A redelivered batch adds
nothing; one duplicate never discards the rest of a batch; a crash mid-batch leaves nothing
half-written. Every value is a bound parameter.

Connection failures (refused, reset, server shutting down or starting up) surface as
:class:`~tickstream.storage.base.StoreUnavailableError`; the pool reconnects on the next call, so
callers (the sinks) retry the same batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, Final, TypeVar

import asyncpg

from tickstream.calendar import DAY_NS, IST_OFFSET_NS, ist_midnight_ns
from tickstream.model import Candle, Instrument, Interval, Tick
from tickstream.storage.base import (
    CANDLE_COLUMNS,
    TICK_COLUMNS,
    StoreUnavailableError,
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
from tickstream.storage.columnar import unique_tick_records
from tickstream.storage.pg_migrate import detect_flavor, migrate
from tickstream.storage.sql import CANDLE_UPSERT_SET, INSTRUMENT_SEARCH, latest_candles

__all__ = ["PostgresStore"]

log = logging.getLogger(__name__)

_PARTITION_LOCK_ID: Final = 0x70617274  # "part"
_PARTITION_RE = re.compile(r"^ticks_p\d{8}$")
_EPOCH: Final = dt.date(1970, 1, 1)
_UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.InterfaceError,
)
_OFFLOAD_MIN: Final = 2000
_SAFE_BATCHES_AFTER_CONFLICT: Final = 8
R = TypeVar("R")
_CANDLE_TABLES: Final = {i: f"candles_{i.value}" for i in Interval}

_STAGE_DDL = "CREATE TEMP TABLE IF NOT EXISTS ticks_stage (LIKE ticks) ON COMMIT DELETE ROWS"
_INSERT_STAGED = (
    "INSERT INTO ticks SELECT * FROM ticks_stage"
    " ORDER BY exchange, token, ts_exchange, ts_recv, tick_id ON CONFLICT DO NOTHING"
)
_QUERY = (
    "SELECT payload, ts_exchange, ts_recv, tick_id FROM ticks"
    " WHERE exchange = $1 AND token = $2 AND ts_exchange >= $3 AND ts_exchange < $4"
    " AND (ts_exchange, ts_recv, tick_id) > ($5, $6, $7)"
    " ORDER BY ts_exchange, ts_recv, tick_id LIMIT $8"
)
_SCAN = (
    "SELECT payload, exchange, token, ts_exchange, ts_recv, tick_id FROM ticks"
    " WHERE ts_exchange >= $1 AND ts_exchange < $2 AND ($3::text IS NULL OR exchange = $3)"
    " AND (exchange, token, ts_exchange, ts_recv, tick_id) > ($4, $5, $6, $7, $8)"
    " ORDER BY exchange, token, ts_exchange, ts_recv, tick_id LIMIT $9"
)
_DELETE = (
    "DELETE FROM ticks WHERE ts_exchange >= $1 AND ts_exchange < $2"
    " AND ($3::text IS NULL OR exchange = $3)"
)
_CANDLE_TYPES = (
    "text", "bigint", "text", "bigint", "text", "float8", "float8", "float8", "float8",
    "bigint", "bigint", "bigint", "boolean", "boolean", "bigint", "text",
)  # fmt: skip
_UNNEST = ", ".join(f"${n}::{t}[]" for n, t in enumerate(_CANDLE_TYPES, start=1))
# Table names come from the fixed Interval -> name table above, never from input.
_CANDLE_UPSERT = {
    i: f"INSERT INTO {t} SELECT * FROM unnest({_UNNEST}) ON CONFLICT (exchange, token, start)"  # noqa: S608
    f" DO UPDATE SET {CANDLE_UPSERT_SET} WHERE excluded.revision >= {t}.revision"
    for i, t in _CANDLE_TABLES.items()
}
_CANDLE_QUERY = {
    i: f"SELECT {', '.join(CANDLE_COLUMNS)} FROM {t}"  # noqa: S608 - constant table names
    " WHERE exchange = $1 AND token = $2 AND start >= $3 AND start < $4 ORDER BY start"
    for i, t in _CANDLE_TABLES.items()
}
_INSTRUMENT_UPSERT = (
    "INSERT INTO instruments (exchange, token, symbol, name, instrument_type, expiry, payload)"
    " SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[],"
    " $6::text[], $7::bytea[]) ON CONFLICT (exchange, token) DO UPDATE SET"
    " symbol = excluded.symbol, name = excluded.name, instrument_type = excluded.instrument_type,"
    " expiry = excluded.expiry, payload = excluded.payload, updated_at = now()"
)


def quote_ident(name: str) -> str:
    """Quote a partition name that matched the strict pattern (asyncpg has no sql.Identifier)."""
    if not _PARTITION_RE.match(name):
        raise ValueError(f"refusing identifier {name!r}")
    return '"' + name.replace('"', '""') + '"'


def partition_ddl(day: dt.date) -> str:
    """``CREATE TABLE IF NOT EXISTS`` for the IST day's partition (bounds are integers)."""
    lo = int(ist_midnight_ns(day))
    hi = int(ist_midnight_ns(day + dt.timedelta(days=1)))
    name = quote_ident(f"ticks_p{day.year:04d}{day.month:02d}{day.day:02d}")
    return f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF ticks FOR VALUES FROM ({lo}) TO ({hi})"


def ist_days(ts_values: Sequence[int]) -> set[dt.date]:
    """The IST days a batch's exchange timestamps fall on."""
    indexes = {(ts + IST_OFFSET_NS) // DAY_NS for ts in ts_values}
    return {_EPOCH + dt.timedelta(days=i) for i in indexes}


@contextlib.contextmanager
def _unavailable_as_store_error() -> Iterator[None]:
    try:
        yield
    except _UNAVAILABLE as exc:
        raise StoreUnavailableError(f"postgres unavailable: {type(exc).__name__}") from exc


async def _offload(fn: Callable[[Sequence[Any]], R], items: Sequence[Any]) -> R:
    """Encode/decode big batches on a worker thread so the event loop keeps serving."""
    if len(items) < _OFFLOAD_MIN:
        return fn(items)
    return await asyncio.to_thread(fn, items)


def _status_count(status: str) -> int:
    """Rows affected from a command tag such as ``INSERT 0 42`` or ``DELETE 7``."""
    return int(status.rsplit(" ", 1)[-1])


class PostgresStore:
    """TickStore on PostgreSQL (TimescaleDB when available). ``dsn`` never appears in output."""

    name = "postgres"

    def __init__(
        self, dsn: str, *, min_size: int = 1, max_size: int = 4, allow_timescale: bool = True
    ) -> None:
        self._dsn = dsn
        self._min_size = min_size
        self._max_size = max_size
        self._allow_timescale = allow_timescale
        self._pool: asyncpg.Pool | None = None
        self.flavor = "unknown"
        self._partitions: set[dt.date] = set()
        self._ticks_written = 0
        self._safe_batches_left = 0

    def __repr__(self) -> str:
        return f"PostgresStore(flavor={self.flavor!r})"

    async def open(self) -> None:
        if self._pool is not None:
            return
        with _unavailable_as_store_error():
            conn = await asyncpg.connect(self._dsn)
            try:
                self.flavor = await detect_flavor(conn, self._allow_timescale)
                await migrate(conn, self.flavor)
            finally:
                await conn.close()
            self._pool = await asyncpg.create_pool(
                self._dsn, min_size=self._min_size, max_size=self._max_size, init=self._init_conn
            )
        log.info("postgres store open (%s)", self.flavor)

    @staticmethod
    async def _init_conn(conn: asyncpg.Connection) -> None:
        await conn.execute(_STAGE_DDL)

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("store is not open")
        return self._pool

    # ---- ticks ----------------------------------------------------------------------------

    async def _ensure_partitions(self, conn: asyncpg.Connection, ticks: Sequence[Tick]) -> None:
        if self.flavor != "plain":
            return
        for day in sorted(ist_days([t.ts_exchange for t in ticks]) - self._partitions):
            async with conn.transaction():
                await conn.execute(
                    "SELECT pg_advisory_xact_lock($1, $2)", _PARTITION_LOCK_ID, day.toordinal()
                )
                await conn.execute(partition_ddl(day))
            self._partitions.add(day)

    async def write_ticks(self, ticks: Sequence[Tick]) -> int:
        if not ticks:
            return 0
        rows = await _offload(unique_tick_records, ticks)
        with _unavailable_as_store_error():
            async with self.pool.acquire() as conn:
                await self._ensure_partitions(conn, ticks)
                async with conn.transaction():
                    n = await self._insert_rows(conn, rows)
        self._ticks_written += n
        return n

    async def _insert_rows(self, conn: asyncpg.Connection, rows: list[tuple[Any, ...]]) -> int:
        """New rows of a batch without repeats, inside the caller's transaction."""
        if self._safe_batches_left > 0:
            self._safe_batches_left -= 1
        else:
            try:
                async with conn.transaction():  # a savepoint: a conflict undoes only this COPY
                    status = await conn.copy_records_to_table(
                        "ticks", records=rows, columns=TICK_COLUMNS
                    )
                return _status_count(status)
            except asyncpg.UniqueViolationError:
                self._safe_batches_left = _SAFE_BATCHES_AFTER_CONFLICT
        await conn.copy_records_to_table("ticks_stage", records=rows, columns=TICK_COLUMNS)
        return _status_count(await conn.execute(_INSERT_STAGED))

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
        page = await self.query_tick_blob(
            exchange, token, start_ns, end_ns, limit=limit, after=after
        )
        if page.n < _OFFLOAD_MIN:
            return TickPage(ticks_from_blob(page.blob), page.next_cursor)
        return TickPage(await asyncio.to_thread(ticks_from_blob, page.blob), page.next_cursor)

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
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        key = decode_cursor(after) if after else TickKey(start_ns - 1, 0, 0)
        with _unavailable_as_store_error():
            rows = await self.pool.fetch(_QUERY, exchange, token, start_ns, end_ns, *key, limit + 1)
        # (Concatenating server-side with string_agg saved client CPU but cost the server more.)
        n = min(len(rows), limit)
        cursor = encode_cursor(TickKey(*tuple(rows[n - 1])[1:])) if len(rows) > limit else None
        return TickBlob(n, msgpack_array(n, b"".join([r[0] for r in rows[:n]])), cursor)

    async def scan_ticks(
        self, start_ns: int, end_ns: int, *, exchange: str | None = None, batch_size: int = 50_000
    ) -> AsyncIterator[list[Tick]]:
        low = -(2**63)
        last: tuple[Any, ...] = ("", low, low, low, low)
        while True:
            with _unavailable_as_store_error():
                rows = await self.pool.fetch(_SCAN, start_ns, end_ns, exchange, *last, batch_size)
            if not rows:
                return
            yield await _offload(ticks_from_payloads, [r[0] for r in rows])
            if len(rows) < batch_size:
                return
            last = tuple(rows[-1])[1:]

    async def delete_ticks(self, start_ns: int, end_ns: int, *, exchange: str | None = None) -> int:
        with _unavailable_as_store_error():
            status = await self.pool.execute(_DELETE, start_ns, end_ns, exchange)
        return _status_count(status)

    # ---- candles --------------------------------------------------------------------------

    async def write_candles(self, candles: Sequence[Candle]) -> int:
        by_interval: dict[Interval, list[Candle]] = {}
        for c in latest_candles(candles):
            by_interval.setdefault(Interval(c.interval), []).append(c)
        total = 0
        with _unavailable_as_store_error():
            async with self.pool.acquire() as conn, conn.transaction():
                for interval, group in by_interval.items():
                    columns = list(zip(*(candle_row(c) for c in group), strict=True))
                    status = await conn.execute(_CANDLE_UPSERT[interval], *columns)
                    total += _status_count(status)
        return total

    async def query_candles(
        self, exchange: str, token: int, interval: Interval, start_ns: int, end_ns: int
    ) -> list[Candle]:
        sql = _CANDLE_QUERY[Interval(interval)]
        with _unavailable_as_store_error():
            rows = await self.pool.fetch(sql, exchange, token, start_ns, end_ns)
        return [candle_from_row(tuple(r)) for r in rows]

    # ---- instruments ----------------------------------------------------------------------

    async def upsert_instruments(self, instruments: Sequence[Instrument]) -> int:
        if not instruments:
            return 0
        rows = [instrument_row(i) for i in {i.key: i for i in instruments}.values()]
        with _unavailable_as_store_error():
            await self.pool.execute(_INSTRUMENT_UPSERT, *zip(*rows, strict=True))
        return len(rows)

    async def search_instruments(
        self, query: str, *, exchange: str | None = None, limit: int = 20
    ) -> list[Instrument]:
        with _unavailable_as_store_error():
            rows = await self.pool.fetch(INSTRUMENT_SEARCH, query.strip(), exchange, limit)
        return [instrument_from_payload(r[0]) for r in rows]

    def stats(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "flavor": self.flavor,
            "partitions_known": len(self._partitions),
            "ticks_written": self._ticks_written,
        }
