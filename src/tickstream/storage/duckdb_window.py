"""Time-window reads across many instruments in ONE DuckDB query (what a replay reads).

The ``ticks`` table is in arrival order with no per-instrument index, so a keyset page query for
one instrument scans every row of the remaining time range: a replay of N instruments that pages
each instrument separately reads the table about N times (500 instruments: ~8.6k ticks/s instead
of ~150k with 20). A window query reads ``[lo, hi)`` once for all of them (zone maps on
``ts_exchange`` skip the rest) and returns the rows already merged in the replay's order::

    ORDER BY ts_exchange, rank, ts_recv, tick_id

where ``rank`` is the instrument's position in the request (the replay sorts instruments by
``(exchange, token)``) and ``(ts_recv, tick_id)`` is each instrument's own store order: exactly
the order of the per-instrument pages merged by :class:`tickstream.replay.merge.PageMerger`.

Each instrument carries an ``after`` key: only its rows strictly after it are read (a resumed or
truncated read continues exactly where it stopped). The instrument list, ranks and keys are list
parameters, unnested and joined in the query, so every value is a parameter; the only variable
part of the SQL is one fixed ``UNION`` branch per exchange that has local archive (Parquet) files
in range, as in the per-instrument query.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path
from typing import NamedTuple

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa

from tickstream.model import Tick
from tickstream.storage import archive as _archive
from tickstream.storage.base import TickKey, msgpack_array, ticks_from_blob
from tickstream.storage.columnar import payload_blob

__all__ = ["TickWindow", "read_window", "selection_params", "window_result"]


_HOT = (
    "SELECT exchange, token, ts_exchange, ts_recv, tick_id, source, payload FROM ticks"
    " WHERE ts_exchange >= $lo AND ts_exchange < $hi"
)
# One per exchange with archive files: the partition column is not inside the files.
_COLD = (
    "SELECT CAST($x{i} AS VARCHAR) AS exchange, token, ts_exchange, ts_recv, tick_id, source,"
    " payload FROM read_parquet($f{i}) WHERE ts_exchange >= $lo AND ts_exchange < $hi"
)
_BODY = (
    "SELECT s.rank, t.ts_exchange, t.ts_recv, t.tick_id, t.payload FROM ({rows}) t"
    " JOIN (SELECT unnest($s_exchange) AS exchange, unnest($s_token) AS token,"
    " CAST(unnest($s_rank) AS BIGINT) AS rank, unnest($s_ts) AS a_ts, unnest($s_recv) AS a_recv,"
    " unnest($s_id) AS a_id) s ON t.exchange = s.exchange AND t.token = s.token"
    " WHERE (t.ts_exchange, t.ts_recv, t.tick_id) > (s.a_ts, s.a_recv, s.a_id) AND {source}"
    " ORDER BY t.ts_exchange, s.rank, t.ts_recv, t.tick_id LIMIT $limit"
)
# After an empty window: where the instruments' next rows start (a lower bound: any source).
_NEXT = "SELECT min(t.ts_exchange) FROM ({rows}) t WHERE list_contains($s_token, t.token)"
_ALL_BUT = "t.source <> $source"
_ONLY = "list_contains($sources, t.source)"


class TickWindow(NamedTuple):
    """One window read: ticks in merged order, each instrument's last key, and whether the row
    limit cut the window short (then read again from the last tick's ``ts_exchange``)."""

    ticks: list[Tick]
    last: dict[int, TickKey]  # rank -> key of that instrument's last tick in ``ticks``
    truncated: bool
    # Only for an empty window read with ``until_ns``: the lowest ts_exchange at or after the
    # window's end (before ``until_ns``) of any row of the instruments; None = there is none.
    next_ts: int | None = None


def _rows(archived: Sequence[tuple[str, list[str]]]) -> tuple[str, dict[str, object]]:
    """The rows to read: the hot table, plus one UNION branch per exchange with archive files
    (and that branch's exchange name and file list as parameters)."""
    rows = [_HOT]
    params: dict[str, object] = {}
    for i, (exchange, files) in enumerate(archived):
        rows.append(_COLD.format(i=i))
        params[f"x{i}"], params[f"f{i}"] = exchange, files
    return " UNION ".join(rows), params  # UNION, not ALL: archived, not yet deleted = one row


def selection_params(
    instruments: Sequence[tuple[str, int]], after: Sequence[TickKey]
) -> dict[str, object]:
    """The instruments (rank = position) and the key each one's rows must come after, as list
    parameters the query unnests (an Arrow table built from lists would import pandas)."""
    return {
        "s_exchange": [x for x, _ in instruments],
        "s_token": [t for _, t in instruments],
        "s_rank": list(range(len(instruments))),
        "s_ts": [k.ts_exchange for k in after],
        "s_recv": [k.ts_recv for k in after],
        "s_id": [k.tick_id for k in after],
    }


def window_result(table: pa.Table, limit: int) -> TickWindow:
    """Decode a window query's Arrow result (columns rank, ts_exchange, ts_recv, tick_id,
    payload; at most ``limit`` rows)."""
    n = table.num_rows
    if n == 0:
        return TickWindow([], {}, False)
    ticks = ticks_from_blob(msgpack_array(n, payload_blob(table.column("payload"))))
    ranks = _numpy(table.column("rank"))
    found, first_rev = np.unique(ranks[::-1], return_index=True)
    rows = (n - 1 - first_rev).tolist()  # each rank's last row
    keys = [_numpy(table.column(c))[rows].tolist() for c in _KEY_COLUMNS]
    last = {int(r): TickKey(*k) for r, *k in zip(found.tolist(), *keys, strict=True)}
    return TickWindow(ticks, last, n >= limit)


_KEY_COLUMNS = ("ts_exchange", "ts_recv", "tick_id")


def _numpy(column: pa.ChunkedArray) -> npt.NDArray[np.int64]:
    """A NOT NULL int64 column as numpy, from its buffers (``to_numpy`` imports pandas)."""
    if column.type != pa.int64():
        raise TypeError(f"expected an int64 column, got {column.type}")
    parts = [
        np.frombuffer(c.buffers()[1], dtype=np.int64)[c.offset : c.offset + len(c)]
        for c in column.chunks
    ]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def read_window(
    con: duckdb.DuckDBPyConnection,
    archive_dir: Path | None,
    instruments: Sequence[tuple[str, int]],
    after: Sequence[TickKey],
    span: tuple[int, int, int | None],
    limit: int,
    sources: Collection[str] | None,
    exclude_source: str,
) -> TickWindow:
    """Run one window query on ``con`` (the store's worker thread) and decode it. ``span`` is
    (window start, window end, until): when the window is empty and ``until`` is given, also
    find where the next rows start (so a replay skips a night, or years, in one step)."""
    lo, hi, until = span
    rows, params = _rows(_archived(archive_dir, instruments, lo, hi))
    selection = selection_params(instruments, after)
    params.update(selection, lo=lo, hi=hi, limit=limit)
    if sources is None:
        params["source"] = exclude_source
    else:
        params["sources"] = sorted(sources)
    sql = _BODY.format(rows=rows, source=_ALL_BUT if sources is None else _ONLY)
    window = window_result(con.sql(sql, params=params).to_arrow_table(), limit)
    if window.ticks or until is None or until <= hi:
        return window
    rows, params = _rows(_archived(archive_dir, instruments, hi, until))
    params.update(s_token=selection["s_token"], lo=hi, hi=until)
    ((next_ts,),) = con.sql(_NEXT.format(rows=rows), params=params).fetchall()  # min(): one row
    return window._replace(next_ts=next_ts)


def _archived(
    archive_dir: Path | None, instruments: Sequence[tuple[str, int]], lo: int, hi: int
) -> list[tuple[str, list[str]]]:
    """(exchange, local archive files) for the instruments' exchanges on the days of [lo, hi)."""
    found = []
    for exchange in sorted({x for x, _ in instruments}):
        files = _archive.local_files(archive_dir, exchange, lo, hi)
        if files:
            found.append((exchange, files))
    return found
