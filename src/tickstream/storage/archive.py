"""Parquet cold storage: one day of ticks per exchange and instrument kind, zstd-compressed.

Layout (hive partitioning, readable as one dataset by pandas, polars, pyarrow and DuckDB)::

    <root>/exchange=NSE/date=2026-11-20/kind=EQ/part-0.parquet

``date`` is the IST trading date. ``kind`` is EQ, FUT, OPT or IDX, derived from the exchange and
the trading symbol (:func:`instrument_kind`). The files hold every canonical field as a column
(depth as lists of ``{price, qty, orders}``) for analysis, plus ``tick_id`` and ``payload`` (the
tick's msgpack), from which a tick is rebuilt exactly: an archived tick reads back ``==`` the
stored one. The partition columns are not repeated inside the files.

``root`` is a local directory or ``s3://bucket/prefix`` on any S3-compatible store. Plain HTTP
(``http://`` endpoint) is accepted only for a loopback endpoint, i.e. a local test server; anything
else must be HTTPS with certificate verification (pyarrow's default, never turned off here).

Archiving a day rewrites that day's files from the hot store; run it once the day is complete.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from tickstream.calendar import ist_date, ist_midnight_ns
from tickstream.model import Tick
from tickstream.storage.base import TickStore, tick_columns, ticks_from_payloads

__all__ = [
    "ARCHIVE_SCHEMA",
    "ArchiveResult",
    "ArchiveTarget",
    "archive_day",
    "instrument_kind",
    "local_files",
    "open_target",
    "read_archive",
    "ticks_to_table",
]

_EXCHANGE_RE = re.compile(r"^[A-Z0-9_]{1,16}$")
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_DERIVATIVES = frozenset({"NFO", "BFO", "MCX", "CDS", "BCD", "NCO"})
_LEVEL = pa.struct([("price", pa.float64()), ("qty", pa.int64()), ("orders", pa.int64())])
_SKIP = frozenset({"exchange", "depth", "mode", "status"})


def _arrow_type(annotation: Any) -> pa.DataType:
    args = typing.get_args(annotation) or (annotation,)
    if int in args:
        return pa.int64()
    if float in args:
        return pa.float64()
    return pa.string()


_FIELDS = [f for f in Tick.__struct_fields__ if f not in _SKIP]
_FIELD_TYPES = {f.name: _arrow_type(f.type) for f in msgspec.structs.fields(Tick)}
ARCHIVE_SCHEMA = pa.schema(
    [("tick_id", pa.int64()), ("payload", pa.binary())]
    + [(f, _FIELD_TYPES[f]) for f in _FIELDS]
    + [("mode", pa.string()), ("status", pa.string())]
    + [("depth_bids", pa.list_(_LEVEL)), ("depth_asks", pa.list_(_LEVEL))]
)


def instrument_kind(exchange: str, symbol: str) -> str:
    """EQ, FUT, OPT or IDX from the exchange and trading symbol (NIFTY24DEC24000CE -> OPT)."""
    if exchange == "INDICES":
        return "IDX"
    if exchange in _DERIVATIVES:
        return "OPT" if symbol.upper().endswith(("CE", "PE")) else "FUT"
    return "EQ"


def _levels(levels: Sequence[Any] | None) -> list[dict[str, Any]] | None:
    if levels is None:
        return None
    return [{"price": x.price, "qty": x.qty, "orders": x.orders} for x in levels]


def ticks_to_table(ticks: Sequence[Tick]) -> pa.Table:
    """Archive rows for a batch (no partition columns)."""
    cols = tick_columns(ticks)
    arrays: list[Any] = [cols.tick_id, cols.payload]
    arrays += [[getattr(t, f) for t in ticks] for f in _FIELDS]
    arrays.append([t.mode.value for t in ticks])
    arrays.append([t.status.value for t in ticks])
    arrays.append([None if t.depth is None else _levels(t.depth.bids) for t in ticks])
    arrays.append([None if t.depth is None else _levels(t.depth.asks) for t in ticks])
    return pa.Table.from_arrays(
        [pa.array(a, type=f.type) for a, f in zip(arrays, ARCHIVE_SCHEMA, strict=True)],
        schema=ARCHIVE_SCHEMA,
    )


@dataclass(frozen=True, slots=True)
class ArchiveTarget:
    """Where an archive lives: a pyarrow filesystem and the root path inside it."""

    fs: pafs.FileSystem
    root: str
    uri: str

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    def day_dir(self, exchange: str, day: dt.date) -> str:
        if not _EXCHANGE_RE.match(exchange):
            raise ValueError(f"invalid exchange {exchange!r}")
        return f"{self.root}/exchange={exchange}/date={day.isoformat()}"


def _s3_filesystem(endpoint_url: str | None) -> pafs.S3FileSystem:
    if endpoint_url is None:
        return pafs.S3FileSystem()
    parts = urlsplit(endpoint_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("S3 endpoint must be an http(s) URL")
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
        raise ValueError("plain-HTTP S3 endpoints are allowed only on loopback (local test server)")
    return pafs.S3FileSystem(
        endpoint_override=parts.netloc, scheme=parts.scheme, region="us-east-1"
    )


def open_target(dest: str | Path, *, endpoint_url: str | None = None) -> ArchiveTarget:
    """``s3://bucket/prefix`` (credentials from the standard AWS environment) or a local dir."""
    text = str(dest)
    if text.startswith("s3://"):
        root = text.removeprefix("s3://").strip("/")
        if not root:
            raise ValueError("s3 destination needs a bucket: s3://bucket/prefix")
        return ArchiveTarget(_s3_filesystem(endpoint_url), root, text)
    path = Path(text).resolve()
    return ArchiveTarget(pafs.LocalFileSystem(), path.as_posix(), path.as_posix())


@dataclass(frozen=True, slots=True)
class ArchiveResult:
    day: dt.date
    rows: int
    files: tuple[str, ...]


class _DayWriter:
    """One ParquetWriter per (exchange, kind) of a day; blocking I/O, run it off the loop."""

    def __init__(self, target: ArchiveTarget, day: dt.date) -> None:
        self.target = target
        self.day = day
        self.writers: dict[tuple[str, str], pq.ParquetWriter] = {}
        self.paths: list[str] = []

    def write(self, ticks: Sequence[Tick]) -> None:
        groups: dict[tuple[str, str], list[Tick]] = {}
        for t in ticks:
            groups.setdefault((t.exchange, instrument_kind(t.exchange, t.symbol)), []).append(t)
        for key, group in groups.items():
            self._writer(key).write_table(ticks_to_table(group))

    def _writer(self, key: tuple[str, str]) -> pq.ParquetWriter:
        writer = self.writers.get(key)
        if writer is None:
            folder = f"{self.target.day_dir(key[0], self.day)}/kind={key[1]}"
            if self.target.is_local:  # object stores have no directories (no marker objects)
                self.target.fs.create_dir(folder, recursive=True)
            path = f"{folder}/part-0.parquet"
            writer = pq.ParquetWriter(
                path, ARCHIVE_SCHEMA, filesystem=self.target.fs, compression="zstd"
            )
            self.writers[key] = writer
            self.paths.append(path)
        return writer

    def close(self) -> None:
        for w in self.writers.values():
            w.close()


async def archive_day(
    store: TickStore,
    day: dt.date,
    target: ArchiveTarget,
    *,
    exchange: str | None = None,
    on_progress: Callable[[int], None] | None = None,
    batch_size: int = 50_000,
) -> ArchiveResult:
    """Copy one IST day of ticks from ``store`` into ``target``; the store is left unchanged."""
    start, end = ist_midnight_ns(day), ist_midnight_ns(day + dt.timedelta(days=1))
    writer = _DayWriter(target, day)
    rows = 0
    try:
        async for batch in store.scan_ticks(start, end, exchange=exchange, batch_size=batch_size):
            await asyncio.to_thread(writer.write, batch)
            rows += len(batch)
            if on_progress is not None:
                on_progress(len(batch))
    finally:
        await asyncio.to_thread(writer.close)
    return ArchiveResult(day, rows, tuple(writer.paths))


def read_archive(
    target: ArchiveTarget, exchange: str, day: dt.date, token: int | None = None
) -> list[Tick]:
    """One archived day (optionally one instrument), in (token, ts_exchange, ts_recv, id) order."""
    folder = target.day_dir(exchange, day)
    info = target.fs.get_file_info(folder)
    if info.type == pafs.FileType.NotFound:
        return []
    filters = None if token is None else [("token", "=", token)]
    table = pq.read_table(
        folder,
        filesystem=target.fs,
        columns=["token", "ts_exchange", "ts_recv", "tick_id", "payload"],
        filters=filters,
        partitioning="hive",
    )
    table = table.sort_by(
        [(c, "ascending") for c in ("token", "ts_exchange", "ts_recv", "tick_id")]
    )
    return ticks_from_payloads(table.column("payload").to_pylist())


def local_files(root: Path | None, exchange: str, start_ns: int, end_ns: int) -> list[str]:
    """Parquet files of a local archive for ``exchange`` on the IST days overlapping a range."""
    if root is None or not _EXCHANGE_RE.match(exchange) or end_ns <= start_ns:
        return []
    base = root / f"exchange={exchange}"
    if not base.is_dir():
        return []
    first, last = ist_date(start_ns), ist_date(end_ns - 1)
    files: list[str] = []
    for day_dir in sorted(base.glob("date=*")):
        try:
            day = dt.date.fromisoformat(day_dir.name.removeprefix("date="))
        except ValueError:
            continue
        if first <= day <= last:
            files.extend(str(p) for p in sorted(day_dir.glob("kind=*/*.parquet")))
    return files
