"""tickstream.consumer against a real Redis: streams, groups, pub/sub, info, and the example."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

import pytest

from tickstream.bus.redis_bus import RedisBus
from tickstream.consumer import TICKS_CHANNEL, TickConsumer, create_redis_consumer
from tickstream.model import Tick

from conformance.bus_suite import make_tick

# A consumer that hangs (a read waiting on a dead connection) fails here fast, not at 300 s.
pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parents[2]
_T = TypeVar("_T")


async def wait_for(received: list[Tick], n: int, s: float = 10.0) -> None:
    end = time.monotonic() + s
    while len(received) < n and time.monotonic() < end:
        await asyncio.sleep(0.02)


def tick(i: int, symbol: str) -> Tick:
    t = make_tick(i)
    return Tick(**{f: getattr(t, f) for f in t.__struct_fields__} | {"symbol": symbol})


async def connected(publisher: RedisBus, url: str, **kwargs: str) -> TickConsumer:
    consumer = create_redis_consumer(url, stream_prefix=publisher.stream_prefix, **kwargs)
    await consumer.connect()
    return consumer


async def step(what: str, aw: Awaitable[_T], s: float = 20.0) -> _T:
    """``await aw``; a step that hangs fails the test naming the step (not a bare timeout)."""
    try:
        async with asyncio.timeout(s):
            return await aw
    except TimeoutError:
        pytest.fail(f"{what} did not finish within {s:g}s")


async def test_consumer_symbols_get_only_new_ticks_of_their_symbols(
    publisher: RedisBus, redis_url: str
) -> None:
    before = [tick(0, "INFY")]  # published before subscribing: not delivered
    await step("publish before subscribing", publisher.publish_stream_batch(before))
    consumer = await step("connect", connected(publisher, redis_url))
    received: list[Tick] = []
    consumer.add_message_handler(received.append)
    try:
        await step("subscribe", consumer.subscribe_to_multiple_symbols(["INFY", "TCS"]))
        after = [tick(1, "INFY"), tick(2, "SBIN"), tick(3, "TCS")]
        await step("publish after subscribing", publisher.publish_stream_batch(after))
        await wait_for(received, 2)
    finally:
        await step("disconnect", consumer.disconnect())

    assert sorted((t.symbol, t.seq) for t in received) == [("INFY", 1), ("TCS", 3)]


async def test_consumer_group_async_handler_failure_leaves_entry_for_redelivery(
    publisher: RedisBus, redis_url: str
) -> None:
    consumer = await connected(publisher, redis_url, group="g", consumer_name="c1")
    seen: list[Tick] = []

    async def handler(t: Tick) -> None:
        seen.append(t)
        if t.seq == 1:
            raise ValueError("boom")

    consumer.add_message_handler(handler)
    await consumer.subscribe_to_symbol("INFY")
    await publisher.publish_stream_batch([tick(0, "INFY"), tick(1, "INFY")])
    await wait_for(seen, 2)
    info = await consumer.get_stream_info("INFY")
    await consumer.disconnect()

    assert [t.seq for t in seen] == [0, 1]
    assert consumer.handler_errors == 1
    assert info["length"] == 2
    assert [(g["name"], g["pending"], g["lag"]) for g in info["groups"]] == [("g", 1, 0)]


async def test_consumer_all_symbols_via_pubsub(publisher: RedisBus, redis_url: str) -> None:
    consumer = await connected(publisher, redis_url)
    received: list[Tick] = []
    consumer.add_message_handler(received.append)
    await consumer.subscribe_to_all_symbols()

    await publisher.publish_many(TICKS_CHANNEL, [tick(5, "INFY"), tick(6, "TCS")])
    await wait_for(received, 2)
    await consumer.disconnect()

    assert [(t.symbol, t.seq) for t in received] == [("INFY", 5), ("TCS", 6)]


async def test_consumer_latest_tick_and_info_of_missing_stream(
    publisher: RedisBus, redis_url: str
) -> None:
    consumer = await connected(publisher, redis_url)
    await publisher.publish_stream_batch([tick(7, "INFY"), tick(8, "INFY")])

    latest = await consumer.get_latest_tick("INFY")
    missing = await consumer.get_latest_tick("NOPE")
    info = await consumer.get_stream_info("NOPE")
    await consumer.disconnect()

    assert latest == tick(8, "INFY")
    assert missing is None
    assert info == {"stream": f"{publisher.stream_prefix}NOPE", "length": 0, "groups": []}


async def test_consumer_example_script_prints_latest_tick(
    publisher: RedisBus, redis_url: str
) -> None:
    await publisher.publish_stream_batch([tick(9, "RELIANCE")])
    script = REPO / "examples" / "redis_consumer.py"
    args = ["--url", redis_url, "--stream-prefix", publisher.stream_prefix, "--seconds", "0.2"]

    out = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, str(script), *args, "RELIANCE"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == "RELIANCE: 1 entries, latest ltp 2457.2"
