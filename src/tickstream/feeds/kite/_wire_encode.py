"""Kite binary encoder (re-exported by :mod:`tickstream.feeds.kite.wire`): Tick -> packet bytes."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any, Final

from tickstream.feeds.kite._wire_layout import (
    _DIVISORS,
    _EMPTY_LEVEL,
    _FULL,
    _INDEX_FULL,
    _INDEX_QUOTE,
    _INDICES,
    _LTP,
    _QUOTE,
    _U16,
    SEGMENTS,
    instrument_token,
)
from tickstream.model import NS_PER_SEC, Mode, Tick

__all__ = ["encode_frame", "encode_packet"]


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
