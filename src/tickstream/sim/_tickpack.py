"""Equity Ticks of a market step built by msgspec's C decoder instead of one call per field.

Building a FULL Tick in Python (a Tick, two ``replace`` calls, a Depth and ten DepthLevels) is
most of the simulator's CPU. Here numpy writes the step's rows as msgpack maps with fixed-width
values (a big-endian structured array: key, type byte, value per field), each row prefixed by its
instrument's constant head (map header, exchange, token, symbol, source), and one
``msgspec.msgpack.Decoder(list[Tick])`` call turns the whole buffer into Ticks: the same values
(float64 and int64 round-trip exactly), so the same Ticks as the per-field path in ``_ticks``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import msgspec
import numpy as np
import numpy.typing as npt

from tickstream.model import Instrument, Tick

__all__ = ["TickPacker"]

_F8, _I8 = 0xCB, 0xD3  # msgpack float64 / int64 markers
Fields = tuple[tuple[str, int], ...]
_HEAD: Final[Fields] = (
    ("ts_exchange", _I8), ("ts_recv", _I8), ("seq", _I8), ("ltp", _F8), ("ltq", _I8),
    ("atp", _F8), ("volume", _I8), ("bid", _F8), ("ask", _F8), ("bid_qty", _I8),
    ("ask_qty", _I8), ("total_buy_qty", _I8), ("total_sell_qty", _I8), ("open", _F8),
    ("high", _F8), ("low", _F8), ("close", _F8), ("change", _F8), ("change_pct", _F8),
    ("upper_circuit", _F8), ("lower_circuit", _F8), ("high_52w", _F8), ("low_52w", _F8),
    ("ts_last_trade", _I8),
)  # fmt: skip
_OI: Final[Fields] = (("oi", _I8), ("oi_day_high", _I8), ("oi_day_low", _I8))
_STATIC: Final = ("exchange", "token", "symbol", "source", "mode", "depth")  # keys outside rows
_ENC: Final = msgspec.msgpack.Encoder()


def _key(name: str) -> bytes:
    return _ENC.encode(name)


def _dtype(fields: Fields, levels: int) -> np.dtype[Any]:
    spec: list[tuple[str, Any]] = []
    for name, code in fields:
        spec += [(f"k_{name}", f"S{len(_key(name))}"), (f"t_{name}", "u1"),
                 (name, ">f8" if code == _F8 else ">i8")]  # fmt: skip
    spec += [("k_mode", f"S{len(_key('mode') + _key('full'))}"), ("k_depth", "S7")]
    for side in ("bids", "asks"):
        spec += [(f"k_{side}", "S6")]
        for j in range(levels):
            spec += [(f"{side}{j}_h", "u1"), (f"{side}{j}_pt", "u1"), (f"{side}{j}_p", ">f8"),
                     (f"{side}{j}_qt", "u1"), (f"{side}{j}_q", ">i8"), (f"{side}{j}_ot", "u1"),
                     (f"{side}{j}_o", ">i8")]  # fmt: skip
    return np.dtype(spec)


class TickPacker:
    """Builds FULL equity Ticks for rows of a market step (see the module docstring)."""

    def __init__(self, instruments: Sequence[Instrument], is_opt: Sequence[bool], levels: int):
        if not 0 < levels < 16:
            raise ValueError("depth sides must have 1..15 levels")
        self._levels = levels
        self._decoder = msgspec.msgpack.Decoder(list[Tick])
        self._dtypes = {opt: _dtype(_HEAD + (_OI if opt else ()), levels) for opt in (False, True)}
        self._templates: dict[bool, bytes] = {}  # constant bytes of many records
        self._prefix = [
            self._head(inst, opt) for inst, opt in zip(instruments, is_opt, strict=True)
        ]

    def _head(self, inst: Instrument, opt: bool) -> bytes:
        keys = len(_HEAD) + (len(_OI) if opt else 0) + len(_STATIC)
        head = {"exchange": inst.exchange, "token": inst.token, "symbol": inst.symbol,
                "source": "sim"}  # fmt: skip
        return b"\xde" + keys.to_bytes(2, "big") + _ENC.encode(head)[1:]  # drop fixmap header

    def build(self, idx: npt.NDArray[np.int64], opt: npt.NDArray[np.bool_],
              cols: dict[str, npt.NDArray[Any]]) -> list[Tick]:  # fmt: skip
        """Ticks for instruments ``idx`` (rows of ``cols``: one array per Tick field name, and
        ``depth_bid_price``, ``depth_bid_qty``, ``depth_bid_orders`` and ``depth_ask_*`` of shape
        (n, levels))."""
        rows: list[bytes] = [b""] * idx.size
        for flag in (False, True):
            sel = np.flatnonzero(opt == flag)
            if sel.size:
                blob = self._records(flag, {k: v[sel] for k, v in cols.items()}).tobytes()
                size = self._dtypes[flag].itemsize
                for j, k in zip(sel.tolist(), range(0, len(blob), size), strict=True):
                    rows[j] = blob[k : k + size]
        parts = [b""] * (2 * idx.size)
        parts[0::2] = [self._prefix[i] for i in idx.tolist()]
        parts[1::2] = rows
        return self._decoder.decode(b"".join((b"\xdd", idx.size.to_bytes(4, "big"), *parts)))

    def _template(self, opt: bool, n: int) -> npt.NDArray[Any]:
        """``n`` records with every constant byte (keys, type bytes, headers) already written."""
        dtype = self._dtypes[opt]
        held = self._templates.get(opt, b"")
        if len(held) < n * dtype.itemsize:
            rec = np.zeros(max(n, 2 * len(held) // dtype.itemsize, 256), dtype=dtype)
            for name, code in _HEAD + (_OI if opt else ()):
                rec[f"k_{name}"], rec[f"t_{name}"] = _key(name), code
            rec["k_mode"] = _key("mode") + _key("full")
            rec["k_depth"] = _key("depth") + b"\x82"  # a map of two: bids, asks
            array = bytes([0x90 | self._levels])
            for side in ("bids", "asks"):
                rec[f"k_{side}"] = _key(side) + array
                for j in range(self._levels):  # DepthLevel is array_like: [price, qty, orders]
                    rec[f"{side}{j}_h"], rec[f"{side}{j}_pt"] = 0x93, _F8
                    rec[f"{side}{j}_qt"] = rec[f"{side}{j}_ot"] = _I8
            held = self._templates[opt] = rec.tobytes()
        # A bytearray copy is a memcpy (a structured ndarray.copy() goes field by field).
        return np.frombuffer(bytearray(held[: n * dtype.itemsize]), dtype=dtype)

    def _records(self, opt: bool, cols: dict[str, npt.NDArray[Any]]) -> npt.NDArray[Any]:
        rec = self._template(opt, len(cols["ltp"]))
        for name, _ in _HEAD + (_OI if opt else ()):
            rec[name] = cols[name]
        for side, short in (("bids", "bid"), ("asks", "ask")):
            price, qty, orders = (cols[f"depth_{short}_{x}"] for x in ("price", "qty", "orders"))
            for j in range(self._levels):
                level = f"{side}{j}"
                rec[f"{level}_p"], rec[f"{level}_q"], rec[f"{level}_o"] = (
                    price[:, j], qty[:, j], orders[:, j])  # fmt: skip
        return rec
