"""Redis bus: pub/sub topics (JSON) behind the Bus protocol, plus per-symbol streams.

``publish`` is PUBLISH of the value's JSON on the topic (``market:ticks``, ``market:candles``,
``market:candles:enriched``), which is what the seed's consumers read. Pub/sub carries no key:
a subscriber's ``Message.key`` is the decoded value's own ``key`` (``exchange:token``) when it has
one. Each subscription owns one pub/sub connection and a reader task feeding a bounded buffer;
``subscribe`` returns only after Redis confirmed the subscription, so nothing published after it
returns is missed. A silent pub/sub connection is probed with PING and replaced when it stays
silent (``pubsub_liveness_s``); reconnects are counted in ``stats()``. Pub/sub is live-only: what
is published while Redis is down is not replayed (the streams are the durable path).

``publish_stream_batch(ticks)`` appends ticks to ``market_data_stream:{SYMBOL}`` through
:class:`tickstream.bus.streams.StreamPublisher`; :meth:`RedisBus.group_reader` builds the matching
consumer-group reader.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

from redis import exceptions as rexc
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from tickstream.bus._subscription import BufferedSubscription
from tickstream.bus.base import BusClosedError, Message, Overflow
from tickstream.bus.envelope import decode_value, encode_value
from tickstream.bus.streams import (
    DEFAULT_PREFIX,
    RETRYABLE,
    Backoff,
    StreamGroupReader,
    StreamPublisher,
)
from tickstream.bus.streams_common import ReconnectCounter
from tickstream.model import Tick

__all__ = ["RedisBus", "RedisSubscription"]

log = logging.getLogger(__name__)

_CONFIRM_TIMEOUT_S = 10.0
_REPLY_TIMEOUT_S = 10.0
# redis-py retries a failed or timed-out command (10 times by default): at most (1 + 3) x 10 s
_RETRIES = 3


class RedisSubscription(BufferedSubscription):
    """One pub/sub channel on its own connection, decoded into ``type_``.

    A pub/sub connection that stays silent for ``liveness_s / 2`` is sent a PING; if nothing (not
    even the PONG) arrives within ``liveness_s`` the connection is presumed dead (half-open, or a
    server that no longer answers) and replaced: redis-py re-subscribes on the new connection.
    Every reconnect is counted (``reconnects``) and logged. A reader that fails for a reason other
    than the connection stores it in ``failure`` and closes the subscription, so an ``async for``
    over it ends instead of waiting forever.
    """

    def __init__(
        self,
        bus: RedisBus,
        topic: str,
        type_: type[Any] | None,
        maxsize: int,
        overflow: Overflow,
    ) -> None:
        super().__init__(topic, maxsize, overflow, on_close=bus._unsubscribe)
        self._type = type_
        self._pubsub: PubSub = bus.client.pubsub()
        self._task: asyncio.Task[None] | None = None
        self._liveness_s = bus.pubsub_liveness_s
        self._poll_s = min(1.0, self._liveness_s / 4)
        self._last_rx = 0.0
        self._pinged = False
        self._reconnects = ReconnectCounter(f"pub/sub {topic}")
        self.errors = 0
        self.read_errors = 0
        self.failure: BaseException | None = None

    @property
    def reconnects(self) -> int:
        return self._reconnects.count

    async def _start(self) -> None:
        await self._pubsub.subscribe(self.topic)
        async with asyncio.timeout(_CONFIRM_TIMEOUT_S):
            while True:
                msg = await self._pubsub.get_message(timeout=1.0)
                if msg is not None and msg["type"] == "subscribe":
                    break
        if self._pubsub.connection is not None:
            self._reconnects.attach(self._pubsub.connection)
        self._last_rx = time.monotonic()
        self._task = asyncio.create_task(self._run(), name=f"redis-sub:{self.topic}")

    async def _run(self) -> None:
        backoff = Backoff()
        while not self.closed:
            try:
                raw = await self._poll()
            except RETRYABLE as exc:
                await self._lost(exc, backoff.next_delay())
                continue
            except Exception as exc:
                await self._fail(exc)
                return
            backoff.reset()
            if raw is not None and raw["type"] == "message":
                await self._deliver(raw["data"])

    async def _poll(self) -> dict[str, Any] | None:
        """The next pub/sub reply (any type), or None; raises when the connection went silent."""
        raw: dict[str, Any] | None = await self._pubsub.get_message(timeout=self._poll_s)
        now = time.monotonic()
        if raw is not None:
            self._last_rx, self._pinged = now, False
            return raw
        silent = now - self._last_rx
        if silent >= self._liveness_s:
            raise rexc.TimeoutError(f"no reply on the pub/sub connection for {silent:.1f}s")
        if silent >= self._liveness_s / 2 and not self._pinged:
            self._pinged = True
            await self._pubsub.ping()
        return None

    async def _lost(self, exc: BaseException, delay: float) -> None:
        """Drop the connection; the next poll reconnects and re-subscribes (counted there)."""
        self.read_errors += 1
        log.warning(
            "pub/sub %s lost its connection (%s); reconnect in %.2fs", self.topic, exc, delay
        )
        conn = self._pubsub.connection
        if conn is not None:
            with contextlib.suppress(*RETRYABLE):
                await conn.disconnect(nowait=True)
        await asyncio.sleep(delay)
        self._last_rx, self._pinged = time.monotonic(), False

    async def _fail(self, exc: Exception) -> None:
        self.failure = exc
        log.error("pub/sub reader of %s failed; subscription closed", self.topic, exc_info=exc)
        self._task = None  # this task is ending: close() must not wait for it
        await self.close()

    async def _deliver(self, data: bytes) -> None:
        try:
            value = decode_value(data, self._type)
        except ValueError as exc:  # msgspec errors derive from ValueError
            self.errors += 1
            log.warning("undecodable message on %s: %s", self.topic, exc)
            return
        await self.put(Message(self.topic, value, getattr(value, "key", None)))

    def stats(self) -> dict[str, int]:
        return super().stats() | {"reconnects": self.reconnects, "read_errors": self.read_errors}

    async def _stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._reconnects.detach()
        with contextlib.suppress(*RETRYABLE):
            await self._pubsub.unsubscribe(self.topic)
        await self._pubsub.aclose()  # type: ignore[no-untyped-call]  # untyped in redis-py


class RedisBus:
    """Bus over Redis pub/sub, with per-symbol streams for at-least-once consumers."""

    name = "redis"

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        stream_prefix: str = DEFAULT_PREFIX,
        stream_maxlen: int = 100_000,
        stream_buffer_max: int = 200_000,
        client: Redis | None = None,
        pubsub_liveness_s: float = 10.0,
    ) -> None:
        # socket_timeout bounds every reply wait (blocking reads use BLOCK <= a few seconds), so a
        # half-open connection surfaces as an error instead of a hang; fewer retries than
        # redis-py's 10 keep one command to a server that stopped answering from taking minutes.
        # Pub/sub waits for messages without a reply deadline; its liveness probe (see
        # RedisSubscription) bounds it instead.
        if pubsub_liveness_s <= 0:
            raise ValueError(f"pubsub_liveness_s must be > 0, got {pubsub_liveness_s}")
        self.pubsub_liveness_s = pubsub_liveness_s
        self.client: Redis = client or Redis.from_url(
            url,
            socket_connect_timeout=5.0,
            socket_timeout=_REPLY_TIMEOUT_S,
            socket_keepalive=True,
            health_check_interval=15,
            retry=Retry(ExponentialWithJitterBackoff(cap=1.0, base=0.05), _RETRIES),
        )
        self.stream_prefix = stream_prefix
        self.streams = StreamPublisher(
            self.client,
            prefix=stream_prefix,
            maxlen=stream_maxlen,
            buffer_max=stream_buffer_max,
        )
        self._subs: dict[str, list[RedisSubscription]] = {}
        self._readers: list[StreamGroupReader] = []
        self._published: dict[str, int] = {}
        self._closed = False

    async def start(self) -> None:
        await self.client.ping()
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise BusClosedError("publish on a closed bus")

    async def publish(self, topic: str, value: Any, key: str | None = None) -> None:
        self._check_open()
        await self.client.publish(topic, encode_value(value))
        self._published[topic] = self._published.get(topic, 0) + 1

    async def publish_many(
        self, topic: str, values: Sequence[Any], keys: Sequence[str | None] | None = None
    ) -> None:
        self._check_open()
        if keys is not None and len(keys) != len(values):
            raise ValueError(f"{len(keys)} keys for {len(values)} values")
        if not values:
            return
        async with self.client.pipeline(transaction=False) as pipe:
            for value in values:
                pipe.publish(topic, encode_value(value))
            await pipe.execute()
        self._published[topic] = self._published.get(topic, 0) + len(values)

    async def publish_stream_batch(self, ticks: Sequence[Tick]) -> None:
        """Append ticks to their per-symbol streams (buffered; survives Redis restarts)."""
        self._check_open()
        await self.streams.publish(ticks)

    async def subscribe(
        self,
        topic: str,
        *,
        type_: type[Any] | None = None,
        maxsize: int = 10_000,
        overflow: Overflow = Overflow.DROP_OLDEST,
    ) -> RedisSubscription:
        if self._closed:
            raise BusClosedError("subscribe on a closed bus")
        sub = RedisSubscription(self, topic, type_, maxsize, overflow)
        await sub._start()
        self._subs.setdefault(topic, []).append(sub)
        return sub

    async def _unsubscribe(self, sub: BufferedSubscription) -> None:
        subs = self._subs.get(sub.topic)
        if subs and sub in subs:
            subs.remove(sub)
        if isinstance(sub, RedisSubscription):
            await sub._stop()

    def group_reader(
        self, symbols: Sequence[str], group: str, consumer: str, **kwargs: Any
    ) -> StreamGroupReader:
        """A consumer-group reader over these symbols' streams; its lag shows in stats()."""
        streams = [f"{self.stream_prefix}{s}" for s in symbols]
        reader = StreamGroupReader(self.client, streams, group, consumer, **kwargs)
        self._readers.append(reader)
        return reader

    def stats(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "published": dict(self._published),
            "subscriptions": {t: [s.stats() for s in subs] for t, subs in self._subs.items()},
            "streams": self.streams.stats(),
            "groups": [r.stats() for r in self._readers],
        }

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for subs in list(self._subs.values()):
            for sub in list(subs):
                await sub.close()
        self._subs.clear()
        try:
            await self.streams.flush(timeout=5.0)
        except (TimeoutError, rexc.RedisError) as exc:
            log.warning("closing with %d stream ticks unsent: %s", self.streams.buffered, exc)
        await self.streams.close()
        await self.client.aclose()
