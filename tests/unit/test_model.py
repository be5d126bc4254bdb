from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tickstream.model import (
    Candle,
    Depth,
    DepthLevel,
    Indicators,
    Instrument,
    Interval,
    Mode,
    Status,
    Tick,
    decode_json,
    decode_msgpack,
    encode_json,
    encode_msgpack,
    from_ticks,
    to_ticks,
)

ns = st.integers(min_value=0, max_value=4_102_444_800 * 10**9)
paise = st.integers(min_value=1, max_value=10**9)
opt_price = st.none() | paise.map(lambda p: p / 100)
opt_int = st.none() | st.integers(min_value=0, max_value=2**40)
levels = st.lists(
    st.builds(
        DepthLevel,
        paise.map(lambda p: p / 100),
        st.integers(0, 10**7),
        st.none() | st.integers(0, 5000),
    ),
    max_size=5,
).map(tuple)

ticks = st.builds(
    Tick,
    exchange=st.sampled_from(["NSE", "NFO", "BSE", "CDS", "MCX", "INDICES"]),
    token=st.integers(1, 2**31),
    symbol=st.text(min_size=1, max_size=30),
    source=st.sampled_from(["kite", "angelone", "sim", "replay"]),
    ts_exchange=ns,
    ts_recv=ns,
    seq=st.none() | st.integers(0, 2**62),
    ltp=opt_price,
    ltq=opt_int,
    atp=opt_price,
    volume=opt_int,
    bid=opt_price,
    ask=opt_price,
    open=opt_price,
    high=opt_price,
    low=opt_price,
    close=opt_price,
    change_pct=st.none() | st.floats(-100, 100, allow_nan=False),
    oi=opt_int,
    upper_circuit=opt_price,
    ts_last_trade=st.none() | ns,
    depth=st.none() | st.builds(Depth, levels, levels),
    mode=st.sampled_from(list(Mode)),
    status=st.sampled_from(list(Status)),
)


@given(ticks)
def test_tick_json_round_trip_equal(tick: Tick) -> None:
    assert decode_json(encode_json(tick), Tick) == tick


@given(ticks)
def test_tick_msgpack_round_trip_equal(tick: Tick) -> None:
    assert decode_msgpack(encode_msgpack(tick), Tick) == tick


@given(paise)
def test_price_from_paise_prints_exactly_as_sent(p: int) -> None:
    price = p / 100
    expected = Decimal(p) / 100
    assert Decimal(repr(price)) == expected
    assert Decimal(encode_json(price).decode()) == expected


def test_price_2456_75_never_becomes_2456_7499() -> None:
    tick = Tick(
        exchange="NSE",
        token=2885,
        symbol="RELIANCE",
        source="kite",
        ts_exchange=1,
        ts_recv=1,
        ltp=245675 / 100,
    )
    assert b'"ltp":2456.75' in encode_json(tick)


@given(st.integers(0, 10**9), st.sampled_from([0.05, 0.01, 0.0025, 0.25, 1.0, 0.1]))
def test_ticks_round_trip_on_grid(n: int, tick_size: float) -> None:
    price = from_ticks(n, tick_size)
    assert to_ticks(price, tick_size) == n


def test_tick_unsent_fields_are_none_not_zero() -> None:
    tick = Tick(
        exchange="NSE", token=1, symbol="X", source="kite", ts_exchange=5, ts_recv=6, ltp=10.5
    )
    assert tick.volume is None and tick.bid is None and tick.oi is None and tick.depth is None
    assert msgspec.json.decode(encode_json(tick)) == {
        "exchange": "NSE",
        "token": 1,
        "symbol": "X",
        "source": "kite",
        "ts_exchange": 5,
        "ts_recv": 6,
        "ltp": 10.5,
    }


def test_tick_is_frozen_and_keyed_by_exchange_token() -> None:
    tick = Tick(exchange="NFO", token=43854, symbol="NIFTY", source="sim", ts_exchange=1, ts_recv=1)
    assert tick.key == "NFO:43854"
    with pytest.raises(AttributeError):
        tick.ltp = 1.0  # type: ignore[misc]


def test_tick_decode_rejects_wrong_types_with_field_path() -> None:
    with pytest.raises(msgspec.ValidationError, match=r"\$\.token"):
        decode_json(
            b'{"exchange":"NSE","token":"x","symbol":"A","source":"s","ts_exchange":1,"ts_recv":1}',
            Tick,
        )


def test_candle_with_indicators_round_trip() -> None:
    candle = Candle(
        exchange="NSE",
        token=2885,
        symbol="RELIANCE",
        interval=Interval.M5,
        start=10**18,
        open=1.05,
        high=2.5,
        low=0.95,
        close=2.0,
        volume=7,
        ticks=3,
        partial=True,
        indicators=Indicators(ema_9=1.5, supertrend_direction=-1),
    )
    assert decode_json(encode_json(candle), Candle) == candle
    assert decode_msgpack(encode_msgpack(candle), Candle) == candle
    assert msgspec.json.decode(encode_json(candle))["interval"] == "5m"


def test_instrument_round_trip_and_key() -> None:
    inst = Instrument(
        exchange="NFO",
        token=43854,
        symbol="NIFTY26AUG24000CE",
        kite_token=11226626,
        angel_token="43854",
        lot_size=65,
        tick_size=0.05,
        expiry="2026-08-25",
        strike=24000.0,
        instrument_type="CE",
    )
    assert decode_json(encode_json(inst), Instrument) == inst
    assert inst.key == "NFO:43854"


@pytest.mark.parametrize(
    ("text", "interval", "seconds"),
    [
        ("1s", Interval.S1, 1),
        ("1m", Interval.M1, 60),
        ("minute", Interval.M1, 60),
        ("5minute", Interval.M5, 300),
        ("15m", Interval.M15, 900),
        ("1h", Interval.H1, 3600),
        ("day", Interval.D1, 86400),
    ],
)
def test_interval_parse_known_names(text: str, interval: Interval, seconds: int) -> None:
    assert Interval.parse(text) is interval
    assert interval.seconds == seconds
    assert interval.nanos == seconds * 10**9


def test_interval_parse_unknown_names_allowed_values() -> None:
    with pytest.raises(ValueError, match="expected one of 1s, 1m, 5m, 15m, 1h, 1d"):
        Interval.parse("7m")
