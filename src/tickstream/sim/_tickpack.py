"""Equity Ticks of a market step built by msgspec's C decoder instead of one call per field.

Building a FULL Tick in Python (a Tick, two ``replace`` calls, a Depth and ten DepthLevels) is
most of the simulator's CPU. Here numpy writes the step's rows as msgpack maps of one fixed layout
(a big-endian structured array: key, type byte and value per field) into a buffer that is kept
between steps (the constant bytes are written once), and one ``msgspec.msgpack.Decoder(list[Tick])``
call turns it into Ticks: float64 and int64 round-trip exactly, so these are the same Ticks as the
per-field path in ``_ticks``. Every row has the same width: an instrument's constant head
(exchange, token, symbol, source) is padded with an unknown key ``_`` (ignored by the decoder),
and a non-option's open-interest values go under unknown keys of the same length, so its ``oi*``
fields stay None.
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
_STATIC: Final = ("exchange", "token", "symbol", "source", "mode", "depth", "_")  # not in rows
_NOT_OI: Final = {"oi": "o_", "oi_day_high": "oi_day_hig_", "oi_day_low": "oi_day_lo_"}
_ENC: Final = msgspec.msgpack.Encoder()


def _key(name: str) -> bytes:
    return _ENC.encode(name)


def _dtype(head: int, levels: int) -> np.dtype[Any]:
    spec: list[tuple[str, Any]] = [("head", f"S{head}")]
    for name, code in _HEAD + _OI:
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


def _heads(instruments: Sequence[Instrument]) -> npt.NDArray[np.bytes_]:
    """Each instrument's row head (map header, constant fields, ``_`` padding), one width."""
    keys = (len(_HEAD) + len(_OI) + len(_STATIC)).to_bytes(2, "big")
    heads = [b"\xde" + keys + _ENC.encode({"exchange": i.exchange, "token": i.token,
             "symbol": i.symbol, "source": "sim"})[1:] for i in instruments]  # fmt: skip
    width = max(map(len, heads)) + len(_key("_")) + 3  # str8 header (2) and >= 1 pad byte
    pads = [width - len(h) - len(_key("_")) - 2 for h in heads]
    if max(pads) > 255:
        raise ValueError("instrument heads differ too much in length for one row layout")
    return np.array(
        [h + _key("_") + bytes([0xD9, p]) + b" " * p for h, p in zip(heads, pads, strict=True)],
        dtype=f"S{width}",
    )


class TickPacker:
    """Builds FULL equity Ticks for rows of a market step (see the module docstring)."""

    def __init__(self, instruments: Sequence[Instrument], is_opt: Sequence[bool], levels: int):
        if not 0 < levels < 16:
            raise ValueError("depth sides must have 1..15 levels")
        self._levels = levels
        self._decoder = msgspec.msgpack.Decoder(list[Tick])
        self._heads = _heads(instruments)
        self._dtype = _dtype(self._heads.dtype.itemsize, levels)
        self._oi_keys = {
            name: np.array([_key(name if opt else _NOT_OI[name]) for opt in is_opt])
            for name, _ in _OI
        }
        self._raw = np.zeros(0, dtype=np.uint8)  # array header (5 bytes), then the records
        self._rec = self._raw.view(self._dtype)

    def build(self, idx: npt.NDArray[np.int64], cols: dict[str, npt.NDArray[Any]]) -> list[Tick]:
        """Ticks for instruments ``idx`` (rows of ``cols``: one array per Tick field name, and
        ``depth_bid_price``, ``depth_bid_qty``, ``depth_bid_orders`` and ``depth_ask_*`` of shape
        (n, levels))."""
        n = idx.size
        if len(self._rec) < n:
            self._allocate(max(n, 2 * len(self._rec), 256))
        rec = self._rec[:n]
        rec["head"] = self._heads[idx]
        for name, _ in _OI:
            rec[f"k_{name}"] = self._oi_keys[name][idx]
        for name, _ in _HEAD + _OI:
            rec[name] = cols[name]
        for side, short in (("bids", "bid"), ("asks", "ask")):
            price, qty, orders = (cols[f"depth_{short}_{x}"] for x in ("price", "qty", "orders"))
            for j in range(self._levels):
                level = f"{side}{j}"
                rec[f"{level}_p"], rec[f"{level}_q"], rec[f"{level}_o"] = (
                    price[:, j], qty[:, j], orders[:, j])  # fmt: skip
        self._raw[1:5] = np.frombuffer(n.to_bytes(4, "big"), dtype=np.uint8)
        return self._decoder.decode(self._raw.data[: 5 + n * self._dtype.itemsize])

    def _allocate(self, rows: int) -> None:
        """A buffer for ``rows`` records with every constant byte already written."""
        self._raw = np.zeros(5 + rows * self._dtype.itemsize, dtype=np.uint8)
        self._raw[0] = 0xDD  # array32: the count follows
        rec = self._rec = self._raw[5:].view(self._dtype)
        for name, code in _HEAD + _OI:
            rec[f"k_{name}"], rec[f"t_{name}"] = _key(name), code
        rec["k_mode"] = _key("mode") + _key("full")
        rec["k_depth"] = _key("depth") + b"\x82"  # a map of two: bids, asks
        array = bytes([0x90 | self._levels])
        for side in ("bids", "asks"):
            rec[f"k_{side}"] = _key(side) + array
            for j in range(self._levels):  # DepthLevel is array_like: [price, qty, orders]
                rec[f"{side}{j}_h"], rec[f"{side}{j}_pt"] = 0x93, _F8
                rec[f"{side}{j}_qt"] = rec[f"{side}{j}_ot"] = _I8
