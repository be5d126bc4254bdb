"""Angel One binary encoder (re-exported by :mod:`tickstream.feeds.angelone.wire`)."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any, Final

from tickstream.feeds.angelone._wire_layout import _DEPTH, _DIVISORS, _LTP, _QUOTE, _SNAP
from tickstream.feeds.angelone._wire_text import AngelMode
from tickstream.model import Depth, DepthLevel, Tick

__all__ = ["encode_packet"]


def _need(tick: Tick, names: Sequence[str]) -> list[Any]:
    values = [getattr(tick, name) for name in names]
    missing = [name for name, value in zip(names, values, strict=True) if value is None]
    if missing:
        raise ValueError(f"{tick.exchange}:{tick.token} lacks {', '.join(missing)} for this mode")
    return values


def _px(value: Any, div: float) -> int:
    return round(float(value) * div)


def _side(levels: Sequence[DepthLevel], n: int, div: float, tick: Tick) -> list[int]:
    if len(levels) > n:
        raise ValueError(f"{tick.exchange}:{tick.token}: at most {n} depth levels per side")
    out: list[int] = []
    for level in levels:
        out += (level.qty, round(level.price * div), level.orders or 0)
    return out + [0, 0, 0] * (n - len(levels))


def _best5_values(tick: Tick, div: float) -> list[int]:
    if tick.depth is None:
        raise ValueError(f"{tick.exchange}:{tick.token} lacks depth for SNAP_QUOTE")
    out: list[int] = []
    for flag, levels in ((1, tick.depth.bids), (0, tick.depth.asks)):
        side = _side(levels, 5, div, tick)
        for k in range(0, 15, 3):
            out += (flag, side[k], side[k + 1], side[k + 2])
    return out


_QUOTE_FIELDS: Final = (
    "ltq", "atp", "volume", "total_buy_qty", "total_sell_qty", "open", "high", "low", "close",
)  # fmt: skip
_SNAP_FIELDS: Final = ("upper_circuit", "lower_circuit", "high_52w", "low_52w")


def encode_packet(tick: Tick, mode: AngelMode, *, exchange_type: int, token: str) -> bytes:
    """One binary message for ``tick`` in ``mode``; ValueError if a needed field is missing.

    SNAP_QUOTE sends 0 for a missing ``oi`` or ``ts_last_trade`` and 0.0 as the OI change
    percentage (not in Tick); DEPTH sends 0 as the sequence number.
    """
    div = _DIVISORS.get(exchange_type)
    raw = token.encode("ascii")
    if div is None or len(raw) > 25:
        raise ValueError(f"bad exchange_type {exchange_type} or token {token!r:.40}")
    ts_ms = tick.ts_exchange // 1_000_000
    try:
        if mode is AngelMode.DEPTH:
            depth = tick.depth or Depth()
            levels = _side(depth.bids, 20, div, tick) + _side(depth.asks, 20, div, tick)
            return _DEPTH.pack(mode, exchange_type, raw, 0, ts_ms, *levels)
        (ltp,) = _need(tick, ("ltp",))
        head = (int(mode), exchange_type, raw, tick.seq or 0, ts_ms, _px(ltp, div))
        if mode is AngelMode.LTP:
            return _LTP.pack(*head)
        ltq, atp, vol, tbq, tsq, *ohlc = _need(tick, _QUOTE_FIELDS)
        quote = (ltq, _px(atp, div), vol, float(tbq), float(tsq), *(_px(p, div) for p in ohlc))
        if mode is AngelMode.QUOTE:
            return _QUOTE.pack(*head, *quote)
        limits = [_px(p, div) for p in _need(tick, _SNAP_FIELDS)]
        ltt = 0 if tick.ts_last_trade is None else tick.ts_last_trade // 1_000_000_000
        snap = (ltt, tick.oi or 0, 0.0, *_best5_values(tick, div), *limits)
        return _SNAP.pack(*head, *quote, *snap)
    except struct.error as exc:
        raise ValueError(f"{tick.exchange}:{tick.token}: value out of wire range: {exc}") from None
