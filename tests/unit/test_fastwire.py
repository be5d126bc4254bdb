"""The native fast path (feeds/_fastwire.c) against the pure-Python decoders it stands in for.

The Python decoder is the definition; for any frame the C path must give equal ticks or hand the
frame back (None) so that Python decodes it with its Reject reasons.
"""

from __future__ import annotations

import struct
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickstream.feeds import fastpath
from tickstream.feeds.angelone import wire as angel
from tickstream.feeds.angelone._wire_layout import _SNAP
from tickstream.feeds.kite import wire
from tickstream.feeds.kite._wire_layout import _FULL, _QUOTE
from tickstream.feeds.wire_common import DecodeResult, SymbolResolver
from tickstream.model import Depth, DepthLevel, Mode, Tick

TS_RECV = 1_732_000_000_123_456_789
# Mostly well-formed packets (the C path decodes them), each with a chance of one defect that the
# C path must hand back to Python (which rejects it with its reason).
SEG = st.sampled_from([1, 2, 3, 4, 5, 6, 7, 8, 9, 12])
BAD_SEG = st.sampled_from([0, 10, 11, 13, 255])
U32 = st.one_of(st.integers(0, 2**32 - 1), st.just(0))
PRICE = st.one_of(st.integers(0, 2**31 - 1), st.just(0), st.integers(1, 10**7))
TS_S = st.one_of(st.just(0), st.integers(946_684_800, 4_102_444_799))
BAD_TS_S = st.one_of(st.integers(1, 946_684_799), st.integers(4_102_444_800, 2**32 - 1))
DEFECT = st.sampled_from([*[None] * 10, "segment", "price", "depth", "ltt", "ts"])


def _python_only(frame: bytes, resolve: SymbolResolver | None = None) -> DecodeResult:
    with fastpath.disabled():
        return wire.decode_frame(frame, ts_recv=TS_RECV, resolve=resolve)


@st.composite
def full_packets(draw: st.DrawFn) -> bytes:
    defect = draw(DEFECT)
    seg = draw(BAD_SEG if defect == "segment" else SEG)
    values = [draw(st.integers(0, 2**24 - 1)) << 8 | seg, draw(PRICE), draw(U32), draw(PRICE)]
    values += [draw(U32), draw(U32), draw(U32)] + [draw(PRICE) for _ in range(4)]
    values += [draw(TS_S), draw(U32), draw(U32), draw(U32), draw(TS_S)]
    for _ in range(10):
        empty = draw(st.booleans())
        orders = draw(st.integers(0, 65535))
        values += [0, 0, orders] if empty else [draw(U32), draw(PRICE), orders]
    if defect == "price":
        values[draw(st.sampled_from([1, 3, 7, 8, 9, 10]))] = draw(st.integers(-(2**31), -1))
    elif defect == "depth":
        values[16 + 3 * draw(st.integers(0, 9)) + 1] = draw(st.integers(-(2**31), -1))
    elif defect in ("ltt", "ts"):
        values[11 if defect == "ltt" else 15] = draw(BAD_TS_S)
    return _FULL.pack(*values)


# ltp .. close (10 values), last trade time 0, oi, oi high, oi low, exchange time 0
_BODY = (*([1] * 10), 0, 1, 1, 1, 0)


@st.composite
def kite_packets(draw: st.DrawFn) -> bytes:
    """A full packet, or a quote packet (the full packet's first 44 bytes: the same layout),
    or now and then a packet of another length (LTP, index), which the C path hands back."""
    full = draw(full_packets())
    kind = draw(
        st.sampled_from(["full", "full", "full", "quote", "quote", "quote", "ltp", "index"])
    )
    if kind == "quote":
        return full[: _QUOTE.size]
    if kind in ("ltp", "index"):
        return full[: 8 if kind == "ltp" else 28]
    return full


def _frame(packets: list[bytes]) -> bytes:
    body = b"".join(struct.pack(">H", len(p)) + p for p in packets)
    return struct.pack(">H", len(packets)) + body


def test_native_fast_path_is_built() -> None:
    assert fastpath.NATIVE, (
        "feeds/_fastwire.c was not built (no C compiler at install?): decoding runs in pure "
        "Python, several times slower; install gcc and run make again"
    )


needs_native = pytest.mark.skipif(not fastpath.NATIVE, reason="asserted by the test above")


@needs_native
@settings(max_examples=300, deadline=None)
@given(packets=st.lists(kite_packets(), min_size=1, max_size=6))
def test_kite_frames_native_equals_python(packets: list[bytes]) -> None:
    frame = _frame(packets)
    names = {(wire.SEGMENTS[seg], 7): "SEVEN" for seg in wire.SEGMENTS}
    for resolve in (None, lambda ex, tok: names.get((ex, tok))):
        assert wire.decode_frame(frame, ts_recv=TS_RECV, resolve=resolve) == _python_only(
            frame, resolve
        )


@needs_native
def test_kite_full_native_exact_fields_of_one_packet() -> None:
    levels = [10, 245600, 3, 0, 0, 0, 7, 245500, 1, 0, 0, 0, 0, 0, 0]
    levels += [4, 245700, 2, 5, 245800, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    packet = _FULL.pack(
        2885 << 8 | 1, 245675, 25, 245612, 1_000_000, 600, 700,
        240000, 250000, 239000, 0, 1_732_000_000, 11, 12, 13, 1_732_000_001, *levels,
    )  # fmt: skip
    native = fastpath.kite_frame
    assert native is not None
    (tick,) = native(_frame([packet]), TS_RECV, None, "kite") or []
    assert tick == Tick(
        exchange="NSE", token=2885, symbol="2885", source="kite",
        ts_exchange=1_732_000_001 * 10**9, ts_recv=TS_RECV, ltp=2456.75, ltq=25, atp=2456.12,
        volume=1_000_000, total_buy_qty=600, total_sell_qty=700, open=2400.0, high=2500.0,
        low=2390.0, close=0.0, change=None, change_pct=None, oi=11, oi_day_high=12,
        oi_day_low=13, ts_last_trade=1_732_000_000 * 10**9, bid=2456.0, bid_qty=10,
        ask=2457.0, ask_qty=4,
        depth=Depth(
            bids=(DepthLevel(2456.0, 10, 3), DepthLevel(2455.0, 7, 1)),
            asks=(DepthLevel(2457.0, 4, 2), DepthLevel(2458.0, 5, 1)),
        ),
        mode=Mode.FULL,
    )  # fmt: skip


@needs_native
def test_kite_full_native_hands_back_what_python_must_judge() -> None:
    native = fastpath.kite_frame
    assert native is not None
    good = _FULL.pack(256 | 1, *_BODY, *([0] * 30))
    negative = _FULL.pack(256 | 1, -1, *_BODY[1:], *([0] * 30))
    unknown_segment = _FULL.pack(256 | 10, *_BODY, *([0] * 30))
    bad_time = _FULL.pack(256 | 1, *_BODY[:-1], 1, *([0] * 30))  # exchange time 1 s after 1970
    quote = good[: _QUOTE.size]
    assert native(_frame([good, quote, good]), TS_RECV, None, "kite") is not None
    for bad in (negative, unknown_segment, bad_time, negative[:44], unknown_segment[:44]):
        assert native(_frame([good, bad]), TS_RECV, None, "kite") is None
    assert native(_frame([quote, good[:8]]), TS_RECV, None, "kite") is None  # an LTP packet
    assert native(_frame([good])[:-1], TS_RECV, None, "kite") is None  # truncated
    assert native(_frame([good]) + b"\x00", TS_RECV, None, "kite") is None  # trailing byte
    assert native(b"\x00\x00", TS_RECV, None, "kite") is None


@needs_native
def test_kite_full_native_resolver_error_propagates_and_nothing_leaks() -> None:
    native = fastpath.kite_frame
    assert native is not None
    frame = _frame([_FULL.pack(256 | 1, *_BODY, *([5, 100, 1] * 10))])

    def boom(exchange: str, token: int) -> str | None:
        raise LookupError(f"{exchange}:{token}")

    with pytest.raises(LookupError, match="NSE:1"):
        native(frame, TS_RECV, boom, "kite")
    source = "kite-refcount-probe"
    before = sys.getrefcount(source)
    for _ in range(1000):
        native(frame, TS_RECV, None, source)
    assert sys.getrefcount(source) == before


# ------------------------------------------------------------------------- Angel SNAP_QUOTE

I64 = st.one_of(st.integers(0, 2**40), st.just(0), st.integers(0, 2**63 - 1))
QTY = st.one_of(st.integers(0, 2**53).map(float), st.just(0.0), st.just(-0.0))
BAD_QTY = st.sampled_from([float("nan"), float("inf"), -1.0, 2.5, 1e19])
TOKEN = st.one_of(
    st.integers(0, 10**18 - 1).map(lambda t: str(t).encode()), st.just(b"99926000")
)  # 99926000 is NIFTY 50: INDICES on NSE (1) and BSE (3)
BAD_TOKEN = st.one_of(st.just(b""), st.just(b"1" * 25), st.just(b"12a4"), st.just(b"-5"))
ET = st.sampled_from([1, 2, 3, 4, 5, 7, 13])
MS = st.one_of(st.just(0), st.integers(1, 999), st.integers(946_684_800_000, 4_102_444_799_999))
BAD_MS = st.one_of(st.integers(-(2**63), -1), st.integers(4_102_444_800_000, 2**63 - 1))
ANGEL_DEFECT = st.sampled_from(
    [None, None, None, None, "type", "token", "ts", "ltt", "negative", "flag", "qty", "level"]
)


@st.composite
def snap_packets(draw: st.DrawFn) -> bytes:
    defect = draw(ANGEL_DEFECT)
    et = draw(st.sampled_from([0, 6, 8, 12, 14, 15]) if defect == "type" else ET)
    token = draw(BAD_TOKEN if defect == "token" else TOKEN)[:25].ljust(25, b"\x00")
    values: list[object] = [3, et, token, draw(st.integers(-(2**63), 2**63 - 1))]
    values.append(draw(BAD_MS if defect == "ts" else MS))
    values += [draw(I64) for _ in range(4)] + [draw(QTY), draw(QTY)]
    values += [draw(I64) for _ in range(4)]
    values += [draw(BAD_TS_S if defect == "ltt" else TS_S), draw(I64), draw(st.floats())]
    for k in range(10):
        flag = draw(st.sampled_from([1 if k < 5 else 0, 0, 1]))
        orders = draw(st.integers(0, 65535))
        empty = draw(st.booleans())
        values += [flag, 0, 0, orders] if empty else [flag, draw(I64), draw(I64), orders]
    values += [draw(I64) for _ in range(4)]
    if defect == "negative":
        at = draw(st.sampled_from([5, 6, 7, 8, 11, 12, 13, 14, 16, 58, 59, 60, 61]))
        values[at] = draw(st.integers(-(2**63), -1))
    elif defect == "flag":
        values[18 + 4 * draw(st.integers(0, 9))] = draw(st.integers(2, 65535))
    elif defect == "qty":
        values[draw(st.sampled_from([9, 10]))] = draw(BAD_QTY)
    elif defect == "level":
        values[19 + 4 * draw(st.integers(0, 9)) + draw(st.integers(0, 1))] = -1
    return _SNAP.pack(*values)


def _angel_python_only(packet: bytes, resolve: SymbolResolver | None) -> DecodeResult:
    with fastpath.disabled():
        return angel.decode_packet(packet, ts_recv=TS_RECV, resolve=resolve)


@needs_native
@settings(max_examples=400, deadline=None)
@given(packet=snap_packets())
def test_angel_snap_quote_native_equals_python(packet: bytes) -> None:
    names = {("NSE", 2885): "RELIANCE", ("INDICES", 99926000): "NIFTY 50"}
    for resolve in (None, lambda ex, tok: names.get((ex, tok))):
        got = angel.decode_packet(packet, ts_recv=TS_RECV, resolve=resolve)
        assert got == _angel_python_only(packet, resolve)


@needs_native
def test_angel_snap_quote_native_decodes_the_common_packet() -> None:
    native = fastpath.angel_snap_quote
    assert native is not None
    levels = []
    for k in range(10):
        levels += [1 if k < 5 else 0, 100 + k, 245600 + (k - 5) * 5, k]
    packet = _SNAP.pack(
        3, 1, b"2885".ljust(25, b"\x00"), 77, 1_732_000_000_250, 245675, 25, 245612, 10**6,
        600.0, 700.0, 240000, 250000, 239000, 245000, 1_732_000_000, 5, 0.5, *levels,
        270000, 220000, 300000, 200000,
    )  # fmt: skip
    tick = native(packet, TS_RECV, None, "angelone")
    assert tick is not None
    assert tick == _angel_python_only(packet, None).ticks[0]
    assert (tick.token, tick.seq, tick.ts_exchange) == (2885, 77, 1_732_000_000_250_000_000)
    assert (tick.ltp, tick.bid, tick.bid_qty, tick.ask, tick.ask_qty) == (
        2456.75,
        2455.75,
        100,
        2456.0,
        105,
    )
    assert tick.depth is not None and len(tick.depth.bids) == len(tick.depth.asks) == 5
    assert (tick.upper_circuit, tick.low_52w, tick.change) == (2700.0, 2000.0, 6.75)


@needs_native
def test_kite_quote_native_exact_fields() -> None:
    native = fastpath.kite_frame
    assert native is not None
    quote = _QUOTE.pack(53 << 8 | 3, 835_000_000, 10, 834_900_000, 7000, 1, 2, 83, 84, 82, 81)
    (tick,) = native(_frame([quote]), TS_RECV, None, "kite") or []
    assert tick == Tick(
        exchange="CDS", token=53, symbol="53", source="kite", ts_exchange=TS_RECV,
        ts_recv=TS_RECV, ltp=83.5, ltq=10, atp=83.49, volume=7000, total_buy_qty=1,
        total_sell_qty=2, open=83e-7, high=84e-7, low=82e-7, close=81e-7,
        change=83.5 - 81e-7, change_pct=(83.5 - 81e-7) * 100 / 81e-7, mode=Mode.QUOTE,
    )  # fmt: skip
