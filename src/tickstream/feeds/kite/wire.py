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
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Any, Final

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
    DecodeResult,
    Reject,
    SymbolResolver,
    change_fields,
    check_ts_s,
    symbol_for,
)
from tickstream.model import NS_PER_SEC, Depth, DepthLevel, Mode, Tick

__all__ = [
    "HEARTBEAT",
    "SEGMENTS",
    "ClientMessage",
    "ServerText",
    "decode_frame",
    "divisor_for",
    "encode_frame",
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

SEGMENTS: Final[dict[int, str]] = {
    1: "NSE",
    2: "NFO",
    3: "CDS",
    4: "BSE",
    5: "BFO",
    6: "BCD",
    7: "MCX",
    8: "MCXSX",
    9: "INDICES",
    12: "NCO",
}
_SEGMENT_OF: Final = {name: seg for seg, name in SEGMENTS.items()}
_DIVISORS: Final[dict[int, float]] = {
    seg: 10_000_000.0 if seg == 3 else 10_000.0 if seg in (6, 12) else 100.0 for seg in SEGMENTS
}
_INDICES: Final = 9

_U16: Final = struct.Struct(">H")
_LTP: Final = struct.Struct(">Ii")
_INDEX_QUOTE: Final = struct.Struct(">I6i")
_INDEX_FULL: Final = struct.Struct(">I6iI")
_QUOTE: Final = struct.Struct(">IiIiIII4i")
_LEVEL: Final = "IiH2x"
_FULL: Final = struct.Struct(">IiIiIII4i5I" + _LEVEL * 10)
_DEPTH_AT: Final = 16  # index of the first depth value in a _FULL tuple
_EMPTY_LEVEL: Final = (0, 0, 0)


def divisor_for(segment: int) -> float:
    """Price divisor of a segment (KeyError for an unknown segment)."""
    return _DIVISORS[segment]


def instrument_token(exchange: str, token: int) -> int:
    """Kite instrument token: ``token << 8 | segment``."""
    try:
        segment = _SEGMENT_OF[exchange]
    except KeyError:
        raise ValueError(f"no Kite segment for exchange {exchange!r}") from None
    if not 0 <= token < 1 << 24:
        raise ValueError(f"exchange token {token} does not fit in 24 bits")
    return token << 8 | segment


def split_instrument_token(itok: int) -> tuple[str, int]:
    """``(exchange, exchange token)`` of a Kite instrument token (ValueError if unknown segment)."""
    try:
        return SEGMENTS[itok & 0xFF], itok >> 8
    except KeyError:
        raise ValueError(f"instrument token {itok} has unknown segment {itok & 0xFF}") from None


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


def _levels(v: tuple[int, ...], start: int, div: float) -> tuple[DepthLevel, ...]:
    return tuple(
        DepthLevel(v[k + 1] / div, v[k], v[k + 2])
        for k in range(start, start + 15, 3)
        if v[k] or v[k + 1]
    )


def _parse_quote(
    buf: bytes, off: int, ts_recv: int, resolve: SymbolResolver | None, source: str
) -> Tick | Reject:
    return _parse_equity(_QUOTE.unpack_from(buf, off), ts_recv, resolve, source)


def _parse_full(
    buf: bytes, off: int, ts_recv: int, resolve: SymbolResolver | None, source: str
) -> Tick | Reject:
    return _parse_equity(_FULL.unpack_from(buf, off), ts_recv, resolve, source)


def _parse_equity(
    v: tuple[int, ...], ts_recv: int, resolve: SymbolResolver | None, source: str
) -> Tick | Reject:
    itok, ltp, ltq, atp, volume, tbq, tsq, open_, high, low, close = v[:11]
    head = _head(itok)
    if isinstance(head, Reject):
        return head
    exchange, div = head
    full = len(v) > 11
    if min(ltp, atp, open_, high, low, close) < 0 or (full and min(v[17::3]) < 0):
        return _negative("price", itok)
    token = itok >> 8
    last, prev = ltp / div, close / div
    change, change_pct = change_fields(last, prev)
    extra: dict[str, Any] = {}
    ts_exchange = ts_recv
    if full:
        ltt, oi, oi_high, oi_low, ts = v[11:16]
        bad_ts = check_ts_s(ltt, "last_trade_time") or check_ts_s(ts, "exchange_timestamp")
        if bad_ts is not None:
            return Reject("out_of_range", f"instrument_token {itok}: {bad_ts}")
        if ts:
            ts_exchange = ts * NS_PER_SEC
        bids, asks = _levels(v, _DEPTH_AT, div), _levels(v, _DEPTH_AT + 15, div)
        extra = {
            "ts_last_trade": ltt * NS_PER_SEC if ltt else None,
            "oi": oi,
            "oi_day_high": oi_high,
            "oi_day_low": oi_low,
            "depth": Depth(bids=bids, asks=asks),
            "bid": bids[0].price if bids else None,
            "bid_qty": bids[0].qty if bids else None,
            "ask": asks[0].price if asks else None,
            "ask_qty": asks[0].qty if asks else None,
        }
    return Tick(
        exchange=exchange,
        token=token,
        symbol=symbol_for(resolve, exchange, token),
        source=source,
        ts_exchange=ts_exchange,
        ts_recv=ts_recv,
        ltp=last,
        ltq=ltq,
        atp=atp / div,
        volume=volume,
        total_buy_qty=tbq,
        total_sell_qty=tsq,
        open=open_ / div,
        high=high / div,
        low=low / div,
        close=prev,
        change=change,
        change_pct=change_pct,
        mode=Mode.FULL if full else Mode.QUOTE,
        **extra,
    )


_PARSERS: Final[dict[int, _Parser]] = {
    8: _parse_ltp,
    28: _parse_index_quote,
    32: _parse_index_full,
    44: _parse_quote,
    184: _parse_full,
}


def decode_frame(
    frame: bytes, *, ts_recv: int, resolve: SymbolResolver | None = None, source: str = "kite"
) -> DecodeResult:
    """Decode one binary frame. Never raises: undecodable packets become Rejects."""
    n = len(frame)
    if n == 1:
        return DecodeResult([], [], 0, heartbeat=True)
    if n < 2:
        return DecodeResult([], [Reject("truncated_frame", "empty frame")], 0)
    (count,) = _U16.unpack_from(frame, 0)
    ticks: list[Tick] = []
    rejects: list[Reject] = []
    pos, seen = 2, 0
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
        if parser is None:
            rejects.append(Reject("unknown_length", f"packet {seen}: length {length}"))
        else:
            out = parser(frame, pos, ts_recv, resolve, source)
            if isinstance(out, Reject):
                rejects.append(out)
            else:
                ticks.append(out)
        pos += length
    if seen == count and pos != n:
        rejects.append(Reject("bad_packet_count", f"{n - pos} bytes after {count} packets"))
    return DecodeResult(ticks, rejects, seen)


def _short_frame(count: int, seen: int, left: int) -> Reject:
    if left == 0:
        return Reject("bad_packet_count", f"frame declares {count} packets, holds {seen}")
    return Reject("truncated_frame", f"frame ends inside the length of packet {seen + 1}")


# ---------------------------------------------------------------------------------------- encode


def encode_frame(packets: Sequence[bytes]) -> bytes:
    """A frame: packet count, then each packet with its length prefix."""
    parts = [_U16.pack(len(packets))]
    for packet in packets:
        parts.append(_U16.pack(len(packet)))
        parts.append(packet)
    return b"".join(parts)


def _need(tick: Tick, names: Sequence[str]) -> list[Any]:
    values = [getattr(tick, name) for name in names]
    missing = [name for name, value in zip(names, values, strict=True) if value is None]
    if missing:
        raise ValueError(f"{tick.exchange}:{tick.token} lacks {', '.join(missing)} for this mode")
    return values


def _price(value: Any, div: float) -> int:
    return round(float(value) * div)


def _depth_values(tick: Tick, div: float) -> list[int]:
    depth = tick.depth
    if depth is None:
        raise ValueError(f"{tick.exchange}:{tick.token} lacks depth for full mode")
    out: list[int] = []
    for side in (depth.bids, depth.asks):
        if len(side) > 5:
            raise ValueError(f"{tick.exchange}:{tick.token}: Kite depth has 5 levels per side")
        for level in side:
            out += (level.qty, round(level.price * div), level.orders or 0)
        out += _EMPTY_LEVEL * (5 - len(side))
    return out


_PRICE_FIELDS: Final = ("ltp", "high", "low", "open", "close")
_QUOTE_FIELDS: Final = ("ltq", "atp", "volume", "total_buy_qty", "total_sell_qty")


def encode_packet(tick: Tick, mode: Mode) -> bytes:
    """One packet body (no length prefix) for ``tick`` in ``mode``; ValueError if it cannot be.

    Index ticks (exchange INDICES) encode as 28/32-byte packets for QUOTE/FULL. An index tick's
    ``change`` defaults to ltp - close when None. Full mode sends 0 for a missing ``oi*`` or
    ``ts_last_trade``; ``ts_exchange`` is sent in whole seconds.
    """
    itok = instrument_token(tick.exchange, tick.token)
    div = _DIVISORS[itok & 0xFF]
    try:
        if mode is Mode.LTP:
            return _LTP.pack(itok, _price(_need(tick, ("ltp",))[0], div))
        if tick.exchange == SEGMENTS[_INDICES]:
            return _encode_index(tick, mode, itok, div)
        return _encode_equity(tick, mode, itok, div)
    except struct.error as exc:
        raise ValueError(f"{tick.exchange}:{tick.token}: value out of wire range: {exc}") from None


def _encode_index(tick: Tick, mode: Mode, itok: int, div: float) -> bytes:
    ltp, high, low, open_, close = (_price(v, div) for v in _need(tick, _PRICE_FIELDS))
    change = ltp - close if tick.change is None else _price(tick.change, div)
    if mode is Mode.QUOTE:
        return _INDEX_QUOTE.pack(itok, ltp, high, low, open_, close, change)
    ts = tick.ts_exchange // NS_PER_SEC
    return _INDEX_FULL.pack(itok, ltp, high, low, open_, close, change, ts)


def _encode_equity(tick: Tick, mode: Mode, itok: int, div: float) -> bytes:
    ltp, high, low, open_, close = (_price(v, div) for v in _need(tick, _PRICE_FIELDS))
    ltq, atp, volume, tbq, tsq = _need(tick, _QUOTE_FIELDS)
    head = (itok, ltp, ltq, _price(atp, div), volume, tbq, tsq, open_, high, low, close)
    if mode is Mode.QUOTE:
        return _QUOTE.pack(*head)
    depth = _depth_values(tick, div)
    ltt = 0 if tick.ts_last_trade is None else tick.ts_last_trade // NS_PER_SEC
    tail = (ltt, tick.oi or 0, tick.oi_day_high or 0, tick.oi_day_low or 0)
    return _FULL.pack(*head, *tail, tick.ts_exchange // NS_PER_SEC, *depth)
