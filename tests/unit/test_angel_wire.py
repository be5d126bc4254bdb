"""Angel One wire codec: round trips, best-five sides, rejects and text messages."""

from __future__ import annotations

import json
import struct

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wire_strategies import angel_cases

from tickstream.feeds.angelone import wire
from tickstream.feeds.angelone.wire import AngelMode, TokenGroup
from tickstream.model import Depth, DepthLevel, Mode, Tick

TS_MS = 1_700_000_000_123
TS_RECV = 1_700_000_000_500_000_000
_HEAD = struct.Struct("<BB25sqqq")


def _tick(**fields: object) -> Tick:
    base: dict[str, object] = {
        "exchange": "NSE", "token": 3045, "symbol": "SBIN-EQ", "source": "sim",
        "ts_exchange": TS_MS * 1_000_000, "ts_recv": TS_RECV, "seq": 11, "ltp": 612.35,
    }  # fmt: skip
    return Tick(**(base | fields))  # type: ignore[arg-type]


def _snap_tick() -> Tick:
    return _tick(
        ltq=10, atp=611.2, volume=12345, total_buy_qty=100, total_sell_qty=200, open=600.0,
        high=615.5, low=599.05, close=605.0, oi=0, upper_circuit=665.5, lower_circuit=544.5,
        high_52w=700.0, low_52w=400.0, ts_last_trade=1_700_000_000 * 10**9,
        depth=Depth(bids=(DepthLevel(612.3, 5, 1),), asks=(DepthLevel(612.4, 7, 2),)),
    )  # fmt: skip


def _decode(data: bytes) -> tuple[list[Tick], list[str]]:
    result = wire.decode_packet(data, ts_recv=TS_RECV)
    assert result.packets == 1 and not result.heartbeat
    return result.ticks, [r.reason for r in result.rejects]


# -------------------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("mode", list(AngelMode))
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_decode_packet_encoded_tick_roundtrips_equal(mode: AngelMode, data: st.DataObject) -> None:
    # Arrange
    tick, exchange_type, token = data.draw(angel_cases(mode))
    packet = wire.encode_packet(tick, mode, exchange_type=exchange_type, token=token)
    # Act
    result = wire.decode_packet(packet, ts_recv=tick.ts_recv)
    # Assert
    assert len(packet) == wire.PACKET_SIZES[mode]
    assert result.rejects == []
    assert result.ticks == [tick]


def test_decode_packet_snap_quote_every_field() -> None:
    # Arrange
    packet = wire.encode_packet(_snap_tick(), AngelMode.SNAP_QUOTE, exchange_type=1, token="3045")
    # Act
    (tick,), rejects = _decode(packet)
    # Assert
    assert rejects == []
    assert (tick.exchange, tick.token, tick.symbol, tick.source) == (
        "NSE",
        3045,
        "3045",
        "angelone",
    )
    assert (tick.seq, tick.ts_exchange, tick.ts_recv) == (11, TS_MS * 1_000_000, TS_RECV)
    assert (tick.ltp, tick.ltq, tick.atp, tick.volume) == (612.35, 10, 611.2, 12345)
    assert (tick.total_buy_qty, tick.total_sell_qty) == (100, 200)
    assert (tick.open, tick.high, tick.low, tick.close) == (600.0, 615.5, 599.05, 605.0)
    assert (tick.change, tick.change_pct) == (612.35 - 605.0, (612.35 - 605.0) * 100 / 605.0)
    assert (tick.upper_circuit, tick.lower_circuit) == (665.5, 544.5)
    assert (tick.high_52w, tick.low_52w, tick.oi) == (700.0, 400.0, 0)
    assert tick.ts_last_trade == 1_700_000_000 * 10**9
    assert (tick.bid, tick.bid_qty, tick.ask, tick.ask_qty) == (612.3, 5, 612.4, 7)
    assert tick.mode is Mode.FULL


# ------------------------------------------------------------------------------- best-five sides


def _with_best5(rows: list[tuple[int, int, int, int]]) -> bytes:
    packet = bytearray(wire.encode_packet(_snap_tick(), AngelMode.SNAP_QUOTE, exchange_type=1,
                                          token="3045"))  # fmt: skip
    for i, row in enumerate(rows):
        struct.pack_into("<HqqH", packet, 147 + 20 * i, *row)
    return bytes(packet)


def test_decode_packet_best5_flag1_is_buy_whatever_the_order() -> None:
    # Arrange: sell levels (flag 0) first, then buy levels (flag 1), as a feed may send them.
    rows = [(0, 7, 61240, 2), (0, 9, 61245, 1)] + [(0, 0, 0, 0)] * 3
    rows += [(1, 5, 61230, 1), (1, 4, 61225, 3)] + [(1, 0, 0, 0)] * 3
    # Act
    (tick,), _ = _decode(_with_best5(rows))
    # Assert
    assert tick.depth == Depth(
        bids=(DepthLevel(612.3, 5, 1), DepthLevel(612.25, 4, 3)),
        asks=(DepthLevel(612.4, 7, 2), DepthLevel(612.45, 9, 1)),
    )
    assert (tick.bid, tick.ask) == (612.3, 612.4)


def test_decode_packet_best5_unknown_flag_rejects_out_of_range() -> None:
    ticks, rejects = _decode(_with_best5([(2, 5, 61230, 1)]))
    assert (ticks, rejects) == ([], ["out_of_range"])


# ------------------------------------------------------------------------------------------ rejects


def _ltp(
    mode: int = 1, et: int = 1, token: bytes = b"3045", ts: int = TS_MS, ltp: int = 100
) -> bytes:
    return _HEAD.pack(mode, et, token, 1, ts, ltp)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (_ltp(mode=9), "unknown_mode"),
        (_ltp(mode=0), "unknown_mode"),
        (_ltp()[:50], "truncated_packet"),
        (_ltp(mode=3), "truncated_packet"),
        (_ltp() + b"\x00", "unknown_length"),
        (_ltp(et=6), "bad_exchange"),
        (_ltp(token=b"30A5"), "bad_token"),
        (_ltp(token=b""), "bad_token"),
        (_ltp(ltp=-5), "out_of_range"),
        (_ltp(ts=631_152_000_000), "out_of_range"),
    ],
)
def test_decode_packet_bad_packet_rejects_with_reason(data: bytes, reason: str) -> None:
    ticks, rejects = _decode(data)
    assert (ticks, rejects) == ([], [reason])


def test_decode_packet_nan_total_buy_quantity_rejects() -> None:
    packet = bytearray(wire.encode_packet(_snap_tick(), AngelMode.QUOTE, exchange_type=1,
                                          token="3045"))  # fmt: skip
    struct.pack_into("<d", packet, 75, float("nan"))
    assert _decode(bytes(packet)) == ([], ["out_of_range"])


def test_decode_packet_zero_exchange_timestamp_falls_back_to_recv() -> None:
    (tick,), _ = _decode(_ltp(ts=0))
    assert (tick.ts_exchange, tick.ltp, tick.seq) == (TS_RECV, 1.0, 1)


def test_decode_packet_index_tokens_map_to_indices_only_on_cash() -> None:
    (nifty,), _ = _decode(_ltp(et=1, token=b"99926000", ltp=2_345_065))
    (sensex,), _ = _decode(_ltp(et=3, token=b"99919000"))
    (fo,), _ = _decode(_ltp(et=2, token=b"99926000"))
    assert (nifty.exchange, nifty.token, nifty.ltp) == ("INDICES", 99926000, 23450.65)
    assert (sensex.exchange, fo.exchange) == ("INDICES", "NFO")


def test_decode_packet_currency_prices_use_1e7_divisor() -> None:
    (tick,), _ = _decode(_ltp(et=13, token=b"1234", ltp=834_512_500))
    assert (tick.exchange, tick.ltp) == ("CDS", 83.45125)


def test_decode_packet_depth20_has_no_ltp_or_seq() -> None:
    # Arrange
    bids = tuple(DepthLevel(100 + i / 20, i + 1, i % 3) for i in range(20))
    tick = _tick(depth=Depth(bids=bids, asks=()))
    # Act
    (out,), _ = _decode(wire.encode_packet(tick, AngelMode.DEPTH, exchange_type=1, token="3045"))
    # Assert
    assert out.depth is not None and out.depth.bids == bids and out.depth.asks == ()
    assert (out.ltp, out.seq, out.mode, out.bid, out.ask) == (None, None, Mode.FULL, 100.0, None)


@settings(max_examples=400, deadline=None)
@given(data=st.binary(max_size=500) | st.sampled_from([51, 123, 379, 443]).flatmap(
    lambda n: st.binary(min_size=n, max_size=n).map(lambda b: bytes([b[0] % 5]) + b[1:])
))  # fmt: skip
def test_decode_packet_random_bytes_never_raise(data: bytes) -> None:
    result = wire.decode_packet(data, ts_recv=TS_RECV)
    assert len(result.ticks) + len(result.rejects) == 1
    assert all(r.reason and r.detail for r in result.rejects)


# ------------------------------------------------------------------------------------------ encode


def test_encode_packet_missing_fields_raise_naming_them() -> None:
    with pytest.raises(ValueError, match="lacks ltq, atp, volume"):
        wire.encode_packet(_tick(), AngelMode.QUOTE, exchange_type=1, token="3045")
    with pytest.raises(ValueError, match="lacks depth"):
        no_depth = msgspec.structs.replace(_snap_tick(), depth=None)
        wire.encode_packet(no_depth, AngelMode.SNAP_QUOTE, exchange_type=1, token="3045")


def test_encode_packet_bad_exchange_type_or_token_raises() -> None:
    with pytest.raises(ValueError, match="bad exchange_type 6"):
        wire.encode_packet(_tick(), AngelMode.LTP, exchange_type=6, token="3045")
    with pytest.raises(ValueError, match="bad exchange_type"):
        wire.encode_packet(_tick(), AngelMode.LTP, exchange_type=1, token="9" * 26)


def test_exchange_type_for_maps_canonical_exchanges() -> None:
    assert [wire.exchange_type_for(e) for e in ("NSE", "NFO", "BSE", "BFO", "MCX", "NCO", "CDS")] == [
        1, 2, 3, 4, 5, 7, 13,
    ]  # fmt: skip
    with pytest.raises(ValueError, match="indices use 1"):
        wire.exchange_type_for("INDICES")


# ----------------------------------------------------------------------------------- text messages


def test_encode_request_matches_sdk_shape_and_parses_back() -> None:
    # Arrange
    groups = [TokenGroup(1, ("3045", "2885")), TokenGroup(5, ("234230",))]
    # Act
    text = wire.encode_request("abc123", 1, AngelMode.SNAP_QUOTE, groups)
    # Assert
    assert json.loads(text) == {
        "correlationID": "abc123",
        "action": 1,
        "params": {"mode": 3, "tokenList": [
            {"exchangeType": 1, "tokens": ["3045", "2885"]},
            {"exchangeType": 5, "tokens": ["234230"]},
        ]},
    }  # fmt: skip
    assert wire.parse_client_request(text) == wire.ClientRequest(
        "abc123", 1, AngelMode.SNAP_QUOTE, tuple(groups)
    )


def test_parse_client_request_without_correlation_id_parses() -> None:
    text = '{"action":0,"params":{"mode":1,"tokenList":[{"exchangeType":2,"tokens":["1"]}]}}'
    req = wire.parse_client_request(text)
    assert (req.correlation_id, req.action, req.mode) == ("", 0, AngelMode.LTP)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("nope", "bad request"),
        ('{"action":2,"params":{"mode":1,"tokenList":[{"exchangeType":1,"tokens":["1"]}]}}',
         "action must be"),
        ('{"action":1,"params":{"mode":7,"tokenList":[{"exchangeType":1,"tokens":["1"]}]}}',
         "mode must be 1..4"),
        ('{"action":1,"params":{"mode":1,"tokenList":[{"exchangeType":6,"tokens":["1"]}]}}',
         "unknown exchangeType 6"),
        ('{"action":1,"params":{"mode":4,"tokenList":[{"exchangeType":2,"tokens":["1"]}]}}',
         "DEPTH"),
        ('{"action":1,"params":{"mode":1,"tokenList":[]}}', "tokenList is empty"),
        ('{"action":1,"params":{"mode":1,"tokenList":[{"exchangeType":1,"tokens":[]}]}}',
         "has no tokens"),
        ('{"action":1,"params":{"mode":1,"tokenList":[{"exchangeType":1,"tokens":[3]}]}}',
         "bad request"),
    ],
)  # fmt: skip
def test_parse_client_request_bad_input_raises_reason(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        wire.parse_client_request(text)


def test_encode_error_and_heartbeat_texts() -> None:
    assert json.loads(wire.encode_error("abc", "E1002", "Invalid Request Payload.")) == {
        "correlationID": "abc",
        "errorCode": "E1002",
        "errorMessage": "Invalid Request Payload.",
    }
    assert (wire.PING, wire.PONG) == ("ping", "pong")
