"""Client queues (drop oldest, counted), message assembly and the hub's fan-out, without sockets."""

from __future__ import annotations

import json

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from tickstream.bus.memory import MemoryBus
from tickstream.model import Candle, Instrument, Interval, Mode, Status, Tick
from tickstream.pipeline.engine import TOPIC_ENRICHED, TOPIC_TICKS
from tickstream.serve.fanout import KIND_CANDLE, KIND_TICK, Client, ClientQueue, Hub, WsLimits
from tickstream.serve.metrics import flatten
from tickstream.serve.resolve import Resolver
from tickstream.serve.wire import tick_json
from tickstream.storage.ringbuffer import MemoryRingBuffer

INSTS = [
    Instrument(exchange="NSE", token=2885, symbol="RELIANCE"),
    Instrument(exchange="NSE", token=1594, symbol="INFY"),
]


def tick(token: int, i: int, status: Status = Status.LIVE) -> Tick:
    return Tick(
        exchange="NSE",
        token=token,
        symbol="X",
        source="sim",
        ts_exchange=i,
        ts_recv=i,
        ltp=100.0 + i,
        status=status,
    )


@settings(max_examples=80)
@given(maxsize=st.integers(1, 50), n=st.integers(0, 200))
def test_client_queue_keeps_newest_and_counts_dropped(maxsize: int, n: int) -> None:
    q = ClientQueue(maxsize)
    for i in range(n):
        q.put(KIND_TICK, str(i).encode())
    items, dropped = q.take(10_000)
    assert [int(d) for _, d in items] == list(range(max(0, n - maxsize), n))
    assert dropped == max(0, n - maxsize) == q.dropped_total
    assert q.take(10) == ([], 0)


def test_tick_json_always_has_status_and_mode() -> None:
    live = json.loads(tick_json(tick(1, 1)))
    stale = json.loads(tick_json(tick(1, 1, Status.STALE)))
    assert (live["status"], live["mode"]) == ("LIVE", "ltp")
    assert (stale["status"], stale["mode"]) == ("STALE", "ltp")
    full = json.loads(tick_json(msgspec.structs.replace(tick(1, 2), mode=Mode.FULL)))
    assert full["mode"] == "full"


def test_next_messages_control_then_marker_then_grouped_data() -> None:
    client = Client(WsLimits(queue_max=2))
    for i in range(3):
        client.queue.put(KIND_TICK, tick_json(tick(2885, i)))
    client.queue.put(KIND_CANDLE, b'{"c":1}')
    client.say({"type": "subscribed"})
    out = [json.loads(m) for m in client.next_messages(100)]
    assert [m["type"] for m in out] == ["subscribed", "dropped", "ticks", "candles"]
    assert out[1]["count"] == 2
    assert [t["ltp"] for t in out[2]["data"]] == [102.0]
    assert out[3]["data"] == [{"c": 1}]


def test_next_messages_hold_keeps_data_behind_backfill() -> None:
    client = Client(WsLimits())
    client.queue.put(KIND_TICK, tick_json(tick(2885, 1)))
    client.hold = 1
    assert client.next_messages(100) == []
    client.hold = 0
    assert [json.loads(m)["type"] for m in client.next_messages(100)] == ["ticks"]


def test_say_refuses_when_control_backlog_full() -> None:
    client = Client(WsLimits(control_max=2))
    assert [client.say({"n": i}) for i in range(3)] == [True, True, False]


async def test_hub_fans_out_only_subscribed_instruments() -> None:
    bus, ring = MemoryBus(), MemoryRingBuffer(10)
    await ring.push([tick(2885, 0)])
    hub = Hub(bus, ring, Resolver(INSTS))
    a, b = Client(hub.limits), Client(hub.limits)
    hub.attach(a)
    hub.attach(b)
    await hub.subscribe(a, ["RELIANCE"])
    await hub.subscribe(b, ["INFY"])
    a.control.clear()
    b.control.clear()
    hub._fan_ticks([tick(2885, 1), tick(1594, 2), tick(2885, 3)])
    got_a = json.loads(a.next_messages(100)[0])["data"]
    got_b = json.loads(b.next_messages(100)[0])["data"]
    assert [t["ltp"] for t in got_a] == [101.0, 103.0]
    assert [t["ltp"] for t in got_b] == [102.0]
    hub.detach(a)
    hub._fan_ticks([tick(2885, 4)])
    assert len(a.queue) == 0
    assert hub.stats()["clients"] == 1


async def test_hub_backfill_comes_from_ring_after_reply() -> None:
    bus, ring = MemoryBus(), MemoryRingBuffer(10)
    await ring.push([tick(2885, i) for i in range(5)])
    hub = Hub(bus, ring, Resolver(INSTS))
    client = Client(hub.limits)
    await hub.subscribe(client, ["NSE:2885"], backfill=3)
    msgs = [json.loads(m) for m in client.next_messages(100)]
    assert [m["type"] for m in msgs] == ["subscribed", "backfill"]
    assert [t["ltp"] for t in msgs[1]["ticks"]] == [102.0, 103.0, 104.0]


async def test_hub_candles_filtered_by_channel_and_interval() -> None:
    hub = Hub(MemoryBus(), MemoryRingBuffer(10), Resolver(INSTS))
    client = Client(hub.limits)
    client.channels = {"candles"}
    client.intervals = frozenset({"1m"})
    await hub.subscribe(client, ["RELIANCE"])
    client.control.clear()

    def mk(iv: Interval) -> Candle:
        return Candle(
            exchange="NSE",
            token=2885,
            symbol="RELIANCE",
            interval=iv,
            start=0,
            open=1,
            high=2,
            low=0.5,
            close=1.5,
        )

    hub._fan_ticks([tick(2885, 1)])
    hub._fan_candles([mk(Interval.S1), mk(Interval.M1)])
    out = [json.loads(m) for m in client.next_messages(100)]
    assert [m["type"] for m in out] == ["candles"]
    assert [c["interval"] for c in out[0]["data"]] == ["1m"]


async def test_hub_candle_backfill_recent_closed_candles_of_interval() -> None:
    hub = Hub(MemoryBus(), MemoryRingBuffer(10), Resolver(INSTS), WsLimits(candle_history=2))
    hub._fan_candles(
        [_candle(Interval.M1, start) for start in (60, 120, 180)] + [_candle(Interval.S1, 5)]
    )
    client = Client(hub.limits)
    client.channels = {"candles"}
    client.intervals = frozenset({"1m"})
    await hub.subscribe(client, ["RELIANCE"])
    out = [json.loads(m) for m in client.next_messages(100)]
    assert [m["type"] for m in out] == ["subscribed", "candles_backfill"]
    assert [(c["interval"], c["start"]) for c in out[1]["data"]] == [("1m", 120), ("1m", 180)]


def _candle(iv: Interval, start: int) -> Candle:
    return Candle(
        exchange="NSE",
        token=2885,
        symbol="RELIANCE",
        interval=iv,
        start=start,
        open=1,
        high=2,
        low=0.5,
        close=1.5,
    )


async def test_hub_pump_reads_bus_topics() -> None:
    bus = MemoryBus()
    hub = Hub(bus, MemoryRingBuffer(10), Resolver(INSTS))
    await hub.start()
    client = Client(hub.limits)
    await hub.subscribe(client, ["RELIANCE"], backfill=0)
    client.control.clear()
    client.wake.clear()
    await bus.publish_many(TOPIC_TICKS, [tick(2885, 7)])
    await client.wake.wait()
    await hub.stop()
    assert hub.topics == (TOPIC_TICKS, TOPIC_ENRICHED)
    assert [json.loads(m)["data"][0]["ltp"] for m in client.next_messages(10)] == [107.0]
    assert hub.counts["ticks_in"] == 1


def test_flatten_nested_counters_and_reason_dicts() -> None:
    data = {"pipeline": {"ticks_in": 5, "quarantined": {"bad_price": 2}, "name": "x"}, "up": True}
    assert sorted(flatten(data)) == [
        ("pipeline_quarantined", "bad_price", 2.0),
        ("pipeline_ticks_in", None, 5.0),
        ("up", None, 1.0),
    ]
