"""Kite binary encoder (re-exported by :mod:`tickstream.feeds.kite.wire`): Tick -> packet bytes."""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt

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

__all__ = ["FULL_BATCH_FIELDS", "encode_frame", "encode_full_batch", "encode_packet"]


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


# ------------------------------------------------------------------------------ batch encoder
# A whole batch of equity FULL packets in one numpy pass (the simulator's hot path). The record
# is the 184-byte layout of ``_FULL`` as a big-endian structured dtype.
_LEVEL_DTYPE: Final = np.dtype([("qty", ">u4"), ("price", ">i4"), ("orders", ">u2"), ("pad", "V2")])
_HEAD: Final = (
    ("itok", ">u4"), ("ltp", ">i4"), ("ltq", ">u4"), ("atp", ">i4"), ("volume", ">u4"),
    ("tbq", ">u4"), ("tsq", ">u4"), ("open", ">i4"), ("high", ">i4"), ("low", ">i4"),
    ("close", ">i4"), ("ltt", ">u4"), ("oi", ">u4"), ("oih", ">u4"), ("oil", ">u4"),
    ("ts", ">u4"),
)  # fmt: skip
_FULL_DTYPE: Final = np.dtype([*_HEAD, ("depth", _LEVEL_DTYPE, (10,))])
assert _FULL_DTYPE.itemsize == _FULL.size
_PRICES: Final = ("ltp", "atp", "open", "high", "low", "close")
_BOUNDS: Final = {"i": (-(1 << 31), 1 << 31), "u": (0, 1 << 32)}
FULL_BATCH_FIELDS: Final = (
    "itok", "div", *_PRICES, "ltq", "volume", "tbq", "tsq", "ltt", "oi", "oih", "oil", "ts",
    "bid_price", "bid_qty", "bid_orders", "ask_price", "ask_qty", "ask_orders",
)  # fmt: skip
"""Columns of :func:`encode_full_batch`: float prices (as on the Tick), the rest integers."""

Array = npt.NDArray[Any]


def _wire_columns(cols: Mapping[str, Array]) -> dict[str, Array]:
    """Wire integers (as int64 or float) per field: prices rounded exactly as ``_price`` does."""
    div = cols["div"]
    out = {name: cols[name] for name, _ in _HEAD if name not in _PRICES}
    out.update({name: np.rint(cols[name] * div) for name in _PRICES})
    for side in ("bid", "ask"):
        out[f"{side}_price"] = np.rint(cols[f"{side}_price"] * div[:, None])
        out[f"{side}_qty"] = cols[f"{side}_qty"]
        out[f"{side}_orders"] = cols[f"{side}_orders"]
    return out


def _in_range(wire: Mapping[str, Array], n: int) -> npt.NDArray[np.bool_]:
    ok = np.ones(n, dtype=np.bool_)
    for name, code in _HEAD:
        lo, hi = _BOUNDS[code[1]]
        ok &= (wire[name] >= lo) & (wire[name] < hi)
    for side in ("bid", "ask"):
        ok &= ((wire[f"{side}_price"] >= -(1 << 31)) & (wire[f"{side}_price"] < 1 << 31)).all(1)
        for name, hi in (("qty", 1 << 32), ("orders", 1 << 16)):
            col = wire[f"{side}_{name}"]
            ok &= ((col >= 0) & (col < hi)).all(1)
    return ok


def encode_full_batch(cols: Mapping[str, Array]) -> list[bytes | None]:
    """FULL-mode equity packets for a batch, byte-identical to ``encode_packet(tick, FULL)``.

    ``cols`` holds one array per :data:`FULL_BATCH_FIELDS` name, one row per tick (depth
    columns are ``(n, 5)``): ``div`` the segment divisor, prices the Tick's floats, times in
    whole seconds, absent ``oi*``/orders as 0. No per-field validation (the caller vouches the
    rows are complete equity ticks); a row with a value out of wire range comes back as None so
    the caller can encode that tick with :func:`encode_packet` (which raises for it).
    """
    n = len(cols["itok"])
    wire = _wire_columns(cols)
    ok = _in_range(wire, n)
    rec = np.zeros(n, dtype=_FULL_DTYPE)
    good = slice(None) if ok.all() else ok
    for name, _ in _HEAD:
        rec[name][good] = wire[name][good]
    depth = rec["depth"]
    for k, side in ((0, "bid"), (5, "ask")):
        for field in ("price", "qty", "orders"):
            depth[field][good, k : k + 5] = wire[f"{side}_{field}"][good]
    size = _FULL.size
    blob = rec.tobytes()
    return [
        blob[j : j + size] if keep else None
        for j, keep in zip(range(0, n * size, size), ok.tolist(), strict=True)
    ]
