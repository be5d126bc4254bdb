"""Angel One SmartWebSocketV2 wire codec: binary market-data packets and the JSON text messages.

One binary message is one little-endian packet, told apart by its mode byte (and checked against
that mode's exact size). Offsets as read by ``SmartApi.smartWebSocketV2._parse_binary_data``:

=====  ======================================================================================
mode   layout (offset: wire field -> Tick field)
=====  ======================================================================================
all    0 subscription_mode u8 -> mode; 1 exchange_type u8 -> exchange; 2 token char[25],
       NUL-terminated -> token, symbol; 27 sequence_number i64 -> seq;
       35 exchange_timestamp i64 ms -> ts_exchange; 43 last_traded_price i64 -> ltp
1 LTP  51 bytes
2 QUOTE  123 bytes: + 51 last_traded_quantity -> ltq; 59 average_traded_price -> atp;
       67 volume_trade_for_the_day -> volume; 75 total_buy_quantity f64 -> total_buy_qty;
       83 total_sell_quantity f64 -> total_sell_qty; 91 open; 99 high; 107 low; 115 close
3 SNAP_QUOTE  379 bytes: + 123 last_traded_timestamp (s) -> ts_last_trade; 131 open_interest
       -> oi; 139 open_interest_change_percentage (not in Tick); 147 best five: 10 x 20 bytes
       (u16 flag, i64 qty, i64 price, u16 orders): flag 1 -> depth.bids, flag 0 -> depth.asks;
       347 upper_circuit; 355 lower_circuit; 363 high_52w; 371 low_52w
4 DEPTH  443 bytes (20-level depth, NSE_CM): 35 timestamp ms -> ts_exchange; 43 twenty bids,
       then 243 twenty asks of 10 bytes (i32 qty, i32 price, i16 orders). No LTP (ltp None).
=====  ======================================================================================

Sources and decisions:

* The DEPTH (mode 4) layout is the one the official SDK parses
  (``_parse_depth_20_buy_and_sell_data``); no other authoritative public description was found.
  The SDK discards bytes 27..35 (it pops the sequence number), so ``seq`` is None for DEPTH.
* ``last_traded_timestamp`` is taken as epoch seconds and the exchange timestamp as epoch
  milliseconds (best-sourced reading of Angel's WebSocket 2.0 documentation; the SDK passes both
  through unconverted).
* Prices are in paise: divided once by 100, or by 1e7 for currency derivatives (exchange type 13,
  per Angel's documentation; the SDK divides nothing).
* Best-five sides: the real feed marks buy levels with flag 1 and sell levels with 0. The SDK's
  helper ``_parse_best_5_buy_and_sell_data`` files them crosswise (flag 0 under "buy"), and its
  caller swaps the two lists back, so smartapi-python 1.5.5's *published* ``best_5_buy_data`` holds
  the flag-1 levels. We decode by flag directly; any other flag value is rejected.
* Angel index tokens (99926000 NIFTY, 99926009 BANKNIFTY, 99919000 SENSEX: tokens >= 99,900,000
  on nse_cm/bse_cm) get exchange ``INDICES``; everything else gets the exchange of its type
  (:data:`EXCHANGE_TYPES`).
* ``ts_exchange`` falls back to ``ts_recv`` when the wire sends 0; a last-trade time of 0 is None;
  empty depth levels (price and quantity 0) are dropped; ``bid``/``ask`` come from depth level 0;
  ``change``/``change_pct`` are computed from ltp and close (None when close is 0).

A well-formed SNAP_QUOTE packet is decoded by the C fast path (:mod:`tickstream.feeds.fastpath`)
into the same Tick; this module stays the definition and decodes whatever the fast path hands back.
"""

from __future__ import annotations

import functools
import math
from typing import Any

from msgspec.structs import replace

from tickstream.feeds import fastpath
from tickstream.feeds.angelone import _wire_text
from tickstream.feeds.angelone._wire_encode import encode_packet
from tickstream.feeds.angelone._wire_layout import (
    _BEST5_AT,
    _DEPTH,
    _DEPTH_AT,
    _DIVISORS,
    _FLAGS,
    _INDEX_TOKEN_MIN,
    _INDEX_TYPES,
    _LTP,
    _QUOTE,
    _SIZE_OF_MODE,
    _SNAP,
    EXCHANGE_TYPES,
    PACKET_SIZES,
    exchange_type_for,
)
from tickstream.feeds.angelone._wire_text import (
    PING,
    PONG,
    AngelMode,
    ClientRequest,
    TokenGroup,
    encode_error,
    encode_request,
)
from tickstream.feeds.wire_common import (
    DecodeResult,
    Reject,
    SymbolResolver,
    check_ts_s,
    symbol_for,
)
from tickstream.model import Depth, DepthLevel, Mode, Tick

__all__ = [
    "EXCHANGE_TYPES",
    "PACKET_SIZES",
    "PING",
    "PONG",
    "AngelMode",
    "ClientRequest",
    "TokenGroup",
    "decode_packet",
    "encode_error",
    "encode_packet",
    "encode_request",
    "exchange_type_for",
    "parse_client_request",
]


# The native fast path for well-formed SNAP_QUOTE packets (None: not built, or switched off by
# ``fastpath.disabled()``).
_native_snap: fastpath.AngelSnapQuote | None = fastpath.angel_snap_quote


def parse_client_request(text: str | bytes) -> ClientRequest:
    """Parse a subscribe/unsubscribe request; ValueError with the reason otherwise."""
    return _wire_text.parse_client_request(text, EXCHANGE_TYPES)


# ---------------------------------------------------------------------------------------- decode


def decode_packet(
    data: bytes, *, ts_recv: int, resolve: SymbolResolver | None = None, source: str = "angelone"
) -> DecodeResult:
    """Decode one binary message. Never raises: an undecodable packet becomes a Reject."""
    if _native_snap is not None and len(data) == _SNAP.size:  # SNAP_QUOTE, well-formed: in C
        native = _native_snap(data, ts_recv, resolve, source)
        if native is not None:
            return DecodeResult([native], [], 1)
    out = _decode(data, ts_recv, resolve, source)
    if isinstance(out, Reject):
        return DecodeResult([], [out], 1)
    return DecodeResult([out], [], 1)


def _decode(
    data: bytes, ts_recv: int, resolve: SymbolResolver | None, source: str
) -> Tick | Reject:
    n = len(data)
    if n < 51:
        return Reject("truncated_packet", f"{n} bytes, the smallest packet has 51")
    mode_byte = data[0]
    size = _SIZE_OF_MODE.get(mode_byte)
    if size is None:
        return Reject("unknown_mode", f"subscription_mode {mode_byte}")
    if n != size:
        reason = "truncated_packet" if n < size else "unknown_length"
        return Reject(reason, f"mode {mode_byte} packet of {n} bytes, expected {size}")
    if mode_byte == AngelMode.SNAP_QUOTE:
        return _snap(_SNAP.unpack_from(data), ts_recv, resolve, source)
    if mode_byte == AngelMode.DEPTH:
        return _depth20(_DEPTH.unpack_from(data), ts_recv, resolve, source)
    layout = _QUOTE if mode_byte == AngelMode.QUOTE else _LTP
    return _quote(layout.unpack_from(data), ts_recv, resolve, source)


@functools.lru_cache(maxsize=8192)
def _ident(et: int, raw: bytes) -> tuple[str, int, float] | Reject:
    """``(exchange, token, divisor)`` of an exchange type and raw token field (memoised)."""
    div = _DIVISORS.get(et)
    if div is None:
        return Reject("bad_exchange", f"exchange_type {et}")
    text = raw.split(b"\x00", 1)[0]
    if not text.isdigit():
        return Reject("bad_token", f"token {text[:25]!r}")
    token = int(text)
    if token >= _INDEX_TOKEN_MIN and et in _INDEX_TYPES:
        return "INDICES", token, div
    return EXCHANGE_TYPES[et], token, div


def _ts_ns(ts_ms: int, ts_recv: int) -> int | Reject:
    if ts_ms == 0:
        return ts_recv
    bad = check_ts_s(ts_ms // 1000, "exchange_timestamp")
    if bad is not None:
        return Reject("out_of_range", bad)
    return ts_ms * 1_000_000


def _quantity(value: float) -> int | None:
    if not math.isfinite(value) or value < 0 or value != int(value):
        return None
    return int(value)


def _quote(
    v: tuple[Any, ...], ts_recv: int, resolve: SymbolResolver | None, source: str
) -> Tick | Reject:
    ident = _ident(v[1], v[2])
    if isinstance(ident, Reject):
        return ident
    exchange, token, div = ident
    ts = _ts_ns(v[4], ts_recv)
    if isinstance(ts, Reject):
        return ts
    ltp: int = v[5]
    if len(v) == 6:
        if ltp < 0:
            return Reject("out_of_range", f"token {token}: negative price")
        return Tick(
            exchange=exchange, token=token, symbol=symbol_for(resolve, exchange, token),
            source=source, ts_exchange=ts, ts_recv=ts_recv, seq=v[3], ltp=ltp / div,
            mode=Mode.LTP,
        )  # fmt: skip
    return _quote_tick(v, exchange, token, div, ts, ts_recv, resolve, source, Mode.QUOTE)


def _quote_tick(
    v: tuple[Any, ...], exchange: str, token: int, div: float, ts: int, ts_recv: int,
    resolve: SymbolResolver | None, source: str, mode: Mode,
) -> Tick | Reject:  # fmt: skip
    seq, _ts, ltp, ltq, atp, vol, tbq, tsq, open_, high, low, close = v[3:15]
    if (ltp | ltq | atp | vol | open_ | high | low | close) < 0:
        return Reject("out_of_range", f"token {token}: negative price or quantity")
    buy, sell = _quantity(tbq), _quantity(tsq)
    if buy is None or sell is None:
        return Reject("out_of_range", f"token {token}: total buy/sell quantity {tbq}/{tsq}")
    symbol = resolve(exchange, token) if resolve is not None else None
    last, prev = ltp / div, close / div
    change = last - prev if prev else None
    # Calls of <= 15 keywords: CPython compiles a call with more keywords into a slower
    # dict-based call (about 3x the cost of building the Tick; see bench/decode.py).
    tick = Tick(
        exchange=exchange, token=token, symbol=str(token) if symbol is None else symbol,
        source=source, ts_exchange=ts, ts_recv=ts_recv, seq=seq, ltp=last, ltq=ltq,
        atp=atp / div, volume=vol, total_buy_qty=buy, total_sell_qty=sell, open=open_ / div,
        high=high / div,
    )  # fmt: skip
    return replace(
        tick, low=low / div, close=prev, change=change,
        change_pct=None if change is None else change * 100 / prev, mode=mode,
    )  # fmt: skip


def _best5(
    v: tuple[Any, ...], div: float
) -> tuple[tuple[DepthLevel, ...], tuple[DepthLevel, ...]] | str:
    flags, qtys, prices = v[18:58:4], v[19:58:4], v[20:58:4]
    if min(qtys) < 0 or min(prices) < 0:
        return "negative depth value"
    if flags == _FLAGS and all(qtys):  # five bids then five asks, all present: the common case
        lv = DepthLevel
        q0, q1, q2, q3, q4, q5, q6, q7, q8, q9 = qtys
        p0, p1, p2, p3, p4, p5, p6, p7, p8, p9 = prices
        o0, o1, o2, o3, o4, o5, o6, o7, o8, o9 = v[21:58:4]
        return (
            lv(p0 / div, q0, o0), lv(p1 / div, q1, o1), lv(p2 / div, q2, o2),
            lv(p3 / div, q3, o3), lv(p4 / div, q4, o4),
        ), (
            lv(p5 / div, q5, o5), lv(p6 / div, q6, o6), lv(p7 / div, q7, o7),
            lv(p8 / div, q8, o8), lv(p9 / div, q9, o9),
        )  # fmt: skip
    bids: list[DepthLevel] = []
    asks: list[DepthLevel] = []
    for k in range(_BEST5_AT, _BEST5_AT + 40, 4):
        flag, qty, price, orders = v[k : k + 4]
        if flag not in (0, 1):
            return f"best-five flag {flag}"
        if qty or price:
            (bids if flag == 1 else asks).append(DepthLevel(price / div, qty, orders))
    return tuple(bids), tuple(asks)


def _snap(
    v: tuple[Any, ...], ts_recv: int, resolve: SymbolResolver | None, source: str
) -> Tick | Reject:
    ident = _ident(v[1], v[2])
    if isinstance(ident, Reject):
        return ident
    exchange, token, div = ident
    ts = _ts_ns(v[4], ts_recv)
    if isinstance(ts, Reject):
        return ts
    ltt, oi = v[15], v[16]
    uc, lc, h52, l52 = v[58:62]
    bad = check_ts_s(ltt, "last_traded_timestamp")
    if bad is None and (oi | uc | lc | h52 | l52) < 0:
        bad = "negative open interest or limit price"
    sides = _best5(v, div) if bad is None else bad
    if isinstance(sides, str):
        return Reject("out_of_range", f"token {token}: {sides}")
    tick = _quote_tick(v, exchange, token, div, ts, ts_recv, resolve, source, Mode.FULL)
    if isinstance(tick, Reject):
        return tick
    bids, asks = sides
    b0 = bids[0] if bids else _NoLevel
    a0 = asks[0] if asks else _NoLevel
    return replace(
        tick, ts_last_trade=ltt * 1_000_000_000 if ltt else None, oi=oi,
        upper_circuit=uc / div, lower_circuit=lc / div, high_52w=h52 / div, low_52w=l52 / div,
        bid=b0.price, bid_qty=b0.qty, ask=a0.price, ask_qty=a0.qty,
        depth=Depth(bids=bids, asks=asks),
    )  # fmt: skip


class _NoLevel:
    """Stands in for depth level 0 when a side is empty: its price and quantity are None."""

    price = None
    qty = None


def _levels20(v: tuple[int, ...], start: int, div: float) -> tuple[DepthLevel, ...]:
    return tuple(
        DepthLevel(v[k + 1] / div, v[k], v[k + 2])
        for k in range(start, start + 60, 3)
        if v[k] or v[k + 1]
    )


def _depth20(
    v: tuple[Any, ...], ts_recv: int, resolve: SymbolResolver | None, source: str
) -> Tick | Reject:
    ident = _ident(v[1], v[2])
    if isinstance(ident, Reject):
        return ident
    exchange, token, div = ident
    ts = _ts_ns(v[4], ts_recv)
    if isinstance(ts, Reject):
        return ts
    if min(v[_DEPTH_AT:]) < 0:
        return Reject("out_of_range", f"token {token}: negative depth value")
    ints: tuple[int, ...] = v
    bids, asks = _levels20(ints, _DEPTH_AT, div), _levels20(ints, _DEPTH_AT + 60, div)
    return Tick(
        exchange=exchange,
        token=token,
        symbol=symbol_for(resolve, exchange, token),
        source=source,
        ts_exchange=ts,
        ts_recv=ts_recv,
        bid=bids[0].price if bids else None,
        bid_qty=bids[0].qty if bids else None,
        ask=asks[0].price if asks else None,
        ask_qty=asks[0].qty if asks else None,
        depth=Depth(bids=bids, asks=asks),
        mode=Mode.FULL,
    )
