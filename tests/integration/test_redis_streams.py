"""Per-symbol streams with consumer groups: pending first, XAUTOCLAIM takeover, dead letters."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import msgspec
import pytest

from tickstream.bus.redis_bus import RedisBus
from tickstream.bus.streams import StreamEntry, StreamGroupReader
from tickstream.model import Tick

from conformance.bus_suite import make_tick


@pytest.fixture
async def bus(redis_url: str) -> AsyncIterator[RedisBus]:
    prefix = f"test:{uuid.uuid4().hex[:8]}:mds:"
    b = RedisBus(redis_url, stream_prefix=prefix, stream_maxlen=1000)
    await b.start()
    yield b
    keys = [k async for k in b.client.scan_iter(match=f"{prefix}*")]
    if keys:
        await b.client.delete(*keys)
    await b.close()


async def read_until(reader: StreamGroupReader, n: int, rounds: int = 50) -> list[StreamEntry]:
    out: list[StreamEntry] = []
    for _ in range(rounds):
        if len(out) >= n:
            break
        out.extend(await reader.read())
    return out


async def test_streams_group_reader_delivers_each_tick_once_in_order(bus: RedisBus) -> None:
    ticks = [make_tick(i) for i in range(300)]
    reader = bus.group_reader(["RELIANCE"], "g", "c1", count=100, block_ms=50)
    await reader.start()

    await bus.publish_stream_batch(ticks)
    got = await read_until(reader, 300)
    await reader.ack(got)

    assert [e.value for e in got] == ticks
    assert await reader.read() == []
    assert reader.stats()["acked"] == 300


async def test_streams_restarted_consumer_reads_own_pending_before_new(bus: RedisBus) -> None:
    await bus.publish_stream_batch([make_tick(i) for i in range(10)])
    first = bus.group_reader(["RELIANCE"], "g", "c1", count=4, block_ms=50)
    await first.start()
    unacked = await first.read()  # delivered, then the process "crashes"
    await bus.publish_stream_batch([make_tick(i) for i in range(10, 12)])

    again = bus.group_reader(["RELIANCE"], "g", "c1", count=4, block_ms=50)
    await again.start()
    got = await read_until(again, 12)

    assert [e.value.seq for e in unacked] == [0, 1, 2, 3]
    assert [e.value.seq for e in got] == list(range(12))


async def test_streams_consumer_killed_before_ack_entries_claimed_by_another(
    bus: RedisBus,
) -> None:
    await bus.publish_stream_batch([make_tick(i) for i in range(20)])
    dead = bus.group_reader(["RELIANCE"], "g", "dead", count=20, block_ms=50)
    await dead.start()
    taken = await dead.read()  # read, never acked: the consumer is killed here
    alive = bus.group_reader(["RELIANCE"], "g", "alive", claim_idle_ms=200, block_ms=50)
    await alive.start()

    await asyncio.sleep(0.3)
    claimed = await read_until(alive, 20)
    await alive.ack(claimed)

    assert len(taken) == 20
    assert [e.value.seq for e in claimed] == list(range(20))
    assert alive.stats()["claimed"] == 20
    await alive.refresh_info()
    assert alive.stats()["pending"] == 0


async def test_streams_entry_delivered_too_often_goes_to_dead_letter(bus: RedisBus) -> None:
    dlq = f"{bus.stream_prefix}dead_letter"
    await bus.publish_stream_batch([make_tick(1)])
    readers = [
        bus.group_reader(
            ["RELIANCE"],
            "g",
            f"c{i}",
            claim_idle_ms=50,
            max_deliveries=2,
            block_ms=20,
            dead_letter=dlq,
        )
        for i in range(4)
    ]
    for r in readers:
        await r.start()

    deliveries = 0
    for r in readers:  # each consumer takes the entry over and "crashes" before acking
        await asyncio.sleep(0.1)
        deliveries += len(await read_until(r, 1, rounds=3))

    dead = await bus.client.xrange(dlq)
    assert deliveries == 2
    assert len(dead) == 1
    fields = dead[0][1]
    assert fields[b"reason"] == b"max_deliveries"
    assert msgspec.json.decode(fields[b"data"], type=Tick) == make_tick(1)
    await readers[-1].refresh_info()
    assert readers[-1].stats()["pending"] == 0


async def test_streams_undecodable_entry_is_dead_lettered_not_delivered(bus: RedisBus) -> None:
    dlq = f"{bus.stream_prefix}dead_letter"
    stream = f"{bus.stream_prefix}RELIANCE"
    reader = bus.group_reader(["RELIANCE"], "g", "c", block_ms=20, dead_letter=dlq)
    await reader.start()
    await bus.client.xadd(stream, {"data": b"{not json"})
    await bus.publish_stream_batch([make_tick(2)])

    got = await read_until(reader, 1)

    assert [e.value for e in got] == [make_tick(2)]
    dead = await bus.client.xrange(dlq)
    assert [f[b"reason"] for _, f in dead] == [b"undecodable"]


async def test_streams_maxlen_trims_approximately(bus: RedisBus) -> None:
    await bus.publish_stream_batch([make_tick(i) for i in range(3000)])

    length = await bus.client.xlen(f"{bus.stream_prefix}RELIANCE")

    assert 1000 <= length < 3000
