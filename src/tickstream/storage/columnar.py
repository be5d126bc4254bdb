"""Vectorised row encoding for tick batches: the write hot path of the stores.

:func:`tickstream.storage.base.tick_columns` encodes and hashes one tick at a time (a Python
call, a ``bytes`` object and an ``int`` per tick and column). Here a batch is encoded with one
msgpack call (a list of ticks is the array header followed by each tick's own encoding, byte for
byte), split into per-tick :class:`msgspec.Raw` views without copying, hashed with BLAKE2b through
C-level ``map`` calls, and the digests are read as one ``int64`` array. The result is exactly what
``tick_columns`` gives (same payload bytes, same ``tick_id``), as Arrow arrays or COPY records.

Pure functions: no I/O.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from typing import Any, Final, NamedTuple

import msgspec
import numpy as np
import numpy.typing as npt
import pyarrow as pa

from tickstream.model import Tick
from tickstream.storage.base import CandleRow

__all__ = [
    "CANDLE_ARROW_SCHEMA",
    "TICK_ARROW_SCHEMA",
    "EncodedTicks",
    "candle_table",
    "encode_ticks",
    "first_of_each_key",
    "key_order",
    "payload_blob",
    "tick_records",
    "tick_table",
    "unique_tick_records",
]

_encode = msgspec.msgpack.Encoder().encode
_split = msgspec.msgpack.Decoder(list[msgspec.Raw]).decode
_blake8 = functools.partial(hashlib.blake2b, digest_size=8)
_digest = hashlib.blake2b.digest

TICK_ARROW_SCHEMA = pa.schema(
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
        ("payload", pa.large_binary()),
    ]
)
_I, _F, _S, _B = pa.int64(), pa.float64(), pa.string(), pa.bool_()
CANDLE_ARROW_SCHEMA = pa.schema(  # CandleRow's fields, in order
    list(zip(CandleRow._fields, (_S, _I, _S, _I, _S, _F, _F, _F, _F, _I, _I, _I, _B, _B, _I, _S),
             strict=True))
)  # fmt: skip


class EncodedTicks(NamedTuple):
    """A batch's msgpack payloads (views into one buffer) and their ``tick_id`` digests."""

    blob: bytes  # the whole batch as one msgpack array
    payloads: list[msgspec.Raw]  # tick i's canonical msgpack, a view into ``blob``
    tick_ids: npt.NDArray[np.int64]  # signed little-endian BLAKE2b-64 of each payload


def encode_ticks(ticks: Sequence[Tick]) -> EncodedTicks:
    """Encode and hash a batch; ``payloads[i]`` is byte-identical to ``msgpack.encode(ticks[i])``
    and ``tick_ids[i] == tick_id_of(that)``."""
    blob = _encode(ticks if isinstance(ticks, list) else list(ticks))
    payloads = _split(blob)
    digests = b"".join(map(_digest, map(_blake8, payloads)))
    return EncodedTicks(blob, payloads, np.frombuffer(digests, dtype="<i8").astype(np.int64))


def _payload_array(enc: EncodedTicks) -> pa.Array:
    """The payloads as an Arrow ``large_binary`` array over ``blob`` (no per-tick copy)."""
    n = len(enc.payloads)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, enc.payloads), dtype=np.int64, count=n), out=offsets[1:])
    header = len(enc.blob) - int(offsets[-1])  # the msgpack array header before tick 0
    data = pa.py_buffer(memoryview(enc.blob)[header:])
    return pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), n, [None, pa.py_buffer(offsets), data]
    )


def tick_table(ticks: Sequence[Tick], enc: EncodedTicks | None = None) -> pa.Table:
    """The batch as an Arrow table with the columns (and values) of ``tick_columns``.

    The arrays are built from buffers, not ``pa.array(list)``: that call imports pandas when it
    is installed (to test for pandas objects), ~45 MB of RSS in a process that never uses it.
    """
    enc = encode_ticks(ticks) if enc is None else enc
    n = len(ticks)
    arrays = [
        _strings([t.exchange for t in ticks], n),
        _int64([t.token for t in ticks], n),
        _int64([t.ts_exchange for t in ticks], n),
        _int64([t.ts_recv for t in ticks], n),
        pa.Array.from_buffers(pa.int64(), n, [None, pa.py_buffer(enc.tick_ids)]),
        _strings([t.source for t in ticks], n),
        _int64([t.seq for t in ticks], n),
        _float64([t.ltp for t in ticks], n),
        _int64([t.volume for t in ticks], n),
        _payload_array(enc),
    ]
    return pa.Table.from_arrays(arrays, schema=TICK_ARROW_SCHEMA)


def candle_table(rows: Sequence[CandleRow]) -> pa.Table:
    """Candle rows as an Arrow table in ``CANDLE_COLUMNS`` order (built without pandas)."""
    n = len(rows)
    cols = list(zip(*rows, strict=True)) if rows else [()] * len(CANDLE_ARROW_SCHEMA)
    arrays = [_BUILDERS[f.type](list(c), n) for f, c in zip(CANDLE_ARROW_SCHEMA, cols, strict=True)]
    return pa.Table.from_arrays(arrays, schema=CANDLE_ARROW_SCHEMA)


def _validity(values: list[Any], n: int, fill: Any = 0) -> tuple[pa.Buffer | None, list[Any]]:
    """(validity bitmap or None when nothing is null, the values with nulls replaced by fill)."""
    if None not in values:
        return None, values
    if values.count(None) == n:  # a column the source never fills (Kite has no seq)
        return pa.py_buffer(bytes((n + 7) // 8)), [fill] * n
    objects = np.array(values, dtype=object)
    valid = objects != None  # noqa: E711  (elementwise: numpy compares each object with None)
    objects[~valid] = fill
    return pa.py_buffer(np.packbits(valid.astype(np.bool_), bitorder="little")), objects.tolist()


def _int64(values: list[Any], n: int) -> pa.Array:
    if values and values[0] is not None:
        try:  # the usual case, no nulls: one C-level conversion
            return _from_numpy(pa.int64(), None, np.array(values, dtype=np.int64))
        except TypeError:  # a None further on
            pass
    bitmap, filled = _validity(values, n)
    return _from_numpy(pa.int64(), bitmap, np.array(filled, dtype=np.int64))


def _float64(values: list[Any], n: int) -> pa.Array:
    data = np.array(values, dtype=np.float64)  # None becomes NaN here, so NaN is checked exactly
    if not np.isnan(data).any():
        return _from_numpy(pa.float64(), None, data)
    bitmap, filled = _validity(values, n)
    return _from_numpy(pa.float64(), bitmap, np.array(filled, dtype=np.float64))


def _from_numpy(type_: pa.DataType, bitmap: pa.Buffer | None, data: npt.NDArray[Any]) -> pa.Array:
    return pa.Array.from_buffers(type_, len(data), [bitmap, pa.py_buffer(data)])


def _bools(values: list[Any], n: int) -> pa.Array:
    bitmap, filled = _validity(values, n, False)
    bits = np.packbits(np.array(filled, dtype=np.bool_), bitorder="little")
    return pa.Array.from_buffers(pa.bool_(), n, [bitmap, pa.py_buffer(bits)])


def _strings(values: list[Any], n: int) -> pa.Array:
    """A ``string`` array, dictionary-built: one small dictionary, an int32 code per row."""
    bitmap, filled = _validity(values, n, "")
    words = list(dict.fromkeys(filled))
    index = {w: i for i, w in enumerate(words)}
    codes = np.array(list(map(index.__getitem__, filled)), dtype=np.int32)
    utf8 = [w.encode() for w in words]
    offsets = np.zeros(len(words) + 1, dtype=np.int32)
    np.cumsum(np.array([len(b) for b in utf8], dtype=np.int32), out=offsets[1:])
    dictionary = pa.Array.from_buffers(
        pa.string(), len(words), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(utf8))]
    )
    indices = pa.Array.from_buffers(pa.int32(), n, [bitmap, pa.py_buffer(codes)])
    return pa.DictionaryArray.from_arrays(indices, dictionary).dictionary_decode()


_BUILDERS: Final = {_I: _int64, _F: _float64, _S: _strings, _B: _bools}  # Arrow type -> builder


def tick_records(ticks: Sequence[Tick]) -> list[tuple[Any, ...]]:
    """COPY records in ``TICK_COLUMNS`` order, equal to ``tick_rows`` (payloads as ``bytes``:
    asyncpg encodes ``bytes`` faster than other buffers)."""
    return list(zip(*_record_columns(ticks, encode_ticks(ticks)), strict=True))


def unique_tick_records(ticks: Sequence[Tick]) -> list[tuple[Any, ...]]:
    """``tick_records`` with only the first row of each key (a batch's repeats dropped), in key
    order ``(exchange, token, ts_exchange, ts_recv, tick_id)``: writers that insert rows in one
    global order cannot deadlock on each other's unique-index entries."""
    enc = encode_ticks(ticks)
    cols = _record_columns(ticks, enc)
    order = _lexsort(cols[0], cols[1], cols[2], cols[3], enc.tick_ids)
    keep = first_of_each_key(ticks, enc.tick_ids)
    if keep is not None:
        order = order[np.isin(order, np.asarray(keep, dtype=np.int64))]
    records = list(zip(*cols, strict=True))
    return [records[i] for i in order.tolist()]


def key_order(ticks: Sequence[Tick], tick_ids: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Indexes that sort the batch by ``(exchange, token, ts_exchange, ts_recv, tick_id)``,
    stable (repeats of a key keep batch order)."""
    return _lexsort(
        [t.exchange for t in ticks],
        [t.token for t in ticks],
        [t.ts_exchange for t in ticks],
        [t.ts_recv for t in ticks],
        tick_ids,
    )


def _lexsort(
    exchange: list[str],
    token: list[int],
    ts_exchange: list[int],
    ts_recv: list[int],
    tick_id: npt.NDArray[np.int64],
) -> npt.NDArray[np.int64]:
    rank = {e: i for i, e in enumerate(sorted(set(exchange)))}
    columns = (  # np.lexsort: the last column is the primary key
        tick_id,
        np.array(ts_recv, dtype=np.int64),
        np.array(ts_exchange, dtype=np.int64),
        np.array(token, dtype=np.int64),
        np.array([rank[e] for e in exchange], dtype=np.int64),
    )
    return np.lexsort(columns).astype(np.int64)


def _record_columns(ticks: Sequence[Tick], enc: EncodedTicks) -> tuple[list[Any], ...]:
    return (
        [t.exchange for t in ticks],
        [t.token for t in ticks],
        [t.ts_exchange for t in ticks],
        [t.ts_recv for t in ticks],
        enc.tick_ids.tolist(),
        [t.source for t in ticks],
        [t.seq for t in ticks],
        [t.ltp for t in ticks],
        [t.volume for t in ticks],
        list(map(bytes, enc.payloads)),
    )


def first_of_each_key(ticks: Sequence[Tick], tick_ids: npt.NDArray[np.int64]) -> list[int] | None:
    """Indexes of the first tick of each stored key ``(exchange, token, ts_exchange, ts_recv,
    tick_id)`` in batch order, or None when every key is already distinct (the usual case)."""
    ordered = np.sort(tick_ids)
    if not bool((ordered[1:] == ordered[:-1]).any()):
        return None
    first: dict[tuple[str, int, int, int, int], int] = {}
    for i, (t, tid) in enumerate(zip(ticks, tick_ids.tolist(), strict=True)):
        first.setdefault((t.exchange, t.token, t.ts_exchange, t.ts_recv, tid), i)
    return sorted(first.values())


def payload_blob(payloads: pa.ChunkedArray | pa.Array) -> bytes:
    """The values of an Arrow binary column concatenated (one copy, no per-row objects)."""
    chunks = payloads.chunks if isinstance(payloads, pa.ChunkedArray) else [payloads]
    pieces: list[bytes] = []
    for arr in chunks:
        if len(arr) == 0:
            continue
        if arr.null_count:
            raise ValueError("payload column has nulls")
        width = np.int64 if pa.types.is_large_binary(arr.type) else np.int32
        offsets = np.frombuffer(arr.buffers()[1], dtype=width)
        lo, hi = int(offsets[arr.offset]), int(offsets[arr.offset + len(arr)])
        pieces.append(arr.buffers()[2][lo:hi].to_pybytes())
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)
