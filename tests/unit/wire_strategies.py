"""Hypothesis strategies for canonical ticks that the Kite / Angel wire formats can carry exactly.

Each strategy draws the *wire integers* and builds the Tick the decoder must produce from them
(prices by one division, change fields by the canonical rule), so ``decode(encode(t)) == t``.
Shared by test_kite_wire.py, test_angel_wire.py and test_wire_sdk_oracle.py.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from tickstream.feeds.angelone.wire import EXCHANGE_TYPES, AngelMode
from tickstream.feeds.kite.wire import SEGMENTS, divisor_for
from tickstream.feeds.wire_common import TS_MAX_S, TS_MIN_S, change_fields
from tickstream.model import NS_PER_SEC, Depth, DepthLevel, Mode, Tick

U16 = st.integers(0, 2**16 - 1)
U32 = st.integers(0, 2**32 - 1)
P32 = st.integers(0, 2**31 - 1)
TS_S = st.integers(TS_MIN_S, TS_MAX_S - 1)
TS_RECV = st.integers(0, 2**62)
ANGEL_P = st.integers(0, 2**40)
ANGEL_Q = st.integers(0, 2**62)


def _levels(
    draw: st.DrawFn, n: int, qty: st.SearchStrategy[int], price: st.SearchStrategy[int],
    orders: st.SearchStrategy[int], div: float,
) -> tuple[DepthLevel, ...]:  # fmt: skip
    rows = draw(st.lists(st.tuples(qty, price, orders), max_size=n))
    return tuple(DepthLevel(p / div, q, o) for q, p, o in rows)


def _book(bids: tuple[DepthLevel, ...], asks: tuple[DepthLevel, ...]) -> dict[str, Any]:
    return {
        "depth": Depth(bids=bids, asks=asks),
        "bid": bids[0].price if bids else None,
        "bid_qty": bids[0].qty if bids else None,
        "ask": asks[0].price if asks else None,
        "ask_qty": asks[0].qty if asks else None,
    }


@st.composite
def kite_ticks(draw: st.DrawFn, mode: Mode) -> Tick:
    """A canonical Kite tick in ``mode`` on any segment (indices use the 28/32-byte packets)."""
    seg = draw(st.sampled_from(sorted(SEGMENTS)))
    exchange, div = SEGMENTS[seg], divisor_for(seg)
    token = draw(st.integers(0, 2**24 - 1))
    ts_recv = draw(TS_RECV)
    ltp = draw(P32) / div
    base: dict[str, Any] = {
        "exchange": exchange, "token": token, "symbol": str(token), "source": "kite",
        "ts_exchange": ts_recv, "ts_recv": ts_recv, "ltp": ltp, "mode": mode,
    }  # fmt: skip
    if mode is Mode.LTP:
        return Tick(**base)
    open_, high, low, close = (draw(P32) / div for _ in range(4))
    change, change_pct = change_fields(ltp, close)
    base |= {"open": open_, "high": high, "low": low, "close": close, "change_pct": change_pct}
    if mode is Mode.FULL:
        base["ts_exchange"] = draw(TS_S) * NS_PER_SEC
    if exchange == "INDICES":
        return Tick(**base, change=draw(st.integers(-(2**31), 2**31 - 1)) / div)
    base |= {
        "change": change, "ltq": draw(U32), "atp": draw(P32) / div, "volume": draw(U32),
        "total_buy_qty": draw(U32), "total_sell_qty": draw(U32),
    }  # fmt: skip
    if mode is Mode.QUOTE:
        return Tick(**base)
    ltt = draw(st.none() | TS_S.map(lambda s: s * NS_PER_SEC))
    level = (st.integers(1, 2**32 - 1), P32, U16)
    bids, asks = (_levels(draw, 5, *level, div) for _ in range(2))
    oi = {"oi": draw(U32), "oi_day_high": draw(U32), "oi_day_low": draw(U32)}
    return Tick(**base, **oi, ts_last_trade=ltt, **_book(bids, asks))


def _angel_ident(draw: st.DrawFn) -> tuple[int, str, str, float]:
    et = draw(st.sampled_from(sorted(EXCHANGE_TYPES)))
    token = draw(st.integers(0, 10**7) | st.integers(99_900_000, 99_999_999))
    index = token >= 99_900_000 and et in (1, 3)
    div = 10_000_000.0 if et == 13 else 100.0
    return et, str(token), "INDICES" if index else EXCHANGE_TYPES[et], div


@st.composite
def angel_cases(draw: st.DrawFn, mode: AngelMode) -> tuple[Tick, int, str]:
    """``(canonical tick, exchange_type, token)`` for an Angel packet in ``mode``."""
    et, token, exchange, div = _angel_ident(draw)
    ts_recv = draw(TS_RECV)
    base: dict[str, Any] = {
        "exchange": exchange, "token": int(token), "symbol": token, "source": "angelone",
        "ts_exchange": draw(st.integers(TS_MIN_S * 1000, TS_MAX_S * 1000 - 1)) * 1_000_000,
        "ts_recv": ts_recv,
    }  # fmt: skip
    if mode is AngelMode.DEPTH:
        level = (st.integers(1, 2**31 - 1), P32, st.integers(0, 2**15 - 1))
        bids, asks = (_levels(draw, 20, *level, div) for _ in range(2))
        return Tick(**base, mode=Mode.FULL, **_book(bids, asks)), et, token
    ltp = draw(ANGEL_P) / div
    base |= {"seq": draw(st.integers(0, 2**63 - 1)), "ltp": ltp}
    if mode is AngelMode.LTP:
        return Tick(**base, mode=Mode.LTP), et, token
    open_, high, low, close, atp = (draw(ANGEL_P) / div for _ in range(5))
    change, change_pct = change_fields(ltp, close)
    base |= {
        "open": open_, "high": high, "low": low, "close": close, "atp": atp,
        "change": change, "change_pct": change_pct, "ltq": draw(ANGEL_Q),
        "volume": draw(ANGEL_Q), "total_buy_qty": draw(st.integers(0, 2**53)),
        "total_sell_qty": draw(st.integers(0, 2**53)),
    }  # fmt: skip
    if mode is AngelMode.QUOTE:
        return Tick(**base, mode=Mode.QUOTE), et, token
    level = (st.integers(1, 2**62), ANGEL_P, U16)
    bids, asks = (_levels(draw, 5, *level, div) for _ in range(2))
    uc, lc, h52, l52 = (draw(ANGEL_P) / div for _ in range(4))
    snap = {
        "upper_circuit": uc, "lower_circuit": lc, "high_52w": h52, "low_52w": l52,
        "oi": draw(ANGEL_Q), "ts_last_trade": draw(st.none() | TS_S.map(lambda s: s * NS_PER_SEC)),
    }  # fmt: skip
    return Tick(**base, **snap, mode=Mode.FULL, **_book(bids, asks)), et, token
