"""Canonical ticks from the market model's state arrays (one vectorised gather, one loop)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from msgspec.structs import replace

from tickstream.feeds.kite import wire as kite_wire
from tickstream.model import NS_PER_SEC, Depth, DepthLevel, Instrument, Mode, Tick
from tickstream.sim._book import I64
from tickstream.sim._tickpack import TickPacker

__all__ = [
    "SOURCE",
    "Columns",
    "build_depths",
    "build_step_ticks",
    "build_ticks",
    "kite_full_columns",
    "kite_full_packets",
    "kite_tokens",
    "packer_columns",
]

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


def _atp(c: Columns, idx: I64, sc: I64) -> npt.NDArray[np.float64]:
    vol = c.volume[idx]
    atp: npt.NDArray[np.float64] = np.rint(c.turnover[idx] * (100 / sc) / np.maximum(vol, 1)) / 100
    return atp


def _gather(c: Columns, idx: I64) -> dict[str, list[Any]]:
    sc = c.scale[idx]
    out: dict[str, list[Any]] = {n: (getattr(c, n)[idx] / sc).tolist() for n in _PRICES}
    out.update({n: getattr(c, n)[idx].tolist() for n in _INTS})
    out["atp"] = _atp(c, idx, sc).tolist()
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


def build_depths(c: Columns, idx: I64) -> list[Depth | None]:
    """The current book of each instrument at ``idx`` as a Depth (None for indices).

    One flat ``map`` builds every level of the batch (the costliest objects of a tick).
    """
    out: list[Depth | None] = [None] * idx.size
    rows = np.flatnonzero(~c.is_index[idx])
    if rows.size == 0:
        return out
    sel = idx[rows]
    sc = c.scale[sel][:, None]
    bp, bq, bo, ap, aq, ao = (a[sel] for a in c.book)
    n = bp.shape[1]  # levels per side
    levels = list(map(
        DepthLevel, np.hstack((bp / sc, ap / sc)).ravel().tolist(),
        np.hstack((bq, aq)).ravel().tolist(), np.hstack((bo, ao)).ravel().tolist(),
    ))  # fmt: skip
    for j, k in zip(rows.tolist(), range(0, 2 * n * rows.size, 2 * n), strict=True):
        out[j] = Depth(bids=tuple(levels[k : k + n]), asks=tuple(levels[k + n : k + 2 * n]))
    return out


def build_ticks(
    instruments: Sequence[Instrument],
    c: Columns,
    idx: I64,
    ts: int | None,
    depths: Sequence[Depth | None],
) -> list[Tick]:
    """FULL-mode ticks for the instruments at positions ``idx``, stamped ``ts`` (or last trade).

    One loop over zipped columns (this is the simulator's hot path): no per-field lookups, and
    each Tick is built by calls of at most 15 keywords (a call with more compiles to a slower
    dict-based call, see ``_equity_tick``).
    """
    g = _gather(c, idx)
    stamps = g["last_trade"] if ts is None else [ts] * len(idx)
    out: list[Tick] = []
    append = out.append
    for i, t, depth, *row in zip(idx.tolist(), stamps, depths, *(g[k] for k in _ROW),
                                 strict=True):  # fmt: skip
        inst = instruments[i]
        if row[-2]:  # is_index
            seq, ltp, _, _, _, _, _, op, hi, lo, cl, ch, pct = row[:13]
            append(_index_tick(inst, t, seq, (ltp, op, hi, lo, cl, ch, pct)))
        else:
            append(_equity_tick(inst, t, depth, *row))
    return out


def _equity_tick(
    inst: Instrument, t: int, depth: Depth | None, seq: int, ltp: float, ltq: int, atp: float,
    vol: int, tbq: int, tsq: int, op: float, hi: float, lo: float, cl: float, ch: float,
    pct: float, oi: int, oih: int, oil: int, uc: float, lc: float, h52: float, l52: float,
    lt: int, bid: float, ask: float, bid_qty: int, ask_qty: int, _: bool, opt: bool,
) -> Tick:  # fmt: skip
    tick = Tick(
        exchange=inst.exchange, token=inst.token, symbol=inst.symbol, source=SOURCE,
        ts_exchange=t, ts_recv=t, seq=seq, ltp=ltp, ltq=ltq, atp=atp, volume=vol, bid=bid,
        ask=ask, bid_qty=bid_qty, ask_qty=ask_qty,
    )  # fmt: skip
    tick = replace(
        tick, total_buy_qty=tbq, total_sell_qty=tsq, open=op, high=hi, low=lo, close=cl,
        change=ch, change_pct=pct, upper_circuit=uc, lower_circuit=lc, high_52w=h52,
        low_52w=l52, ts_last_trade=lt, depth=depth, mode=Mode.FULL,
    )  # fmt: skip
    return replace(tick, oi=oi, oi_day_high=oih, oi_day_low=oil) if opt else tick


def build_step_ticks(
    instruments: Sequence[Instrument], c: Columns, idx: I64, ts: int | None, packer: TickPacker
) -> list[Tick]:
    """What ``build_ticks(instruments, c, idx, ts, build_depths(c, idx))`` returns, faster:
    equity ticks come from ``packer`` (one C decode), index ticks from :func:`build_ticks`."""
    equity = ~c.is_index[idx]
    if not equity.any():
        return build_ticks(instruments, c, idx, ts, [None] * idx.size)
    rows = idx[equity]
    made = packer.build(rows, packer_columns(c, rows, ts))
    if rows.size == idx.size:
        return made
    others = idx[~equity]
    rest = iter(build_ticks(instruments, c, others, ts, [None] * others.size))
    packed = iter(made)
    return [next(packed) if e else next(rest) for e in equity.tolist()]


def packer_columns(c: Columns, idx: I64, ts: int | None) -> dict[str, npt.NDArray[Any]]:
    """The columns :class:`~tickstream.sim._tickpack.TickPacker` needs for equity rows ``idx``:
    the same arrays (same float operations) ``_gather`` turns into the Tick fields."""
    sc = c.scale[idx]
    stamps = c.last_trade[idx] if ts is None else np.full(idx.size, ts, dtype=np.int64)
    cols: dict[str, npt.NDArray[Any]] = {
        "ts_exchange": stamps, "ts_recv": stamps, "seq": c.seq[idx], "ltq": c.ltq[idx],
        "atp": _atp(c, idx, sc), "volume": c.volume[idx], "total_buy_qty": c.tbq[idx],
        "total_sell_qty": c.tsq[idx], "change": (c.ltp[idx] - c.close[idx]) / sc,
        "ts_last_trade": c.last_trade[idx], "oi": c.oi[idx], "oi_day_high": c.oi_hi[idx],
        "oi_day_low": c.oi_lo[idx],
    }  # fmt: skip
    for name, field in _PRICE_FIELDS:
        cols[name] = getattr(c, field)[idx] / sc
    ltp, close = c.ltp[idx], c.close[idx]
    cols["change_pct"] = (ltp / sc - close / sc) * 100 / np.where(close > 0, close / sc, 1.0)
    for side, (p, q, o) in (("bid", c.book[:3]), ("ask", c.book[3:])):
        price, qty = p[idx], q[idx]
        cols[side], cols[f"{side}_qty"] = price[:, 0] / sc, qty[:, 0]
        cols[f"depth_{side}_price"] = price / sc[:, None]
        cols[f"depth_{side}_qty"], cols[f"depth_{side}_orders"] = qty, o[idx]
    return cols


_PRICE_FIELDS = (("ltp", "ltp"), ("open", "open"), ("high", "high"), ("low", "low"),
                 ("close", "close"), ("upper_circuit", "upper"), ("lower_circuit", "lower"),
                 ("high_52w", "hi52"), ("low_52w", "lo52"))  # fmt: skip


def kite_tokens(
    instruments: Sequence[Instrument], is_index: npt.NDArray[np.bool_]
) -> tuple[I64, npt.NDArray[np.float64]]:
    """Kite instrument tokens and price divisors; token -1 where a tick takes ``encode_packet``
    (index packets have their own layout; an exchange Kite has no segment for).
    """
    itok = np.full(len(instruments), -1, dtype=np.int64)
    for n, inst in enumerate(instruments):
        if not is_index[n] and inst.exchange != "INDICES":
            with contextlib.suppress(ValueError):
                itok[n] = kite_wire.instrument_token(inst.exchange, inst.token)
    div = [kite_wire.divisor_for(t & 0xFF) if t >= 0 else 1.0 for t in itok.tolist()]
    return itok, np.array(div)


def kite_full_columns(c: Columns, idx: I64, ts: int, itok: I64, div: npt.NDArray[np.float64]
                      ) -> dict[str, npt.NDArray[Any]]:  # fmt: skip
    """The columns of ``kite.wire.encode_full_batch`` for the (equity) ticks ``build_ticks``
    makes for ``idx`` at ``ts``: the same float operations, so the same values as on the Ticks.
    """
    sc = c.scale[idx]
    cols: dict[str, npt.NDArray[Any]] = {
        "itok": itok[idx], "div": div[idx], "ltp": c.ltp[idx] / sc, "atp": _atp(c, idx, sc),
        "open": c.open[idx] / sc, "high": c.high[idx] / sc, "low": c.low[idx] / sc,
        "close": c.close[idx] / sc, "ltq": c.ltq[idx], "volume": c.volume[idx],
        "tbq": c.tbq[idx], "tsq": c.tsq[idx], "ltt": c.last_trade[idx] // NS_PER_SEC,
        "ts": np.full(idx.size, ts // NS_PER_SEC, dtype=np.int64),
    }  # fmt: skip
    opt = c.is_opt[idx]
    for name, col in (("oi", c.oi), ("oih", c.oi_hi), ("oil", c.oi_lo)):
        cols[name] = np.where(opt, col[idx], 0)
    bp, bq, bo, ap, aq, ao = (a[idx] for a in c.book)
    cols.update(bid_price=bp / sc[:, None], bid_qty=bq, bid_orders=bo,
                ask_price=ap / sc[:, None], ask_qty=aq, ask_orders=ao)  # fmt: skip
    return cols


def kite_full_packets(
    c: Columns, idx: I64, ts: int, itok: I64, div: npt.NDArray[np.float64]
) -> list[bytes | None]:
    """Kite FULL packets of the ticks ``build_step_ticks`` makes for ``idx`` at ``ts``, from one
    ``encode_full_batch`` pass; None where ``encode_packet`` must do it (``itok`` -1: index
    ticks; values beyond the wire's range)."""
    out: list[bytes | None] = [None] * idx.size
    rows = np.flatnonzero(itok[idx] >= 0)
    if rows.size == 0:
        return out
    packets = kite_wire.encode_full_batch(kite_full_columns(c, idx[rows], ts, itok, div))
    for j, packet in zip(rows.tolist(), packets, strict=True):
        out[j] = packet
    return out
