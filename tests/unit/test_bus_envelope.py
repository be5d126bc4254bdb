"""Event envelope codec, deterministic ids, Kafka topic names, and the buffered subscription."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickstream.bus._subscription import BufferedSubscription
from tickstream.bus.base import Message, Overflow
from tickstream.bus.envelope import (
    decode_envelope,
    decode_value,
    encode_envelope,
    encode_value,
    event_id,
    event_type,
)
from tickstream.bus.kafka_bus import kafka_topic
from tickstream.bus.streams import Backoff
from tickstream.model import Candle, Depth, DepthLevel, Interval, Mode, Status, Tick

prices = st.integers(min_value=1, max_value=10_000_000).map(lambda p: p / 100)
levels = st.builds(DepthLevel, prices, st.integers(0, 10**7), st.none() | st.integers(0, 500))

ticks = st.builds(
    Tick,
    exchange=st.sampled_from(["NSE", "BSE", "NFO", "MCX", "INDICES"]),
    token=st.integers(1, 2**31),
    symbol=st.text(min_size=1, max_size=30),
    source=st.sampled_from(["kite", "angelone", "sim"]),
    ts_exchange=st.integers(0, 2**62),
    ts_recv=st.integers(0, 2**62),
    seq=st.none() | st.integers(0, 2**40),
    ltp=st.none() | prices,
    volume=st.none() | st.integers(0, 2**40),
    oi=st.none() | st.integers(0, 2**40),
    depth=st.none() | st.builds(Depth, st.tuples(levels, levels), st.tuples(levels)),
    mode=st.sampled_from(list(Mode)),
    status=st.sampled_from(list(Status)),
)


@settings(max_examples=200, deadline=None)
@given(tick=ticks, source=st.text(max_size=20), ts=st.integers(0, 2**62))
def test_envelope_tick_roundtrip_keeps_value_and_header(tick: Tick, source: str, ts: int) -> None:
    data = encode_envelope(tick, source=source, ts=ts)

    header, value = decode_envelope(data, Tick)

    assert value == tick
    assert (header.type, header.id, header.source, header.ts) == (
        "tick",
        event_id(tick),
        source,
        ts,
    )


@settings(max_examples=100, deadline=None)
@given(tick=ticks)
def test_envelope_data_is_the_plain_value_json(tick: Tick) -> None:
    doc = msgspec.json.decode(encode_envelope(tick, source="s", ts=1))

    assert msgspec.json.encode(doc["data"]) == encode_value(tick)
    assert sorted(doc) == ["data", "id", "source", "ts", "type"]


def test_event_id_tick_same_content_same_id_other_volume_other_id() -> None:
    a = Tick(exchange="NSE", token=1, symbol="A", source="kite", ts_exchange=5, ts_recv=6, volume=9)
    b = Tick(exchange="NSE", token=1, symbol="A", source="kite", ts_exchange=5, ts_recv=7, volume=9)
    c = Tick(exchange="NSE", token=1, symbol="A", source="kite", ts_exchange=5, ts_recv=6, volume=8)

    assert event_id(a) == event_id(b) == "NSE:1:5:None:9"
    assert event_id(c) != event_id(a)


def test_event_id_candle_includes_interval_start_and_revision() -> None:
    candle = Candle(
        exchange="NSE", token=2885, symbol="RELIANCE", interval=Interval.M1, start=60,
        open=1.0, high=2.0, low=0.5, close=1.5, revision=2,
    )  # fmt: skip

    assert event_id(candle) == "NSE:2885:1m:60:2"
    assert event_type(candle) == "candle"


def test_encode_value_bytes_pass_through_and_decode_without_type_returns_bytes() -> None:
    assert encode_value(b"raw") == b"raw"
    assert decode_value(b'{"a":1}', None) == b'{"a":1}'
    assert event_type(b"x") == "bytes"
    assert len(event_id({"a": 1})) == 24


def test_envelope_candle_roundtrip_and_untyped_decode_returns_the_data_json() -> None:
    candle = Candle(
        exchange="NSE", token=2885, symbol="RELIANCE", interval=Interval.M5, start=300,
        open=1.0, high=2.0, low=0.5, close=1.5, volume=7, revision=1,
    )  # fmt: skip
    data = encode_envelope(candle, source="w1", ts=42)

    header, value = decode_envelope(data, Candle)
    raw_header, raw = decode_envelope(data, None)

    assert value == candle
    assert header == raw_header
    assert (header.type, header.id, header.source, header.ts) == (
        "candle", "NSE:2885:5m:300:1", "w1", 42
    )  # fmt: skip
    assert raw == encode_value(candle)


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b'{"type":"tick","id":"x","source":"s","ts":1}',  # no data
        b'{"type":"tick","id":"x","source":"s","ts":1,"data":{"exchange":"NSE"}}',  # not a Tick
        b'{"type":"tick","id":"x","source":"s","ts":"1","data":{}}',  # ts not an int
    ],
)
def test_decode_envelope_bad_record_raises_value_error(data: bytes) -> None:
    with pytest.raises(ValueError):
        decode_envelope(data, Tick)


def test_kafka_topic_colon_names_become_dots() -> None:
    assert kafka_topic("market:candles:enriched") == "market.candles.enriched"
    assert kafka_topic("raw_ticks") == "raw_ticks"


def test_backoff_delays_grow_then_stay_capped() -> None:
    backoff = Backoff(initial_s=0.1, max_s=1.0)

    delays = [backoff.next_delay() for _ in range(8)]

    assert 0.05 <= delays[0] <= 0.1
    assert all(0.5 <= d <= 1.0 for d in delays[4:])
    backoff.reset()
    assert backoff.next_delay() <= 0.1


@pytest.mark.parametrize(
    ("overflow", "kept", "dropped"),
    [(Overflow.DROP_OLDEST, [7, 8, 9], 7), (Overflow.DROP_NEWEST, [0, 1, 2], 7)],
)
async def test_buffered_subscription_overflow_policy_keeps_expected_items(
    overflow: Overflow, kept: list[int], dropped: int
) -> None:
    sub = BufferedSubscription("t", 3, overflow)

    for i in range(10):
        await sub.put(Message("t", i))

    assert [m.value for m in await sub.get_batch(10, timeout=0)] == kept
    assert sub.dropped == dropped
    assert sub.stats() == {"depth": 0, "dropped": dropped, "delivered": 3}


async def test_buffered_subscription_close_calls_hook_once_and_ends_iteration() -> None:
    closed: list[str] = []

    async def hook(sub: BufferedSubscription) -> None:
        closed.append(sub.topic)

    sub = BufferedSubscription("t", 3, Overflow.BLOCK, on_close=hook)
    await sub.close()
    await sub.close()

    assert [m async for m in sub] == []
    assert closed == ["t"]
    assert await sub.get(timeout=0) is None
