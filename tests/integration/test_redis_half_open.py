"""Connections that stop answering without closing (half-open): the consumer must not hang.

The consumer reaches Redis through a loopback TCP proxy. ``freeze()`` makes every connection
open at that moment a black hole — the sockets stay open, bytes sent are swallowed, nothing comes
back — which is what a client holding a connection to a crashed or restarted server (or across a
dead NAT/firewall entry) sees. Connections made afterwards work, unless ``new_too`` (a server that
accepts but does not answer: stopped, paused, stuck) until ``thaw()``.

Before the fix a pub/sub subscriber waited on such a connection forever, a stream reader for the
30 s socket timeout, and one command to an unresponsive server (``connect()``'s PING) took 11 x
30 s — redis-py retries a timed-out command 10 times — far past the 300 s test timeout. Now each
replaces its connection within its stall bound, counts it and resumes, or raises.
Redis itself is never touched.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit

import pytest

from tickstream.bus.redis_bus import RedisBus
from tickstream.consumer import TICKS_CHANNEL, TickConsumer, create_redis_consumer
from tickstream.model import Tick

from conformance.bus_suite import make_tick

pytestmark = pytest.mark.timeout(60)

STALL_S = 1.5  # the consumers' stall bound: detection takes about 1 s BLOCK + 1.5 s


class BlackHoleProxy:
    """Loopback TCP proxy to one target whose current connections can be frozen."""

    def __init__(self, port: int) -> None:
        self._target = port
        self._frozen: set[int] = set()
        self._freeze_new = False
        self._pairs: list[tuple[int, asyncio.StreamWriter, asyncio.StreamWriter]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def freeze(self, *, new_too: bool = False) -> None:
        """Every connection open now stops forwarding in both directions (and stays open)."""
        self._frozen.update(pid for pid, _, _ in self._pairs)
        self._freeze_new = new_too

    def thaw(self) -> None:
        """Connections made from now on work again (frozen ones stay frozen)."""
        self._freeze_new = False

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target)
        pid = len(self._pairs)
        self._pairs.append((pid, writer, up_writer))
        if self._freeze_new:
            self._frozen.add(pid)
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(pid, src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, pid: int, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        while data := await src.read(65536):
            if pid not in self._frozen:
                dst.write(data)
                await dst.drain()
        dst.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for _, a, b in self._pairs:
            a.close()
            b.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


@pytest.fixture
async def proxy(redis_url: str) -> AsyncIterator[BlackHoleProxy]:
    p = BlackHoleProxy(urlsplit(redis_url).port or 6379)
    await p.start()
    yield p
    await p.close()


def tick(i: int, symbol: str) -> Tick:
    t = make_tick(i)
    return Tick(**{f: getattr(t, f) for f in t.__struct_fields__} | {"symbol": symbol})


async def until(pred: Callable[[], bool], s: float) -> None:
    end = time.monotonic() + s
    while not pred() and time.monotonic() < end:
        await asyncio.sleep(0.05)


async def consumer_via(
    proxy: BlackHoleProxy, publisher: RedisBus, seen: list[tuple[str, int]], **kw: str
) -> TickConsumer:
    url = f"redis://127.0.0.1:{proxy.port}/0"
    consumer = create_redis_consumer(
        url, stream_prefix=publisher.stream_prefix, stall_timeout_s=STALL_S, **kw
    )
    await consumer.connect()
    consumer.add_message_handler(lambda t: seen.append((t.symbol, t.seq)))
    return consumer


@pytest.mark.parametrize("group", [None, "g"], ids=["follow", "group"])
async def test_half_open_stream_reader_reconnects_and_resumes_from_last_id(
    proxy: BlackHoleProxy, publisher: RedisBus, group: str | None
) -> None:
    # Arrange: the reader saw tick 1, then its connection goes silent
    seen: list[tuple[str, int]] = []
    kw = {"group": group, "consumer_name": "c1"} if group else {}
    consumer = await consumer_via(proxy, publisher, seen, **kw)
    await consumer.subscribe_to_multiple_symbols(["INFY"])
    await publisher.publish_stream_batch([tick(1, "INFY")])
    await until(lambda: len(seen) == 1, 10)
    try:
        # Act: written while the reader's connection is a black hole
        proxy.freeze()
        await publisher.publish_stream_batch([tick(2, "INFY"), tick(3, "INFY")])
        await until(lambda: len(seen) >= 3, 12)  # about 2.5 s once the stall is detected
        stats = consumer.stats()
    finally:
        await consumer.disconnect()

    # Assert: nothing skipped, nothing twice, the replacement counted
    assert seen == [("INFY", 1), ("INFY", 2), ("INFY", 3)]
    assert stats["reconnects"] >= 1
    assert stats["read_errors"] >= 1
    assert stats["failures"] == []


async def test_half_open_pubsub_probes_and_resubscribes(
    proxy: BlackHoleProxy, publisher: RedisBus
) -> None:
    # Arrange
    seen: list[tuple[str, int]] = []
    consumer = await consumer_via(proxy, publisher, seen)
    await consumer.subscribe_to_all_symbols()
    await publisher.publish(TICKS_CHANNEL, tick(1, "ITC"))
    await until(lambda: len(seen) == 1, 10)
    sent: list[int] = []
    try:
        # Act: silence, then publish until the re-subscribed connection hears one
        proxy.freeze()
        end = time.monotonic() + 12
        while len(seen) < 2 and time.monotonic() < end:
            sent.append(100 + len(sent))
            await publisher.publish(TICKS_CHANNEL, tick(sent[-1], "ITC"))
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.3)  # a straggler would show as a gap or duplicate
        stats = consumer.stats()
    finally:
        await consumer.disconnect()

    # Assert: after the reconnect, every tick published from then on, in order
    heard = seen[1:]
    assert seen[0] == ("ITC", 1)
    assert heard != [] and heard == [("ITC", s) for s in sent[-len(heard) :]]
    assert stats["reconnects"] >= 1
    assert stats["failures"] == []


async def test_half_open_unresponsive_server_connect_raises_within_stall_bound(
    proxy: BlackHoleProxy, publisher: RedisBus
) -> None:
    # Arrange: the server accepts connections but never answers
    proxy.freeze(new_too=True)
    consumer = create_redis_consumer(f"redis://127.0.0.1:{proxy.port}/0", stall_timeout_s=STALL_S)

    # Act / Assert: an error, not minutes of silent retries
    with pytest.raises(TimeoutError, match=r"connect: no reply from Redis within 1\.5s"):
        await consumer.connect()
    await consumer.disconnect()


async def test_half_open_server_unresponsive_then_back_follower_resumes(
    proxy: BlackHoleProxy, publisher: RedisBus
) -> None:
    # Arrange
    seen: list[tuple[str, int]] = []
    consumer = await consumer_via(proxy, publisher, seen)
    await consumer.subscribe_to_multiple_symbols(["INFY"])
    await publisher.publish_stream_batch([tick(1, "INFY")])
    await until(lambda: len(seen) == 1, 10)
    try:
        # Act: nothing answers for a while (every read fails, loudly), then the server is back
        proxy.freeze(new_too=True)
        await publisher.publish_stream_batch([tick(2, "INFY")])
        await until(lambda: consumer.stats()["read_errors"] >= 2, 15)
        failing = consumer.stats()
        proxy.thaw()
        await publisher.publish_stream_batch([tick(3, "INFY")])
        await until(lambda: len(seen) >= 3, 15)
        stats = consumer.stats()
    finally:
        await consumer.disconnect()

    # Assert
    assert seen == [("INFY", 1), ("INFY", 2), ("INFY", 3)]
    assert failing["read_errors"] >= 2 and failing["failures"] == []
    assert stats["reconnects"] >= 1  # counted once the new connection answered
