"""The decoders' native fast path (``feeds/_fastwire.c``), when the install could build it.

The C functions decode only well-formed frames and return None for anything else, so the
pure-Python decoders stay the definition of every mapping and of every Reject. ``NATIVE`` says
whether the fast path is in use (``/stats`` reports it; ``tests/unit/test_fastwire.py`` fails
when it is missing, so a machine without a C compiler is noticed, not silently slower).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Final

from tickstream.feeds.angelone._wire_layout import EXCHANGE_TYPES
from tickstream.feeds.kite._wire_layout import SEGMENTS
from tickstream.model import Depth, DepthLevel, Mode, Tick

__all__ = ["NATIVE", "angel_snap_quote", "disabled", "kite_frame"]

# Keyword names of the Tick a Kite full packet becomes, in the order the C code passes them.
KITE_FULL_NAMES: Final = (
    "exchange", "token", "symbol", "source", "ts_exchange", "ts_recv", "ltp", "ltq", "atp",
    "volume", "total_buy_qty", "total_sell_qty", "open", "high", "low", "close", "change",
    "change_pct", "oi", "oi_day_high", "oi_day_low", "ts_last_trade", "bid", "bid_qty", "ask",
    "ask_qty", "depth", "mode",
)  # fmt: skip

# The same for a Kite quote packet.
KITE_QUOTE_NAMES: Final = (
    "exchange", "token", "symbol", "source", "ts_exchange", "ts_recv", "ltp", "ltq", "atp",
    "volume", "total_buy_qty", "total_sell_qty", "open", "high", "low", "close", "change",
    "change_pct", "mode",
)  # fmt: skip

# The same for an Angel SNAP_QUOTE packet.
ANGEL_SNAP_NAMES: Final = (
    "exchange", "token", "symbol", "source", "ts_exchange", "ts_recv", "seq", "ltp", "ltq", "atp",
    "volume", "total_buy_qty", "total_sell_qty", "open", "high", "low", "close", "change",
    "change_pct", "ts_last_trade", "oi", "upper_circuit", "lower_circuit", "high_52w",
    "low_52w", "bid", "bid_qty", "ask", "ask_qty", "depth", "mode",
)  # fmt: skip

Resolver = Callable[[str, int], str | None] | None
KiteFrame = Callable[[bytes, int, Resolver, str], list[Tick] | None]
AngelSnapQuote = Callable[[bytes, int, Resolver, str], Tick | None]

kite_frame: KiteFrame | None
angel_snap_quote: AngelSnapQuote | None
try:
    from tickstream.feeds import _fastwire
except ImportError:  # built without a C compiler: the pure-Python decoders do all the work
    kite_frame = angel_snap_quote = None
else:
    _fastwire.setup(
        Tick, Depth, DepthLevel, Mode.FULL, Mode.QUOTE,
        tuple(SEGMENTS.get(seg) for seg in range(256)), KITE_FULL_NAMES, KITE_QUOTE_NAMES,
        tuple(EXCHANGE_TYPES.get(et) for et in range(max(EXCHANGE_TYPES) + 1)), "INDICES",
        ANGEL_SNAP_NAMES,
    )  # fmt: skip
    kite_frame = _fastwire.kite_frame
    angel_snap_quote = _fastwire.angel_snap_quote

NATIVE: Final = kite_frame is not None and angel_snap_quote is not None


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """The decoders with the fast path switched off, as on a machine without a C compiler (for
    tests that compare the two paths, and for bench/decode.py)."""
    from tickstream.feeds.angelone import wire as angel
    from tickstream.feeds.kite import wire as kite

    saved = kite._native_frame, angel._native_snap
    kite._native_frame = angel._native_snap = None
    try:
        yield
    finally:
        kite._native_frame, angel._native_snap = saved
