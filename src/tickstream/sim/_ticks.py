"""Canonical ticks from the market model's state arrays (one vectorised gather, one loop)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tickstream.model import Depth, DepthLevel, Instrument, Mode, Tick
from tickstream.sim._book import I64

__all__ = ["SOURCE", "Columns", "build_ticks"]

SOURCE = "sim"
Book = tuple[I64, I64, I64, I64, I64, I64]


@dataclass(frozen=True, slots=True)
class Columns:
    """Per-instrument state, integer ticks for prices (views, not copies, of the market's)."""

    scale: I64
    ltp: I64
    open: I64
    high: I64
    low: I64
    close: I64
    upper: I64
    lower: I64
    hi52: I64
    lo52: I64
    volume: I64
    turnover: I64
    ltq: I64
    seq: I64
    tbq: I64
    tsq: I64
    oi: I64
    oi_hi: I64
    oi_lo: I64
    last_trade: I64
    is_index: npt.NDArray[np.bool_]
    is_opt: npt.NDArray[np.bool_]
    book: Book


_PRICES = ("ltp", "open", "high", "low", "close", "upper", "lower", "hi52", "lo52")
_INTS = ("volume", "ltq", "seq", "tbq", "tsq", "oi", "oi_hi", "oi_lo", "last_trade")


def _gather(c: Columns, idx: I64) -> dict[str, list[Any]]:
    sc = c.scale[idx]
    out: dict[str, list[Any]] = {n: (getattr(c, n)[idx] / sc).tolist() for n in _PRICES}
    out.update({n: getattr(c, n)[idx].tolist() for n in _INTS})
    vol = c.volume[idx]
    out["atp"] = (np.rint(c.turnover[idx] * (100 / sc) / np.maximum(vol, 1)) / 100).tolist()
    out["change"] = ((c.ltp[idx] - c.close[idx]) / sc).tolist()
    ltp, close = c.ltp[idx], c.close[idx]
    pct = (ltp / sc - close / sc) * 100 / np.where(close > 0, close / sc, 1.0)
    out["pct"] = pct.tolist()
    bp, bq, bo, ap, aq, ao = (a[idx] for a in c.book)
    out["bp"], out["ap"] = (bp / sc[:, None]).tolist(), (ap / sc[:, None]).tolist()
    out["bq"], out["bo"], out["aq"], out["ao"] = bq.tolist(), bo.tolist(), aq.tolist(), ao.tolist()
    out["is_index"] = c.is_index[idx].tolist()
    out["is_opt"] = c.is_opt[idx].tolist()
    return out


def _index_tick(inst: Instrument, g: dict[str, list[Any]], j: int, t: int) -> Tick:
    return Tick(
        exchange=inst.exchange, token=inst.token, symbol=inst.symbol, source=SOURCE,
        ts_exchange=t, ts_recv=t, seq=g["seq"][j], ltp=g["ltp"][j], open=g["open"][j],
        high=g["high"][j], low=g["low"][j], close=g["close"][j], change=g["change"][j],
        change_pct=g["pct"][j], mode=Mode.FULL,
    )  # fmt: skip


def _full_tick(inst: Instrument, g: dict[str, list[Any]], j: int, t: int) -> Tick:
    bp, bq, bo, ap, aq, ao = g["bp"][j], g["bq"][j], g["bo"][j], g["ap"][j], g["aq"][j], g["ao"][j]
    depth = Depth(bids=tuple(map(DepthLevel, bp, bq, bo)), asks=tuple(map(DepthLevel, ap, aq, ao)))
    opt = g["is_opt"][j]
    return Tick(
        exchange=inst.exchange, token=inst.token, symbol=inst.symbol, source=SOURCE,
        ts_exchange=t, ts_recv=t, seq=g["seq"][j], ltp=g["ltp"][j], ltq=g["ltq"][j],
        atp=g["atp"][j], volume=g["volume"][j], bid=bp[0], ask=ap[0], bid_qty=bq[0],
        ask_qty=aq[0], total_buy_qty=g["tbq"][j], total_sell_qty=g["tsq"][j], open=g["open"][j],
        high=g["high"][j], low=g["low"][j], close=g["close"][j], change=g["change"][j],
        change_pct=g["pct"][j],
        oi=g["oi"][j] if opt else None, oi_day_high=g["oi_hi"][j] if opt else None,
        oi_day_low=g["oi_lo"][j] if opt else None, upper_circuit=g["upper"][j],
        lower_circuit=g["lower"][j], high_52w=g["hi52"][j], low_52w=g["lo52"][j],
        ts_last_trade=g["last_trade"][j], depth=depth, mode=Mode.FULL,
    )  # fmt: skip


def build_ticks(
    instruments: Sequence[Instrument], c: Columns, idx: I64, ts: int | None
) -> list[Tick]:
    """FULL-mode ticks for the instruments at positions ``idx``, stamped ``ts`` (or last trade)."""
    g = _gather(c, idx)
    stamps = g["last_trade"] if ts is None else [ts] * len(idx)
    is_index = g["is_index"]
    return [
        (_index_tick if is_index[j] else _full_tick)(instruments[i], g, j, stamps[j])
        for j, i in enumerate(idx.tolist())
    ]
