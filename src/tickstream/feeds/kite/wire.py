"""Zerodha KiteTicker wire codec: binary market-data frames and the JSON text messages.

Binary frames are big-endian. A frame is ``uint16 packet count`` then, per packet, ``uint16 length``
and the packet body; a 1-byte frame is a heartbeat. Packets are told apart by exact length, as in
``kiteconnect.KiteTicker._parse_binary`` (the oracle our tests compare against):

====  =====================  ==========================================================
len   kind                   layout (offset: wire field -> Tick field)
====  =====================  ==========================================================
8     LTP                    0 instrument_token -> exchange, token; 4 last_price -> ltp
28    index quote            4 ltp; 8 high; 12 low; 16 open; 20 close; 24 price change -> change
32    index full             index quote + 28 exchange timestamp (s) -> ts_exchange
44    quote                  4 ltp; 8 last qty -> ltq; 12 avg price -> atp; 16 volume;
                             20 total buy qty; 24 total sell qty; 28 open; 32 high; 36 low;
                             40 close
184   full                   quote + 44 last trade time (s) -> ts_last_trade; 48 oi;
                             52 oi day high; 56 oi day low; 60 exchange timestamp (s) ->
                             ts_exchange; 64 depth: 5 bids then 5 asks of 12 bytes each
                             (uint32 qty, int32 price, uint16 orders, 2 padding)
====  =====================  ==========================================================

``instrument_token = exchange_token << 8 | segment``: the Tick's ``exchange`` comes from the
segment (:data:`SEGMENTS`, ``INDICES`` for 9) and ``token`` is the exchange token. Prices are one
division of the wire integer by the segment's divisor (CDS 1e7, BCD and NCO 1e4, else 100), exactly
as the SDK does. Quantities and timestamps are unsigned (as the SDK reads them); prices are signed,
so a negative price is detected and rejected.

Canonical choices: ``mode`` follows the packet length; ``ts_exchange`` is the packet's exchange
timestamp where it has one, else ``ts_recv`` (also when the wire sends 0); a last-trade time of 0
is None; ``bid``/``ask`` come from depth level 0; empty depth levels (price and quantity both 0)
are dropped; ``change``/``change_pct`` are computed from ltp and close (None when close is 0),
except that an index packet's ``change`` is the change the exchange sent. Index ticks carry no
volume or quantities (None).

A frame of well-formed full and quote packets is decoded by the C fast path
(:mod:`tickstream.feeds.fastpath`) into the same Ticks; this module stays the definition, and
decodes everything the fast path hands back (any frame with another length, a defect or a reject).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, Final

from msgspec.structs import replace

from tickstream.feeds import fastpath
from tickstream.feeds.kite._wire_encode import (
    FULL_BATCH_FIELDS,
    encode_frame,
    encode_full_batch,
    encode_packet,
)
from tickstream.feeds.kite._wire_layout import (
    _DIVISORS,
    _FULL,
    _INDEX_FULL,
    _INDEX_QUOTE,
    _LTP,
    _QUOTE,
    _U16,
    SEGMENTS,
    divisor_for,
    instrument_token,
    split_instrument_token,
)
from tickstream.feeds.kite._wire_text import (
    ClientMessage,
    ServerText,
    encode_mode,
    encode_server_error,
    encode_server_message,
    encode_subscribe,
    encode_unsubscribe,
    parse_client_message,
    parse_server_text,
)
from tickstream.feeds.wire_common import (
    TS_MAX_S,
    TS_MIN_S,
    DecodeResult,
    Reject,
    SymbolResolver,
    change_fields,
    check_ts_s,
    symbol_for,
)
from tickstream.model import NS_PER_SEC, Depth, DepthLevel, Mode, Tick

__all__ = [
    "FULL_BATCH_FIELDS",
    "HEARTBEAT",
    "SEGMENTS",
    "ClientMessage",
    "ServerText",
    "decode_frame",
    "divisor_for",
    "encode_frame",
    "encode_full_batch",
    "encode_mode",
    "encode_packet",
    "encode_server_error",
    "encode_server_message",
    "encode_subscribe",
    "encode_unsubscribe",
    "instrument_token",
    "parse_client_message",
    "parse_server_text",
    "split_instrument_token",
]

HEARTBEAT: Final = b"\x00"

# The native fast path for frames of well-formed full and quote packets (None: not built, or
# switched off by ``fastpath.disabled()``).
_native_frame: fastpath.KiteFrame | None = fastpath.kite_frame

# A packet followed by the next packet's length prefix: a frame of only full (or only quote)
# packets, read from its first packet body on (plus one appended prefix), is a run of these.
_FULL_RECORD: Final = struct.Struct(_FULL.format + "H")
_QUOTE_RECORD: Final = struct.Struct(_QUOTE.format + "H")


# ---------------------------------------------------------------------------------------- decode

_Parser = Callable[[bytes, int, int, SymbolResolver | None, str], Tick | Reject]


def _head(itok: int) -> tuple[str, float] | Reject:
    seg = itok & 0xFF
    div = _DIVISORS.get(seg)
    if div is None:
        return Reject("bad_exchange", f"instrument_token {itok}: unknown segment {seg}")
    return SEGMENTS[seg], div


def _negative(name: str, itok: int) -> Reject:
    return Reject("out_of_range", f"instrument_token {itok}: negative {name}")


def _parse_ltp(
    buf: bytes, off: int, ts_recv: int, resolve: SymbolResolver | None, source: str
) -> Tick | Reject:
    itok, ltp = _LTP.unpack_from(buf, off)
    head = _head(itok)
    if isinstance(head, Reject):
        return head
    exchange, div = head
    if ltp < 0:
        return _negative("price", itok)
    token = itok >> 8
    return Tick(
        exchange=exchange,
        token=token,
        symbol=symbol_for(resolve, exchange, token),
        source=source,
        ts_exchange=ts_recv,
        ts_recv=ts_recv,
        ltp=ltp / div,
        mode=Mode.LTP,
    )


def _parse_index(
    buf: bytes, off: int, ts_recv: int, resolve: SymbolResolver | None, source: str, full: bool
) -> Tick | Reject:
    if full:
        itok, ltp, high, low, open_, close, change, ts = _INDEX_FULL.unpack_from(buf, off)
    else:
        itok, ltp, high, low, open_, close, change = _INDEX_QUOTE.unpack_from(buf, off)
        ts = 0
    head = _head(itok)
    if isinstance(head, Reject):
        return head
    exchange, div = head
    if min(ltp, high, low, open_, close) < 0:
        return _negative("price", itok)
    bad_ts = check_ts_s(ts, "exchange_timestamp")
    if bad_ts is not None:
        return Reject("out_of_range", f"instrument_token {itok}: {bad_ts}")
    token = itok >> 8
    last, prev = ltp / div, close / div
    return Tick(
        exchange=exchange,
        token=token,
        symbol=symbol_for(resolve, exchange, token),
        source=source,
        ts_exchange=ts * NS_PER_SEC if ts else ts_recv,
        ts_recv=ts_recv,
        ltp=last,
        open=open_ / div,
        high=high / div,
        low=low / div,
        close=prev,
        change=change / div,
        change_pct=change_fields(last, prev)[1],
        mode=Mode.FULL if full else Mode.QUOTE,
    )


def _parse_index_quote(
    buf: bytes, off: int, ts_recv: int, resolve: SymbolResolver | None, source: str
) -> Tick | Reject:
    return _parse_index(buf, off, ts_recv, resolve, source, False)


def _parse_index_full(
    buf: bytes, off: int, ts_recv: int, resolve: SymbolResolver | None, source: str
) -> Tick | Reject:
    return _parse_index(buf, off, ts_recv, resolve, source, True)


def _side(v: tuple[Any, ...], k: int, div: float) -> tuple[DepthLevel, ...]:
    """Five levels from ``v[k:k+15]`` (qty, price, orders); empty levels dropped."""
    lv = DepthLevel
    q0, p0, o0, q1, p1, o1, q2, p2, o2, q3, p3, o3, q4, p4, o4 = v[k : k + 15]
    if q0 and q1 and q2 and q3 and q4:  # all five present: the common case
        return (
            lv(p0 / div, q0, o0), lv(p1 / div, q1, o1), lv(p2 / div, q2, o2),
            lv(p3 / div, q3, o3), lv(p4 / div, q4, o4),
        )  # fmt: skip
    return tuple(
        lv(v[j + 1] / div, v[j], v[j + 2]) for j in range(k, k + 15, 3) if v[j] or v[j + 1]
    )


def _bad_ts(itok: int, ltt: int, ts: int) -> Reject | None:
    bad = check_ts_s(ltt, "last_trade_time") or check_ts_s(ts, "exchange_timestamp")
    return None if bad is None else Reject("out_of_range", f"instrument_token {itok}: {bad}")


def _parse_quote(
    buf: bytes, off: int, ts_recv: int, resolve: SymbolResolver | None, source: str
) -> Tick | Reject:
    return _quote_values(_QUOTE.unpack_from(buf, off), ts_recv, resolve, source)


def _quote_values(
    v: tuple[Any, ...], ts_recv: int, resolve: SymbolResolver | None, source: str
) -> Tick | Reject:
    itok, ltp, ltq, atp, volume, tbq, tsq, open_, high, low, close = v[:11]
    head = _head(itok)
    if isinstance(head, Reject):
        return head
    exchange, div = head
    if (ltp | atp | open_ | high | low | close) < 0:
        return _negative("price", itok)
    token = itok >> 8
    last, prev = ltp / div, close / div
    change, change_pct = change_fields(last, prev)
    tick = Tick(
        exchange=exchange, token=token, symbol=symbol_for(resolve, exchange, token),
        source=source, ts_exchange=ts_recv, ts_recv=ts_recv, ltp=last, ltq=ltq, atp=atp / div,
        volume=volume, total_buy_qty=tbq, total_sell_qty=tsq, open=open_ / div,
        high=high / div, low=low / div,
    )  # fmt: skip
    return replace(tick, close=prev, change=change, change_pct=change_pct, mode=Mode.QUOTE)


def _parse_full(
    buf: bytes, off: int, ts_recv: int, resolve: SymbolResolver | None, source: str
) -> Tick | Reject:
    return _full_values(_FULL.unpack_from(buf, off), ts_recv, resolve, source)


class _NoLevel:
    """Stands in for depth level 0 when a side is empty: its price and quantity are None."""

    price = None
    qty = None


def _full_values(
    v: tuple[Any, ...], ts_recv: int, resolve: SymbolResolver | None, source: str
) -> Tick | Reject:
    itok, ltp, ltq, atp, vol, tbq, tsq, open_, high, low, close, ltt, oi, oih, oil, ts = v[:16]
    div = _DIVISORS.get(itok & 0xFF)
    if div is None:
        return Reject("bad_exchange", f"instrument_token {itok}: unknown segment {itok & 0xFF}")
    if (ltp | atp | open_ | high | low | close) < 0 or min(v[17::3]) < 0:
        return _negative("price", itok)
    if (ltt and not TS_MIN_S <= ltt < TS_MAX_S) or (ts and not TS_MIN_S <= ts < TS_MAX_S):
        return _bad_ts(itok, ltt, ts) or _negative("timestamp", itok)
    exchange, token = SEGMENTS[itok & 0xFF], itok >> 8
    symbol = resolve(exchange, token) if resolve is not None else None
    last, prev = ltp / div, close / div
    change = last - prev if prev else None
    bids, asks = _side(v, 16, div), _side(v, 31, div)
    b0 = bids[0] if bids else _NoLevel
    a0 = asks[0] if asks else _NoLevel
    # Two calls of <= 15 keywords each: CPython compiles a call with more keywords into a slower
    # dict-based call (about 3x the cost of building the Tick; see bench/decode.py).
    tick = Tick(
        exchange=exchange, token=token, symbol=str(token) if symbol is None else symbol,
        source=source, ts_exchange=ts * NS_PER_SEC if ts else ts_recv, ts_recv=ts_recv,
        ltp=last, ltq=ltq, atp=atp / div, volume=vol, total_buy_qty=tbq, total_sell_qty=tsq,
        open=open_ / div, high=high / div, low=low / div,
    )  # fmt: skip
    return replace(
        tick, close=prev, change=change, change_pct=None if change is None else change * 100 / prev,
        oi=oi, oi_day_high=oih, oi_day_low=oil, ts_last_trade=ltt * NS_PER_SEC if ltt else None,
        bid=b0.price, bid_qty=b0.qty, ask=a0.price, ask_qty=a0.qty,
        depth=Depth(bids=bids, asks=asks), mode=Mode.FULL,
    )  # fmt: skip


_UNIFORM: Final[dict[int, tuple[struct.Struct, Callable[..., Tick | Reject]]]] = {
    _FULL.size: (_FULL_RECORD, _full_values),
    _QUOTE.size: (_QUOTE_RECORD, _quote_values),
}
_PARSERS: Final[dict[int, _Parser]] = {
    8: _parse_ltp,
    28: _parse_index_quote,
    32: _parse_index_full,
    44: _parse_quote,
    184: _parse_full,
}


def decode_frame(
    frame: bytes,
    *,
    ts_recv: int,
    resolve: SymbolResolver | None = None,
    source: str = "kite",
    ts_exchange_default: int | None = None,
) -> DecodeResult:
    """Decode one binary frame. Never raises: undecodable packets become Rejects.

    A frame of only full (or only quote) packets takes a fast path (one C-level unpack loop);
    any other frame is walked packet by packet, dispatching on each packet's exact length.
    Packets without an exchange timestamp (LTP, quote, index quote) get ``ts_exchange_default``
    when given (the feed's exchange clock: a simulator's session clock), else ``ts_recv``.
    """
    result = _decode_frame(frame, ts_recv, resolve, source)
    if ts_exchange_default is not None and ts_exchange_default != ts_recv and result.ticks:
        result.ticks = [
            replace(t, ts_exchange=ts_exchange_default) if t.ts_exchange == ts_recv else t
            for t in result.ticks
        ]
    return result


def _decode_frame(
    frame: bytes, ts_recv: int, resolve: SymbolResolver | None, source: str
) -> DecodeResult:
    n = len(frame)
    if n == 1:
        return DecodeResult([], [], 0, heartbeat=True)
    if n < 2:
        return DecodeResult([], [Reject("truncated_frame", "empty frame")], 0)
    (count,) = _U16.unpack_from(frame, 0)
    if _native_frame is not None:  # a frame of well-formed full/quote packets, decoded in C
        native = _native_frame(frame, ts_recv, resolve, source)
        if native is not None:
            return DecodeResult(native, [], count)
    uniform = _uniform(frame, count, ts_recv, resolve, source) if count > 1 else None
    if uniform is not None:
        return uniform
    return _walk(frame, count, ts_recv, resolve, source)


def _walk(
    frame: bytes, count: int, ts_recv: int, resolve: SymbolResolver | None, source: str
) -> DecodeResult:
    ticks: list[Tick] = []
    rejects: list[Reject] = []
    n, pos, seen = len(frame), 2, 0
    while seen < count:
        if pos + 2 > n:
            rejects.append(_short_frame(count, seen, n - pos))
            break
        (length,) = _U16.unpack_from(frame, pos)
        pos += 2
        seen += 1
        if pos + length > n:
            rejects.append(
                Reject("truncated_packet", f"packet {seen}: length {length} > {n - pos} left")
            )
            pos = n
            break
        parser = _PARSERS.get(length)
        out = (
            Reject("unknown_length", f"packet {seen}: length {length}")
            if parser is None
            else parser(frame, pos, ts_recv, resolve, source)
        )
        if isinstance(out, Reject):
            rejects.append(out)
        else:
            ticks.append(out)
        pos += length
    if seen == count and pos != n:
        rejects.append(Reject("bad_packet_count", f"{n - pos} bytes after {count} packets"))
    return DecodeResult(ticks, rejects, seen)


def _uniform(
    frame: bytes, count: int, ts_recv: int, resolve: SymbolResolver | None, source: str
) -> DecodeResult | None:
    """Fast path for a frame of only full or only quote packets (one C-level unpack loop)."""
    (length,) = _U16.unpack_from(frame, 2) if len(frame) >= 4 else (0,)
    uniform = _UNIFORM.get(length)
    if uniform is None:
        return None
    record, parse = uniform
    if len(frame) != 2 + count * record.size:
        return None
    records = list(record.iter_unpack(frame[4:] + frame[2:4]))
    if any(v[-1] != length for v in records):
        return None
    ticks: list[Tick] = []
    rejects: list[Reject] = []
    for v in records:
        out = parse(v, ts_recv, resolve, source)
        if isinstance(out, Reject):
            rejects.append(out)
        else:
            ticks.append(out)
    return DecodeResult(ticks, rejects, count)


def _short_frame(count: int, seen: int, left: int) -> Reject:
    if left == 0:
        return Reject("bad_packet_count", f"frame declares {count} packets, holds {seen}")
    return Reject("truncated_frame", f"frame ends inside the length of packet {seen + 1}")
