"""The TickStore protocol and the row encoding every store shares.

A store records ticks, candles and instruments, and answers the historical queries the API and
replay need. Each backend is one class that passes ``tests/conformance/store_suite.py``.

Tick identity
-------------
Kite timestamps have one-second resolution and no sequence number, so ``(exchange_ts, token)`` is
*not* a key: two ticks in one second would collapse into one. A stored tick is keyed by
``(exchange, token, ts_exchange, ts_recv, tick_id)`` where ``tick_id`` is a signed 64-bit
BLAKE2b digest of the tick's canonical msgpack encoding (every field, ``source`` and ``ts_recv``
included). Therefore

- two different ticks in the same second differ in content (price, volume, ``ts_recv``...) and
  both survive;
- the *same* tick redelivered (the same bytes, e.g. a Kafka redelivery or a retried batch) has the
  same key and is stored once;
- a replayed tick carries ``source="replay"`` and a new ``ts_recv``, so it never collides with the
  live row it was replayed from.

``ts_recv`` sits in the key before ``tick_id`` so that ticks sharing one exchange second come back
in arrival order (replay needs cumulative volume to move forward), not in hash order.

Each row keeps the whole tick as msgpack (``payload``); a query decodes it, so a stored tick reads
back ``==`` the :class:`~tickstream.model.Tick` that was written. ``ltp`` and ``volume`` are also
plain columns for ad-hoc SQL. Decoding is most of a large query's cost (~2-4 us per tick with
depth), so the DuckDB and PostgreSQL stores also offer ``query_tick_blob`` (same arguments as
``query_ticks``; not part of the protocol, so other implementations need not have it): the page
undecoded, as one msgpack array (:class:`TickBlob`), for callers that forward msgpack or decode
elsewhere (:func:`ticks_from_blob`).

Pagination
----------
:meth:`TickStore.query_ticks` is keyset paginated: rows are ordered by
``(ts_exchange, ts_recv, tick_id)`` and the opaque cursor is the last row's key
(base64url of msgpack). Never OFFSET. Time ranges are half-open: ``start_ns <= ts < end_ns``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import AsyncIterator, Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable

import msgspec

from tickstream.model import Candle, Indicators, Instrument, Interval, Tick

__all__ = [
    "CandleRow",
    "StoreUnavailableError",
    "TickBlob",
    "TickKey",
    "TickPage",
    "TickStore",
    "candle_from_row",
    "candle_row",
    "decode_cursor",
    "encode_cursor",
    "instrument_from_payload",
    "instrument_row",
    "msgpack_array",
    "tick_rows",
    "ticks_from_blob",
    "ticks_from_payloads",
]

_tick_encoder = msgspec.msgpack.Encoder()
_ticks_decoder = msgspec.msgpack.Decoder(list[Tick])
_instrument_decoder = msgspec.msgpack.Decoder(Instrument)
_json_encoder = msgspec.json.Encoder()
_indicators_decoder = msgspec.json.Decoder(Indicators)


class StoreUnavailableError(ConnectionError):
    """The backend cannot be reached right now; the same call may succeed later (retry it)."""


class TickKey(NamedTuple):
    """Position of one tick in an instrument's ordered history (the keyset cursor)."""

    ts_exchange: int
    ts_recv: int
    tick_id: int


class TickPage(NamedTuple):
    """One page of ``query_ticks``; ``next_cursor`` is None on the last page."""

    ticks: list[Tick]
    next_cursor: str | None


class TickBlob(NamedTuple):
    """One page of ``query_tick_blob``: the ticks undecoded, as ONE msgpack array (an array
    header, then each stored tick's canonical msgpack payload in key order); ``next_cursor`` as in
    :class:`TickPage`. ``ticks_from_blob(blob)`` equals the ``query_ticks`` page's ``ticks``."""

    n: int  # ticks in the page
    blob: bytes
    next_cursor: str | None


def tick_id_of(payload: bytes) -> int:
    """Signed 64-bit BLAKE2b of a tick's msgpack (fits BIGINT in every SQL engine)."""
    return int.from_bytes(hashlib.blake2b(payload, digest_size=8).digest(), "little", signed=True)


def encode_cursor(key: TickKey) -> str:
    return base64.urlsafe_b64encode(_tick_encoder.encode(tuple(key))).decode("ascii")


def decode_cursor(cursor: str) -> TickKey:
    """Parse a cursor from :func:`encode_cursor`; ValueError for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor.encode("ascii"))
        parts = msgspec.msgpack.decode(raw, type=tuple[int, int, int])
    except (binascii.Error, UnicodeEncodeError, msgspec.DecodeError) as exc:
        raise ValueError("invalid cursor") from exc
    return TickKey(*parts)


class TickColumns(NamedTuple):
    """A batch of ticks as columns, in the order of ``TICK_COLUMNS``."""

    exchange: list[str]
    token: list[int]
    ts_exchange: list[int]
    ts_recv: list[int]
    tick_id: list[int]
    source: list[str]
    seq: list[int | None]
    ltp: list[float | None]
    volume: list[int | None]
    payload: list[bytes]


TICK_COLUMNS: tuple[str, ...] = TickColumns._fields


def tick_columns(ticks: Sequence[Tick]) -> TickColumns:
    """Column lists for a batch: the hot path of every write, so one pass per column."""
    enc = _tick_encoder.encode
    payloads = [enc(t) for t in ticks]
    blake = hashlib.blake2b
    ids = [
        int.from_bytes(blake(p, digest_size=8).digest(), "little", signed=True) for p in payloads
    ]
    return TickColumns(
        [t.exchange for t in ticks],
        [t.token for t in ticks],
        [t.ts_exchange for t in ticks],
        [t.ts_recv for t in ticks],
        ids,
        [t.source for t in ticks],
        [t.seq for t in ticks],
        [t.ltp for t in ticks],
        [t.volume for t in ticks],
        payloads,
    )


def tick_rows(ticks: Sequence[Tick]) -> list[tuple[Any, ...]]:
    """The same batch as row tuples (for COPY)."""
    return list(zip(*tick_columns(ticks), strict=True))


def msgpack_array(count: int, body: bytes | bytearray | memoryview) -> bytes:
    """``count`` concatenated msgpack values framed as one msgpack array (array32 header)."""
    return b"\xdd" + count.to_bytes(4, "big") + body


def ticks_from_blob(blob: bytes) -> list[Tick]:
    """Decode a :class:`TickBlob` ``blob`` (one msgpack array of ticks) in one call."""
    return _ticks_decoder.decode(blob)


def ticks_from_payloads(payloads: Sequence[bytes]) -> list[Tick]:
    """Decode many msgpack ticks in one call: they are framed as one msgpack array (array32
    header + the concatenated payloads), which saves a Python-level call per tick."""
    if not payloads:
        return []
    return _ticks_decoder.decode(msgpack_array(len(payloads), b"".join(payloads)))


class CandleRow(NamedTuple):
    exchange: str
    token: int
    interval: str
    start: int
    symbol: str
    open: float
    high: float
    low: float
    close: float
    volume: int
    oi: int | None
    ticks: int
    partial: bool
    incomplete: bool
    revision: int
    indicators: str | None


CANDLE_COLUMNS: tuple[str, ...] = CandleRow._fields


def candle_row(c: Candle) -> CandleRow:
    ind = None if c.indicators is None else _json_encoder.encode(c.indicators).decode()
    return CandleRow(
        c.exchange,
        c.token,
        c.interval.value,
        c.start,
        c.symbol,
        c.open,
        c.high,
        c.low,
        c.close,
        c.volume,
        c.oi,
        c.ticks,
        c.partial,
        c.incomplete,
        c.revision,
        ind,
    )


_INTERVALS = {i.value: i for i in Interval}


def candle_from_row(row: Sequence[Any]) -> Candle:
    """A :class:`CandleRow`-ordered row as a Candle (unpacked positionally: once per candle of
    every candle query, and the named tuple and ``Interval()`` call doubled this)."""
    (ex, token, interval, start, symbol, open_, high, low, close, volume, oi, ticks, partial,
     incomplete, revision, ind) = row  # fmt: skip
    return Candle(
        exchange=ex,
        token=token,
        symbol=symbol,
        interval=_INTERVALS.get(interval) or Interval(interval),
        start=start,
        open=open_,
        high=high,
        low=low,
        close=close,
        volume=volume,
        oi=oi,
        ticks=ticks,
        partial=partial,
        incomplete=incomplete,
        revision=revision,
        indicators=None if ind is None else _indicators_decoder.decode(ind),
    )


def instrument_row(i: Instrument) -> tuple[Any, ...]:
    """(exchange, token, symbol, name, instrument_type, expiry, payload)."""
    return (
        i.exchange,
        i.token,
        i.symbol,
        i.name,
        i.instrument_type,
        i.expiry,
        _tick_encoder.encode(i),
    )


def instrument_from_payload(payload: bytes) -> Instrument:
    return _instrument_decoder.decode(payload)


@runtime_checkable
class TickStore(Protocol):
    """Ticks, candles and instruments. Every write is idempotent; ranges are ``[start, end)``."""

    name: str

    async def open(self) -> None:
        """Connect and create/migrate the schema."""
        ...

    async def close(self) -> None: ...

    async def write_ticks(self, ticks: Sequence[Tick]) -> int:
        """Store a batch; returns how many rows were new (a redelivered batch returns 0)."""
        ...

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
        """One instrument's ticks in ``[start_ns, end_ns)``, ``limit`` per page, after a cursor."""
        ...

    def scan_ticks(
        self, start_ns: int, end_ns: int, *, exchange: str | None = None, batch_size: int = 50_000
    ) -> AsyncIterator[list[Tick]]:
        """Every tick in the range, ordered by (exchange, token, ts_exchange, ts_recv, tick_id)."""
        ...

    async def delete_ticks(self, start_ns: int, end_ns: int, *, exchange: str | None = None) -> int:
        """Remove a range from the hot store (after archiving it); returns rows deleted."""
        ...

    async def write_candles(self, candles: Sequence[Candle]) -> int:
        """Upsert by (exchange, token, interval, start); a higher or equal revision replaces."""
        ...

    async def query_candles(
        self, exchange: str, token: int, interval: Interval, start_ns: int, end_ns: int
    ) -> list[Candle]: ...

    async def upsert_instruments(self, instruments: Sequence[Instrument]) -> int: ...

    async def search_instruments(
        self, query: str, *, exchange: str | None = None, limit: int = 20
    ) -> list[Instrument]:
        """Case-insensitive substring of symbol or name; exact, then prefix matches first."""
        ...

    def stats(self) -> dict[str, Any]: ...
