"""Kite wire codec: real captured packets, round trips, framing errors and text messages."""

from __future__ import annotations

import base64
import json
import struct
from datetime import datetime
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wire_strategies import kite_ticks

from tickstream.feeds.kite import wire
from tickstream.feeds.wire_common import Reject
from tickstream.model import NS_PER_SEC, Depth, DepthLevel, Mode, Tick

DATA = Path("/work/shared/data/websocket/kite")
TS_RECV = 1_700_000_000_123_456_789


def _capture(name: str) -> tuple[bytes, dict[str, object]]:
    packet = base64.b64decode((DATA / f"ticker_{name}.packet").read_text())
    expected = json.loads((DATA / f"ticker_{name}.json").read_text())
    return packet, expected


def _ns(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp()) * NS_PER_SEC


def _ltp_packet(token: int, paise: int) -> bytes:
    return struct.pack(">Ii", wire.instrument_token("NSE", token), paise)


# ------------------------------------------------------------------------------------ real captures


def test_decode_frame_real_full_capture_every_field_matches_json() -> None:
    # Arrange
    packet, exp = _capture("full")
    # Act
    result = wire.decode_frame(wire.encode_frame([packet]), ts_recv=TS_RECV)
    # Assert
    assert result.rejects == [] and result.packets == 1 and not result.heartbeat
    (tick,) = result.ticks
    assert (tick.exchange, tick.token) == wire.split_instrument_token(408065) == ("NSE", 1594)
    assert (tick.symbol, tick.source, tick.mode) == ("1594", "kite", Mode.FULL)
    assert tick.ltp == exp["last_price"] == 1573.7
    assert tick.ltq == exp["last_quantity"] == 7
    assert tick.atp == exp["average_price"] == 1570.37
    assert tick.volume == exp["volume"] == 1192471
    assert tick.total_buy_qty == exp["buy_quantity"] == 256443
    assert tick.total_sell_qty == exp["sell_quantity"] == 363009
    ohlc = exp["ohlc"]
    assert (tick.open, tick.high, tick.low, tick.close) == (
        ohlc["open"], ohlc["high"], ohlc["low"], ohlc["close"],  # type: ignore[index]
    ) == (1569.15, 1575.0, 1561.05, 1567.8)  # fmt: skip
    assert tick.ts_exchange == _ns(exp["timestamp"]) == 1625461887 * NS_PER_SEC  # type: ignore[arg-type]
    assert tick.ts_last_trade == _ns(exp["last_trade_time"])  # type: ignore[arg-type]
    assert tick.ts_recv == TS_RECV
    assert (tick.oi, tick.oi_day_high, tick.oi_day_low) == (0, 0, 0)
    assert tick.change == exp["change"] == 1573.7 - 1567.8
    assert tick.change_pct == (1573.7 - 1567.8) * 100 / 1567.8
    depth = exp["depth"]
    bids = tuple(DepthLevel(d["price"], d["quantity"], d["orders"]) for d in depth["buy"])  # type: ignore[index]
    asks = tuple(DepthLevel(d["price"], d["quantity"], d["orders"]) for d in depth["sell"])  # type: ignore[index]
    assert tick.depth == Depth(bids=bids, asks=asks)
    assert tick.depth.bids[4] == DepthLevel(1572.85, 50, 1)
    assert (tick.bid, tick.bid_qty, tick.ask, tick.ask_qty) == (1573.4, 5, 1573.7, 172)
    assert tick.seq is None and tick.upper_circuit is None and tick.high_52w is None


def test_decode_frame_real_quote_capture_every_field_matches_json() -> None:
    # Arrange
    packet, exp = _capture("quote")
    # Act
    result = wire.decode_frame(wire.encode_frame([packet]), ts_recv=TS_RECV)
    # Assert
    (tick,) = result.ticks
    assert (tick.exchange, tick.token, tick.mode) == ("NSE", 1594, Mode.QUOTE)
    assert tick.ltp == exp["last_price"] == 1573.15
    assert tick.ltq == exp["last_quantity"] == 1
    assert tick.atp == exp["average_price"] == 1570.33
    assert tick.volume == exp["volume"] == 1175986
    assert (tick.total_buy_qty, tick.total_sell_qty) == (256511, 360503)
    assert (tick.open, tick.high, tick.low, tick.close) == (1569.15, 1575.0, 1561.05, 1567.8)
    # The published JSON repeats the full example's change (5.9); the packet's ltp gives 5.35.
    assert tick.change == 1573.15 - 1567.8
    assert tick.ts_exchange == TS_RECV  # a quote packet has no exchange timestamp
    assert (
        tick.depth is None and tick.bid is None and tick.oi is None and tick.ts_last_trade is None
    )


def test_encode_packet_real_captures_reencode_byte_identical() -> None:
    for name in ("full", "quote"):
        # Arrange
        packet, _ = _capture(name)
        (tick,) = wire.decode_frame(wire.encode_frame([packet]), ts_recv=TS_RECV).ticks
        # Act
        again = wire.encode_packet(tick, tick.mode)
        # Assert
        assert again == packet


# -------------------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("mode", list(Mode))
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_decode_frame_encoded_ticks_roundtrip_equal(mode: Mode, data: st.DataObject) -> None:
    # Arrange
    ticks = data.draw(st.lists(kite_ticks(mode), min_size=1, max_size=4))
    frame = wire.encode_frame([wire.encode_packet(t, mode) for t in ticks])
    # Act
    result = wire.decode_frame(frame, ts_recv=ticks[0].ts_recv)
    # Assert
    expected = [_as_received(t, ticks[0].ts_recv) for t in ticks]
    assert result.rejects == []
    assert result.packets == len(ticks)
    assert result.ticks == expected


def _as_received(tick: Tick, ts_recv: int) -> Tick:
    """The tick as decoded with another ts_recv (ts_exchange follows it where the wire has none)."""
    ts_exchange = ts_recv if tick.ts_exchange == tick.ts_recv else tick.ts_exchange
    return msgspec.structs.replace(tick, ts_recv=ts_recv, ts_exchange=ts_exchange)


# ------------------------------------------------------------------------------------ framing errors


def test_decode_frame_unknown_length_between_good_packets_keeps_both() -> None:
    # Arrange
    good1, good2 = _ltp_packet(2885, 245675), _ltp_packet(1594, 157370)
    frame = wire.encode_frame([good1, b"\x00" * 40, good2])
    # Act
    result = wire.decode_frame(frame, ts_recv=TS_RECV)
    # Assert
    assert [(t.token, t.ltp) for t in result.ticks] == [(2885, 2456.75), (1594, 1573.7)]
    assert [r.reason for r in result.rejects] == ["unknown_length"]
    assert "length 40" in result.rejects[0].detail
    assert result.packets == 3


def test_decode_frame_truncated_last_packet_rejects_it_keeps_first() -> None:
    # Arrange: the second packet declares 44 bytes but the frame ends after 20.
    good = _ltp_packet(2885, 245675)
    frame = wire.encode_frame([good]) + b"\x00\x2c" + b"\x01" * 20
    frame = struct.pack(">H", 2) + frame[2:]
    # Act
    result = wire.decode_frame(frame, ts_recv=TS_RECV)
    # Assert
    assert [t.ltp for t in result.ticks] == [2456.75]
    assert [r.reason for r in result.rejects] == ["truncated_packet"]


def test_decode_frame_count_larger_than_packets_rejects_bad_count() -> None:
    # Arrange
    frame = struct.pack(">H", 3) + wire.encode_frame([_ltp_packet(1, 100)])[2:]
    # Act
    result = wire.decode_frame(frame, ts_recv=TS_RECV)
    # Assert
    assert [t.ltp for t in result.ticks] == [1.0]
    assert [r.reason for r in result.rejects] == ["bad_packet_count"]


def test_decode_frame_trailing_bytes_rejects_bad_count() -> None:
    frame = wire.encode_frame([_ltp_packet(1, 100)]) + b"\x07"
    result = wire.decode_frame(frame, ts_recv=TS_RECV)
    assert [t.ltp for t in result.ticks] == [1.0]
    assert [(r.reason, r.detail) for r in result.rejects] == [
        ("bad_packet_count", "1 bytes after 1 packets")
    ]


def test_decode_frame_ends_inside_length_prefix_rejects_truncated_frame() -> None:
    frame = struct.pack(">H", 2) + wire.encode_frame([_ltp_packet(1, 100)])[2:] + b"\x00"
    result = wire.decode_frame(frame, ts_recv=TS_RECV)
    assert [t.ltp for t in result.ticks] == [1.0]
    assert [r.reason for r in result.rejects] == ["truncated_frame"]


def test_decode_frame_unknown_segment_rejects_bad_exchange() -> None:
    # Arrange: segment 10 does not exist.
    bad = struct.pack(">Ii", 1594 << 8 | 10, 100)
    frame = wire.encode_frame([bad, _ltp_packet(7, 5)])
    # Act
    result = wire.decode_frame(frame, ts_recv=TS_RECV)
    # Assert
    assert [t.ltp for t in result.ticks] == [0.05]
    assert [r.reason for r in result.rejects] == ["bad_exchange"]


def test_decode_frame_negative_price_rejects_out_of_range() -> None:
    frame = wire.encode_frame([struct.pack(">Ii", wire.instrument_token("NSE", 5), -100)])
    result = wire.decode_frame(frame, ts_recv=TS_RECV)
    assert result.ticks == []
    assert [r.reason for r in result.rejects] == ["out_of_range"]


def test_decode_frame_absurd_exchange_timestamp_rejects_out_of_range() -> None:
    # Arrange: an index full packet stamped 1990-01-01.
    itok = wire.instrument_token("INDICES", 1024)
    packet = struct.pack(">I6iI", itok, 100, 100, 100, 100, 100, 0, 631152000)
    # Act
    result = wire.decode_frame(wire.encode_frame([packet]), ts_recv=TS_RECV)
    # Assert
    assert result.ticks == []
    assert result.rejects[0].reason == "out_of_range"
    assert "exchange_timestamp=631152000s" in result.rejects[0].detail


def test_decode_frame_heartbeat_sets_flag_no_ticks() -> None:
    result = wire.decode_frame(wire.HEARTBEAT, ts_recv=TS_RECV)
    assert (result.ticks, result.rejects, result.packets, result.heartbeat) == ([], [], 0, True)


def test_decode_frame_empty_rejects_truncated_frame() -> None:
    result = wire.decode_frame(b"", ts_recv=TS_RECV)
    assert result.rejects == [Reject("truncated_frame", "empty frame")]


@settings(max_examples=400, deadline=None)
@given(frame=st.binary(max_size=400))
def test_decode_frame_random_bytes_never_raise(frame: bytes) -> None:
    result = wire.decode_frame(frame, ts_recv=TS_RECV)
    assert len(result.ticks) <= result.packets
    assert all(t.ltp is not None and t.ltp >= 0 for t in result.ticks)
    assert all(r.reason and r.detail for r in result.rejects)


@settings(max_examples=150, deadline=None)
@given(
    tick=kite_ticks(Mode.FULL).filter(lambda t: t.exchange != "INDICES"),
    cut=st.integers(1, 183).filter(lambda c: c not in (8, 28, 32, 44)),
)
def test_decode_frame_cut_full_packet_between_good_ones_rejects_one(tick: Tick, cut: int) -> None:
    # Arrange
    packet = wire.encode_packet(tick, Mode.FULL)[:cut]
    good = _ltp_packet(9, 900)
    # Act
    result = wire.decode_frame(wire.encode_frame([good, packet, good]), ts_recv=TS_RECV)
    # Assert
    assert [t.ltp for t in result.ticks] == [9.0, 9.0]
    assert [r.reason for r in result.rejects] == ["unknown_length"]


def test_decode_frame_zero_depth_levels_are_dropped() -> None:
    # Arrange: a full packet with one bid and no asks.
    tick = Tick(
        exchange="NFO", token=54321, symbol="X", source="kite", ts_exchange=1625461887 * NS_PER_SEC,
        ts_recv=1, ltp=10.5, ltq=1, atp=10.0, volume=5, total_buy_qty=1, total_sell_qty=0,
        open=10.0, high=11.0, low=9.0, close=0.0, oi=7, oi_day_high=8, oi_day_low=6,
        depth=Depth(bids=(DepthLevel(10.45, 3, 1),)), mode=Mode.FULL,
    )  # fmt: skip
    # Act
    (out,) = wire.decode_frame(
        wire.encode_frame([wire.encode_packet(tick, Mode.FULL)]), ts_recv=1
    ).ticks
    # Assert
    assert out.depth == Depth(bids=(DepthLevel(10.45, 3, 1),), asks=())
    assert (out.bid, out.bid_qty, out.ask, out.ask_qty) == (10.45, 3, None, None)
    assert (out.change, out.change_pct) == (None, None)  # close 0: unknown, never 0
    assert out.oi == 7


def test_decode_frame_resolver_names_symbol() -> None:
    frame = wire.encode_frame([_ltp_packet(2885, 245675)])
    result = wire.decode_frame(
        frame, ts_recv=1, resolve=lambda ex, tok: "RELIANCE" if (ex, tok) == ("NSE", 2885) else None
    )
    assert result.ticks[0].symbol == "RELIANCE"


def test_decode_frame_cds_and_bcd_use_segment_divisors() -> None:
    cds = struct.pack(">Ii", wire.instrument_token("CDS", 1), 834_512_500)
    bcd = struct.pack(">Ii", wire.instrument_token("BCD", 2), 834_512)
    nco = struct.pack(">Ii", wire.instrument_token("NCO", 3), 12_345)
    ticks = wire.decode_frame(wire.encode_frame([cds, bcd, nco]), ts_recv=1).ticks
    assert [(t.exchange, t.ltp) for t in ticks] == [
        ("CDS", 83.45125), ("BCD", 83.4512), ("NCO", 1.2345)
    ]  # fmt: skip


# ------------------------------------------------------------------------------------ encode errors


def test_encode_packet_quote_missing_fields_raises_naming_them() -> None:
    tick = Tick(
        exchange="NSE", token=1, symbol="A", source="sim", ts_exchange=0, ts_recv=0, ltp=1.0
    )
    with pytest.raises(ValueError, match="lacks high, low, open, close") as err:
        wire.encode_packet(tick, Mode.QUOTE)
    assert "ltq" not in str(err.value)


def test_encode_packet_unknown_exchange_raises() -> None:
    tick = Tick(exchange="NYSE", token=1, symbol="A", source="sim", ts_exchange=0, ts_recv=0, ltp=1)
    with pytest.raises(ValueError, match="no Kite segment for exchange 'NYSE'"):
        wire.encode_packet(tick, Mode.LTP)


def test_encode_packet_price_beyond_int32_raises() -> None:
    tick = Tick(
        exchange="NSE", token=1, symbol="A", source="sim", ts_exchange=0, ts_recv=0, ltp=3e7
    )
    with pytest.raises(ValueError, match="out of wire range"):
        wire.encode_packet(tick, Mode.LTP)


def test_instrument_token_roundtrips_through_split() -> None:
    assert wire.instrument_token("NSE", 1594) == 408065
    assert wire.split_instrument_token(256265) == ("INDICES", 1001)
    with pytest.raises(ValueError, match="unknown segment 10"):
        wire.split_instrument_token(1 << 8 | 10)


# ------------------------------------------------------------------------------------ text messages


def test_text_encoders_match_the_ticker_protocol() -> None:
    assert json.loads(wire.encode_subscribe([408065])) == {"a": "subscribe", "v": [408065]}
    assert json.loads(wire.encode_unsubscribe([1, 2])) == {"a": "unsubscribe", "v": [1, 2]}
    assert json.loads(wire.encode_mode(Mode.FULL, [3])) == {"a": "mode", "v": ["full", [3]]}
    assert json.loads(wire.encode_server_error("bad")) == {"type": "error", "data": "bad"}
    assert json.loads(wire.encode_server_message({"x": 1})) == {"type": "message", "data": {"x": 1}}


def test_parse_client_message_valid_messages_parse() -> None:
    assert wire.parse_client_message(wire.encode_subscribe([1, 2])) == wire.ClientMessage(
        "subscribe", (1, 2)
    )
    assert wire.parse_client_message(b'{"a":"mode","v":["ltp",[5]]}') == wire.ClientMessage(
        "mode", (5,), Mode.LTP
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{not json", "not JSON"),
        ('{"a":"buy","v":[1]}', "unknown action 'buy'"),
        ('{"a":"subscribe","v":["1"]}', "tokens must be a list"),
        ('{"a":"subscribe","v":[true]}', "tokens must be a list"),
        ('{"a":"mode","v":["deep",[1]]}', "unknown mode 'deep'"),
        ('{"a":"mode","v":["full"]}', r"must be \[mode, \[tokens\]\]"),
        ("[1]", 'must be an object with "a"'),
    ],
)
def test_parse_client_message_bad_input_raises_reason(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        wire.parse_client_message(text)


def test_parse_server_text_passes_order_updates_through() -> None:
    text = '{"type":"order","data":{"order_id":"1"}}'
    assert wire.parse_server_text(text) == wire.ServerText("order", {"order_id": "1"})
    assert wire.parse_server_text(wire.encode_server_error("e")) == wire.ServerText("error", "e")
    with pytest.raises(ValueError, match='string "type"'):
        wire.parse_server_text('{"data":1}')


def test_decode_frame_uniform_full_frame_with_bad_packet_keeps_the_others() -> None:
    # Arrange: three full packets (the fast path), the middle one on an unknown segment.
    packet, _ = _capture("full")
    bad = struct.pack(">I", 1594 << 8 | 10) + packet[4:]
    # Act
    result = wire.decode_frame(wire.encode_frame([packet, bad, packet]), ts_recv=TS_RECV)
    # Assert
    assert [(t.token, t.ltp, t.volume) for t in result.ticks] == [(1594, 1573.7, 1192471)] * 2
    assert [r.reason for r in result.rejects] == ["bad_exchange"]
    assert result.packets == 3


def test_decode_frame_same_size_mixed_lengths_uses_generic_path() -> None:
    # Arrange: quote + ltp + an 80-byte packet: the byte size of a frame of three quotes.
    quote, _ = _capture("quote")
    frame = wire.encode_frame([quote, _ltp_packet(7, 5), b"\x00" * 80])
    assert len(frame) == len(wire.encode_frame([quote] * 3))
    # Act
    result = wire.decode_frame(frame, ts_recv=TS_RECV)
    # Assert
    assert [t.ltp for t in result.ticks] == [1573.15, 0.05]
    assert [r.reason for r in result.rejects] == ["unknown_length"]


def test_decode_frame_quote_packet_without_timestamp_takes_given_exchange_clock() -> None:
    from tickstream.feeds.kite import wire as kw
    from tickstream.model import Depth, DepthLevel
    from tickstream.model import Mode as _Mode
    from tickstream.model import Tick as _Tick

    quote = _Tick(
        exchange="NSE",
        token=2885,
        symbol="RELIANCE",
        source="kite",
        ts_exchange=1,
        ts_recv=1,
        ltp=2456.75,
        ltq=1,
        atp=2450.0,
        volume=10,
        total_buy_qty=5,
        total_sell_qty=6,
        open=2440.0,
        high=2460.0,
        low=2430.0,
        close=2445.0,
        mode=_Mode.QUOTE,
    )
    full = kw.encode_packet(
        _Tick(
            exchange="NSE",
            token=1594,
            symbol="INFY",
            source="kite",
            ts_exchange=1_763_700_000 * 10**9,
            ts_recv=1,
            ltp=1573.7,
            ltq=1,
            atp=1570.0,
            volume=10,
            total_buy_qty=5,
            total_sell_qty=6,
            open=1560.0,
            high=1580.0,
            low=1550.0,
            close=1567.8,
            oi=0,
            oi_day_high=0,
            oi_day_low=0,
            ts_last_trade=1_763_700_000 * 10**9,
            mode=_Mode.FULL,
            depth=Depth(
                bids=tuple(DepthLevel(1573.6, 10, 1) for _ in range(5)),
                asks=tuple(DepthLevel(1573.8, 10, 1) for _ in range(5)),
            ),
        ),
        _Mode.FULL,
    )
    frame = kw.encode_frame([kw.encode_packet(quote, _Mode.QUOTE), full])
    sim_now = 1_795_149_000 * 10**9
    res = kw.decode_frame(frame, ts_recv=1_795_236_907 * 10**9, ts_exchange_default=sim_now)
    assert [t.ts_exchange for t in res.ticks] == [sim_now, 1_763_700_000 * 10**9]
    assert all(t.ts_recv == 1_795_236_907 * 10**9 for t in res.ticks)
    plain = kw.decode_frame(frame, ts_recv=1_795_236_907 * 10**9)
    assert plain.ticks[0].ts_exchange == 1_795_236_907 * 10**9
