"""Hypothesis strategies for canonical ticks that the Kite / Angel wire formats can carry exactly.

Each strategy draws the *wire integers* and builds the Tick the decoder must produce from them
(prices by one division, change fields by the canonical rule), so ``decode(encode(t)) == t``.
Shared by test_kite_wire.py, test_angel_wire.py and test_wire_sdk_oracle.py.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from tickstream.feeds.angelone.wire import EXCHANGE_TYPES, AngelMode
from tickstream.feeds.kite.wire import SEGMENTS, divisor_for
from tickstream.feeds.wire_common import TS_MAX_S, TS_MIN_S, change_fields
from tickstream.model import NS_PER_SEC, Depth, DepthLevel, Mode, Tick

Pick = Callable[[int, int], int]  # (lo, hi) -> an int in [lo, hi]

U16, U32, P32 = (0, 2**16 - 1), (0, 2**32 - 1), (0, 2**31 - 1)
TS_S = (TS_MIN_S, TS_MAX_S - 1)
TS_RECV = (0, 2**62)
ANGEL_P, ANGEL_Q = (0, 2**40), (0, 2**62)


def _draw_pick(draw: st.DrawFn) -> Pick:
    return lambda lo, hi: draw(st.integers(lo, hi))


def _rng_pick(rnd: random.Random) -> Pick:
    def pick(lo: int, hi: int) -> int:
        r = rnd.random()
        if r < 0.05:
            return lo
        if r < 0.1:
            return hi
        return rnd.randint(lo, hi)

    return pick


def _levels(pick: Pick, n: int, qty: tuple[int, int], price: tuple[int, int],
            orders: tuple[int, int], div: float) -> tuple[DepthLevel, ...]:  # fmt: skip
    return tuple(
        DepthLevel(pick(*price) / div, pick(*qty), pick(*orders)) for _ in range(pick(0, n))
    )


def _book(bids: tuple[DepthLevel, ...], asks: tuple[DepthLevel, ...]) -> dict[str, Any]:
    return {
        "depth": Depth(bids=bids, asks=asks),
        "bid": bids[0].price if bids else None,
        "bid_qty": bids[0].qty if bids else None,
        "ask": asks[0].price if asks else None,
        "ask_qty": asks[0].qty if asks else None,
    }


def _ts_ns_or_none(pick: Pick) -> int | None:
    return None if pick(0, 1) == 0 else pick(*TS_S) * NS_PER_SEC


_SEGS = sorted(SEGMENTS)


def kite_tick(pick: Pick, mode: Mode) -> Tick:
    """A canonical Kite tick in ``mode`` on any segment (indices use the 28/32-byte packets)."""
    seg = _SEGS[pick(0, len(_SEGS) - 1)]
    exchange, div = SEGMENTS[seg], divisor_for(seg)
    token = pick(0, 2**24 - 1)
    ts_recv = pick(*TS_RECV)
    ltp = pick(*P32) / div
    base: dict[str, Any] = {
        "exchange": exchange, "token": token, "symbol": str(token), "source": "kite",
        "ts_exchange": ts_recv, "ts_recv": ts_recv, "ltp": ltp, "mode": mode,
    }  # fmt: skip
    if mode is Mode.LTP:
        return Tick(**base)
    open_, high, low, close = (pick(*P32) / div for _ in range(4))
    change, change_pct = change_fields(ltp, close)
    base |= {"open": open_, "high": high, "low": low, "close": close, "change_pct": change_pct}
    if mode is Mode.FULL:
        base["ts_exchange"] = pick(*TS_S) * NS_PER_SEC
    if exchange == "INDICES":
        return Tick(**base, change=pick(-(2**31), 2**31 - 1) / div)
    base |= {
        "change": change, "ltq": pick(*U32), "atp": pick(*P32) / div, "volume": pick(*U32),
        "total_buy_qty": pick(*U32), "total_sell_qty": pick(*U32),
    }  # fmt: skip
    if mode is Mode.QUOTE:
        return Tick(**base)
    ltt = _ts_ns_or_none(pick)
    level = ((1, 2**32 - 1), P32, U16)
    bids, asks = (_levels(pick, 5, *level, div) for _ in range(2))
    oi = {"oi": pick(*U32), "oi_day_high": pick(*U32), "oi_day_low": pick(*U32)}
    return Tick(**base, **oi, ts_last_trade=ltt, **_book(bids, asks))


_ETS = sorted(EXCHANGE_TYPES)


def angel_case(pick: Pick, mode: AngelMode) -> tuple[Tick, int, str]:
    """``(canonical tick, exchange_type, token)`` for an Angel packet in ``mode``."""
    et = _ETS[pick(0, len(_ETS) - 1)]
    token = pick(0, 10**7) if pick(0, 1) else pick(99_900_000, 99_999_999)
    exchange = "INDICES" if token >= 99_900_000 and et in (1, 3) else EXCHANGE_TYPES[et]
    div = 10_000_000.0 if et == 13 else 100.0
    base: dict[str, Any] = {
        "exchange": exchange, "token": token, "symbol": str(token), "source": "angelone",
        "ts_exchange": pick(TS_MIN_S * 1000, TS_MAX_S * 1000 - 1) * 1_000_000,
        "ts_recv": pick(*TS_RECV),
    }  # fmt: skip
    if mode is AngelMode.DEPTH:
        level = ((1, 2**31 - 1), P32, (0, 2**15 - 1))
        bids, asks = (_levels(pick, 20, *level, div) for _ in range(2))
        return Tick(**base, mode=Mode.FULL, **_book(bids, asks)), et, str(token)
    ltp = pick(*ANGEL_P) / div
    base |= {"seq": pick(0, 2**63 - 1), "ltp": ltp}
    if mode is AngelMode.LTP:
        return Tick(**base, mode=Mode.LTP), et, str(token)
    open_, high, low, close, atp = (pick(*ANGEL_P) / div for _ in range(5))
    change, change_pct = change_fields(ltp, close)
    base |= {
        "open": open_, "high": high, "low": low, "close": close, "atp": atp,
        "change": change, "change_pct": change_pct, "ltq": pick(*ANGEL_Q),
        "volume": pick(*ANGEL_Q), "total_buy_qty": pick(0, 2**53),
        "total_sell_qty": pick(0, 2**53),
    }  # fmt: skip
    if mode is AngelMode.QUOTE:
        return Tick(**base, mode=Mode.QUOTE), et, str(token)
    level = ((1, 2**62), ANGEL_P, U16)
    bids, asks = (_levels(pick, 5, *level, div) for _ in range(2))
    uc, lc, h52, l52 = (pick(*ANGEL_P) / div for _ in range(4))
    snap = {
        "upper_circuit": uc, "lower_circuit": lc, "high_52w": h52, "low_52w": l52,
        "oi": pick(*ANGEL_Q), "ts_last_trade": _ts_ns_or_none(pick),
    }  # fmt: skip
    return Tick(**base, **snap, mode=Mode.FULL, **_book(bids, asks)), et, str(token)


@st.composite
def kite_ticks(draw: st.DrawFn, mode: Mode) -> Tick:
    """Shrinkable: every wire integer is its own hypothesis draw."""
    return kite_tick(_draw_pick(draw), mode)


@st.composite
def angel_cases(draw: st.DrawFn, mode: AngelMode) -> tuple[Tick, int, str]:
    """Shrinkable: every wire integer is its own hypothesis draw."""
    return angel_case(_draw_pick(draw), mode)


SEEDS = st.integers(0, 2**64 - 1)
"""For bulk (oracle) runs: a hypothesis-drawn seed expands into many packets quickly, edge values
(each range's ends) included; failures reproduce from the seed hypothesis reports."""


def kite_batch(seed: int, mode: Mode, n: int) -> list[Tick]:
    pick = _rng_pick(random.Random(seed))
    return [kite_tick(pick, mode) for _ in range(n)]


def angel_batch(seed: int, mode: AngelMode, n: int) -> list[tuple[Tick, int, str]]:
    pick = _rng_pick(random.Random(seed))
    return [angel_case(pick, mode) for _ in range(n)]
