"""Consumer library and Redis pub/sub resilience without a server: fakes stand in for redis-py.

Covers what the integration tests cannot force: a pub/sub connection that goes silent (PING, then
replacement and re-subscription, counted), a reader that fails for another reason (the
subscription closes with the cause), a consumer task that dies (``run()`` raises), an entry that
does not decode (skipped, counted), and URL redaction for logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections import deque
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, cast

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickstream.bus.base import Overflow
from tickstream.bus.redis_bus import RedisBus, RedisSubscription
from tickstream.bus.streams import StreamGroupReader
from tickstream.bus.streams_common import FIELD, ReconnectCounter, describe_failure
from tickstream.consumer import ConsumerError, TickConsumer, redact_url
from tickstream.model import Tick

from conformance.bus_suite import make_tick


class FakeConnection:
    """The connect-callback part of a redis-py connection."""

    def __init__(self, events: list[str]) -> None:
        self.events = events
        self.connected = True
        self._callbacks: list[weakref.WeakMethod[Any]] = []

    def register_connect_callback(self, cb: Any) -> None:
        self._callbacks.append(weakref.WeakMethod(cb))

    def deregister_connect_callback(self, cb: Any) -> None:
        self._callbacks.remove(weakref.WeakMethod(cb))

    def reconnect(self) -> None:
        self.connected = True
        self.events.append("reconnect")
        for ref in self._callbacks:
            cb = ref()
            if cb is not None:
                cb(self)

    async def disconnect(self, nowait: bool = False) -> None:
        self.connected = False
        self.events.append("disconnect")


class FakePubSub:
    """Answers nothing unless told to; reconnects (and confirms the subscription) on demand."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.connection = FakeConnection(self.events)
        self.replies: deque[dict[str, Any]] = deque([{"type": "subscribe", "data": 1}])
        self.error: Exception | None = None

    async def subscribe(self, topic: str) -> None:
        self.events.append("subscribe")

    async def get_message(
        self, ignore_subscribe_messages: bool = False, timeout: float = 0.0
    ) -> dict[str, Any] | None:
        if self.error is not None:
            raise self.error
        if not self.connection.connected:
            self.connection.reconnect()
            self.replies.append({"type": "subscribe", "data": 1})
        if self.replies:
            return self.replies.popleft()
        await asyncio.sleep(timeout)
        return None

    async def ping(self) -> None:
        self.events.append("ping")

    async def unsubscribe(self, topic: str) -> None:
        self.events.append("unsubscribe")

    async def aclose(self) -> None:
        self.events.append("aclose")


async def start_sub(liveness_s: float) -> tuple[RedisSubscription, FakePubSub]:
    pubsub = FakePubSub()

    async def unsubscribe(sub: Any) -> None:
        await sub._stop()

    bus: Any = SimpleNamespace(
        client=SimpleNamespace(pubsub=lambda: pubsub),
        pubsub_liveness_s=liveness_s,
        _unsubscribe=unsubscribe,
    )
    sub = RedisSubscription(bus, "market:ticks", Tick, 100, Overflow.DROP_OLDEST)
    await sub._start()
    return sub, pubsub


async def until(pred: Callable[[], bool], s: float = 5.0) -> None:
    end = time.monotonic() + s
    while not pred() and time.monotonic() < end:
        await asyncio.sleep(0.01)


async def test_pubsub_silent_connection_pinged_replaced_and_counted() -> None:
    # Arrange
    sub, pubsub = await start_sub(liveness_s=0.2)

    # Act: nothing arrives, not even the PONG
    await until(lambda: "reconnect" in pubsub.events)
    stats = sub.stats()
    pubsub.replies.append({"type": "message", "data": msgspec.json.encode(make_tick(3))})
    msg = await sub.get(timeout=5)
    await sub.close()

    # Assert: probe first, then drop, then a new (re-subscribed) connection; delivery resumes
    assert pubsub.events[:4] == ["subscribe", "ping", "disconnect", "reconnect"]
    assert (stats["reconnects"], stats["read_errors"]) == (1, 1)
    assert msg is not None and msg.value == make_tick(3)
    assert pubsub.events[-2:] == ["unsubscribe", "aclose"]


async def test_pubsub_reader_unexpected_error_closes_subscription_with_cause() -> None:
    # Arrange
    sub, pubsub = await start_sub(liveness_s=10.0)
    boom = RuntimeError("pubsub connection not set")

    # Act
    pubsub.error = boom
    got = await sub.get(timeout=5)

    # Assert: the reader iterating it sees the end, the cause is kept, the connection released
    assert got is None
    assert sub.closed
    assert sub.failure is boom
    assert pubsub.events[-2:] == ["unsubscribe", "aclose"]


def test_reconnect_counter_counts_only_while_attached() -> None:
    # Arrange
    conn = FakeConnection([])
    counter = ReconnectCounter("reader")

    # Act
    counter.attach(conn)
    conn.reconnect()
    conn.reconnect()
    counter.detach()
    conn.reconnect()

    # Assert
    assert counter.count == 2


async def test_consumer_run_task_died_raises_consumer_error_with_cause() -> None:
    # Arrange
    consumer = TickConsumer("redis://127.0.0.1:1/0")
    boom = ValueError("reader crashed")

    async def dies() -> None:
        raise boom

    async def lives() -> None:
        await asyncio.sleep(3600)

    consumer._spawn(lives(), "ok")
    consumer._spawn(dies(), "bad")

    # Act
    with pytest.raises(ConsumerError) as caught:
        await consumer.run()  # would wait forever if the failure were silent
    stats = consumer.stats()
    await consumer.disconnect()

    # Assert
    assert caught.value.__cause__ is boom
    assert stats["failures"] == [repr(boom)]


async def test_consumer_run_healthy_tasks_returns_after_seconds() -> None:
    # Arrange
    consumer = TickConsumer("redis://127.0.0.1:1/0")
    ran: list[str] = []

    async def lives() -> None:
        ran.append("started")
        await asyncio.sleep(3600)

    consumer._spawn(lives(), "ok")

    # Act
    await consumer.run(0.05)
    stats = consumer.stats()
    await consumer.disconnect()

    # Assert
    assert ran == ["started"]
    assert stats["failures"] == []


async def test_consumer_undecodable_entries_skipped_and_counted() -> None:
    # Arrange
    consumer = TickConsumer("redis://127.0.0.1:1/0")
    seen: list[Tick] = []
    consumer.add_message_handler(seen.append)
    good = make_tick(5)

    # Act
    await consumer._dispatch_entry("s", "1-0", {b"other": b"x"})
    await consumer._dispatch_entry("s", "2-0", {FIELD: b"{not json"})
    await consumer._dispatch_entry("s", "3-0", {FIELD: msgspec.json.encode(good)})

    # Assert
    assert seen == [good]
    assert consumer.stats()["undecodable"] == 2


def test_consumer_stall_timeout_not_positive_rejected() -> None:
    with pytest.raises(ValueError, match="stall_timeout_s"):
        TickConsumer("redis://127.0.0.1:1/0", stall_timeout_s=0)


def test_group_reader_block_zero_rejected() -> None:
    with pytest.raises(ValueError, match="block_ms"):
        StreamGroupReader(cast(Any, None), ["s"], "g", "c", block_ms=0)


def test_describe_failure_bare_deadline_timeout_says_connection_presumed_dead() -> None:
    assert describe_failure(TimeoutError(), 2.5) == "no reply within 2.5s, connection presumed dead"
    assert describe_failure(ConnectionError("reset"), 2.5) == "ConnectionError('reset')"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://:s3cret@10.0.0.5:6379/0", "redis://:***@10.0.0.5:6379/0"),
        ("rediss://app:s3cret@cache:6380/2", "rediss://app:***@cache:6380/2"),
        ("redis://127.0.0.1:6390/0", "redis://127.0.0.1:6390/0"),
        ("redis://app@127.0.0.1:6390/0", "redis://app@127.0.0.1:6390/0"),
    ],
)
def test_redact_url_password_masked_rest_kept(url: str, expected: str) -> None:
    assert redact_url(url) == expected


@settings(max_examples=100, deadline=None)
@given(password=st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789-_.~", min_size=4))
def test_redact_url_any_password_never_in_output(password: str) -> None:
    redacted = redact_url(f"redis://user:{password}@db.internal:6379/0")

    assert redacted == "redis://user:***@db.internal:6379/0"


async def test_redis_bus_client_reply_wait_and_retries_bounded() -> None:
    # Arrange / Act: no connection is made until a command runs
    bus = RedisBus("redis://127.0.0.1:1/0")
    kwargs = bus.client.connection_pool.connection_kwargs

    # Assert: (1 + 3 retries) x 10 s at worst, not redis-py's 11 x the socket timeout
    assert (kwargs["socket_timeout"], kwargs["retry"].get_retries()) == (10.0, 3)
    await bus.client.aclose()


async def test_consumer_disconnect_reader_absorbing_a_cancel_still_stopped() -> None:
    # Arrange: a reader whose first cancel is absorbed (as when it races the read's own deadline)
    consumer = TickConsumer("redis://127.0.0.1:1/0")
    cancels: list[int] = []

    async def absorbs_first_cancel() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancels.append(1)
        await asyncio.sleep(3600)  # carries on reading, as a retry loop would

    consumer._spawn(absorbs_first_cancel(), "reader")
    await asyncio.sleep(0)
    task = consumer._tasks[0]

    # Act
    await asyncio.wait_for(consumer.disconnect(), timeout=5)

    # Assert: asked again, and stopped
    assert cancels == [1]
    assert task.cancelled()
    assert consumer._tasks == []


async def test_consumer_disconnect_reader_ignoring_cancels_gives_up_after_stall_bound(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Arrange: a reader that never stops; disconnect must still return
    consumer = TickConsumer("redis://127.0.0.1:1/0", consumer_name="c9", stall_timeout_s=0.6)
    stop = asyncio.Event()

    async def never_stops() -> None:
        while not stop.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(3600)

    consumer._spawn(never_stops(), "stubborn")
    await asyncio.sleep(0)
    task = consumer._tasks[0]

    # Act
    await asyncio.wait_for(consumer.disconnect(), timeout=5)
    stop.set()
    task.cancel()
    await task

    # Assert
    assert "tick consumer c9: 1 reader task(s) did not stop within 0.6s" in caplog.text
