"""Canonical ticks from the market model's state arrays (one vectorised gather, one loop)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tickstream.model import Depth, Instrument, Mode, Tick
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
    bp, bq, _, ap, aq, _ = (a[idx, 0] for a in c.book)
    out["bid"], out["ask"] = (bp / sc).tolist(), (ap / sc).tolist()
    out["bid_qty"], out["ask_qty"] = bq.tolist(), aq.tolist()
    out["is_index"] = c.is_index[idx].tolist()
    out["is_opt"] = c.is_opt[idx].tolist()
    return out


_ROW = ("seq", "ltp", "ltq", "atp", "volume", "tbq", "tsq", "open", "high", "low", "close",
        "change", "pct", "oi", "oi_hi", "oi_lo", "upper", "lower", "hi52", "lo52", "last_trade",
        "bid", "ask", "bid_qty", "ask_qty", "is_index", "is_opt")  # fmt: skip


def _index_tick(inst: Instrument, t: int, seq: int, values: tuple[float, ...]) -> Tick:
    ltp, op, hi, lo, cl, ch, pct = values
    return Tick(
        exchange=inst.exchange, token=inst.token, symbol=inst.symbol, source=SOURCE,
        ts_exchange=t, ts_recv=t, seq=seq, ltp=ltp, open=op, high=hi, low=lo, close=cl,
        change=ch, change_pct=pct, mode=Mode.FULL,
    )  # fmt: skip


def build_ticks(
    instruments: Sequence[Instrument],
    c: Columns,
    idx: I64,
    ts: int | None,
    depths: Sequence[Depth | None],
) -> list[Tick]:
    """FULL-mode ticks for the instruments at positions ``idx``, stamped ``ts`` (or last trade).

    One loop over zipped columns (this is the simulator's hot path): no per-field lookups.
    """
    g = _gather(c, idx)
    stamps = g["last_trade"] if ts is None else [ts] * len(idx)
    out: list[Tick] = []
    append, full = out.append, Mode.FULL
    for (i, t, depth, seq, ltp, ltq, atp, vol, tbq, tsq, op, hi, lo, cl, ch, pct, oi, oih, oil,
         uc, lc, h52, l52, lt, bid, ask, bid_qty, ask_qty, is_index, opt) in zip(
            idx.tolist(), stamps, depths, *(g[k] for k in _ROW), strict=True):  # fmt: skip
        inst = instruments[i]
        if is_index:
            append(_index_tick(inst, t, seq, (ltp, op, hi, lo, cl, ch, pct)))
            continue
        append(Tick(
            exchange=inst.exchange, token=inst.token, symbol=inst.symbol, source=SOURCE,
            ts_exchange=t, ts_recv=t, seq=seq, ltp=ltp, ltq=ltq, atp=atp, volume=vol,
            bid=bid, ask=ask, bid_qty=bid_qty, ask_qty=ask_qty, total_buy_qty=tbq,
            total_sell_qty=tsq, open=op, high=hi, low=lo, close=cl, change=ch, change_pct=pct,
            oi=oi if opt else None, oi_day_high=oih if opt else None,
            oi_day_low=oil if opt else None, upper_circuit=uc, lower_circuit=lc, high_52w=h52,
            low_52w=l52, ts_last_trade=lt, depth=depth, mode=full,
        ))  # fmt: skip
    return out
