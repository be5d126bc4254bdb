"""tickstream.consumer: read live ticks from tickstream's Redis in a few lines.

>>> consumer = create_redis_consumer("redis://127.0.0.1:6379/0")
>>> await consumer.connect()
>>> consumer.add_message_handler(lambda tick: print(tick.symbol, tick.ltp))
>>> await consumer.subscribe_to_multiple_symbols(["RELIANCE", "INFY"])
>>> await consumer.run(seconds=10)      # or keep your own loop running
>>> await consumer.disconnect()

Two ways in:

* ``subscribe_to_symbol`` / ``subscribe_to_multiple_symbols`` read the per-symbol streams
  ``market_data_stream:{SYMBOL}``. Without ``group`` the consumer follows the streams live from
  the moment it subscribes, remembering the last entry id so a Redis restart leaves no hole. With
  ``group`` (and ``consumer_name``) it is a consumer-group member: at-least-once, an entry is
  acknowledged only after every handler returned without raising, a crashed member's entries are
  claimed by the others, and a poison entry ends in the dead-letter stream.
* ``subscribe_to_all_symbols`` listens to the pub/sub channel ``market:ticks`` (every instrument,
  live only, nothing replayed after a disconnect).

Handlers take one :class:`~tickstream.model.Tick` and may be plain functions or coroutines. A
handler that raises is logged; in group mode the entry is then left unacknowledged.

Nothing waits silently on a broken connection. Each stream subscription reads on its own
connection, and no read waits longer than its BLOCK plus ``stall_timeout_s``: a connection that
stops answering (Redis SIGKILLed and restarted, a half-open socket) is dropped and the read resumes
on a new one from the last entry id; the pub/sub subscription probes a silent connection with PING
and re-subscribes on a new one. Every reconnect is counted (``reconnects``, ``stats()``) and
logged (host and port only: the URL may hold a password). A subscription that stops for any other
reason is logged as an error and :meth:`TickConsumer.run` raises :class:`ConsumerError`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from redis.asyncio import Redis

from tickstream.bus.envelope import decode_value
from tickstream.bus.redis_bus import RedisBus, RedisSubscription
from tickstream.bus.streams import DEFAULT_PREFIX, FIELD, RETRYABLE, Backoff, StreamGroupReader
from tickstream.bus.streams_common import ReconnectCounter, describe_failure, redact_url, stream_key
from tickstream.model import Tick

__all__ = [
    "TICKS_CHANNEL",
    "ConsumerError",
    "Handler",
    "TickConsumer",
    "create_redis_consumer",
    "redact_url",
]

log = logging.getLogger(__name__)

TICKS_CHANNEL = "market:ticks"
Handler = Callable[[Tick], Awaitable[Any] | Any]
_BLOCK_MS = 1000  # XREAD / XREADGROUP BLOCK of the stream subscriptions
_T = TypeVar("_T")


class ConsumerError(RuntimeError):
    """A subscription of a :class:`TickConsumer` stopped for good (the cause is chained)."""


def create_redis_consumer(
    url: str = "redis://127.0.0.1:6379/0",
    *,
    group: str | None = None,
    consumer_name: str | None = None,
    stream_prefix: str = DEFAULT_PREFIX,
    stall_timeout_s: float = 10.0,
) -> TickConsumer:
    """A consumer for the tickstream Redis at ``url`` (call :meth:`TickConsumer.connect`)."""
    return TickConsumer(
        url,
        group=group,
        consumer_name=consumer_name,
        stream_prefix=stream_prefix,
        stall_timeout_s=stall_timeout_s,
    )


class TickConsumer:
    """Ticks from tickstream's Redis streams or pub/sub, dispatched to your handlers.

    ``stall_timeout_s`` bounds how long a read may wait beyond its BLOCK (and how long a pub/sub
    connection may stay silent) before its connection is replaced.
    """

    def __init__(
        self,
        url: str,
        *,
        group: str | None = None,
        consumer_name: str | None = None,
        stream_prefix: str = DEFAULT_PREFIX,
        stall_timeout_s: float = 10.0,
    ) -> None:
        if stall_timeout_s <= 0:
            raise ValueError(f"stall_timeout_s must be > 0, got {stall_timeout_s}")
        self._url = url
        self._group = group
        self._name = consumer_name or f"consumer-{id(self):x}"
        self._prefix = stream_prefix
        self._stall_s = stall_timeout_s
        self._bus: RedisBus | None = None
        self._handlers: list[Handler] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._symbols: set[str] = set()
        self._readers: list[tuple[Redis, ReconnectCounter]] = []
        self._subs: list[RedisSubscription] = []
        self._groups: list[StreamGroupReader] = []
        self.received = 0
        self.handler_errors = 0
        self.read_errors = 0
        self.undecodable = 0
        self.failures: list[BaseException] = []
        self._closed_reconnects = 0  # of the subscriptions ended by disconnect()

    @property
    def reconnects(self) -> int:
        """New connections made to replace broken ones, over every subscription."""
        live = sum(c.count for _, c in self._readers) + sum(s.reconnects for s in self._subs)
        return self._closed_reconnects + live

    def stats(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "handler_errors": self.handler_errors,
            "read_errors": self._read_errors(),
            "reconnects": self.reconnects,
            "undecodable": self.undecodable,
            "failures": [repr(e) for e in self.failures],
        }

    @property
    def client(self) -> Redis:
        if self._bus is None:
            raise RuntimeError("not connected: await consumer.connect() first")
        return self._bus.client

    async def connect(self) -> None:
        """Open the connection (and check it with PING; TimeoutError if Redis does not answer)."""
        self._bus = RedisBus(self._url, stream_prefix=self._prefix, pubsub_liveness_s=self._stall_s)
        try:
            await self._within("connect", self._bus.start())
        except BaseException:
            await self.disconnect()
            raise
        log.info("tick consumer %s connected to %s", self._name, redact_url(self._url))

    def add_message_handler(self, handler: Handler) -> None:
        """Call ``handler(tick)`` for every tick received (function or coroutine function)."""
        self._handlers.append(handler)

    async def subscribe_to_symbol(self, symbol: str) -> None:
        await self.subscribe_to_multiple_symbols([symbol])

    async def subscribe_to_multiple_symbols(self, symbols: Sequence[str]) -> None:
        """Follow these symbols' streams (one reader for the batch of symbols)."""
        new = [s for s in dict.fromkeys(symbols) if s not in self._symbols]
        if not new:
            return
        what = f"{'group' if self._group is not None else 'follow'}:{','.join(new)}"
        client = await self._within(what, self._dedicated_client(what))
        if self._group is not None:
            reader = StreamGroupReader(
                client,
                [stream_key(s, self._prefix) for s in new],
                self._group,
                self._name,
                block_ms=_BLOCK_MS,
                stall_timeout_s=self._stall_s,
            )
            await self._within(what, reader.start())
            self._groups.append(reader)
            self._spawn(self._group_loop(reader), what)
        else:
            cursors = await self._within(what, self._live_cursors(new))
            self._spawn(self._follow_loop(client, cursors), what)
        self._symbols.update(new)

    async def subscribe_to_all_symbols(self) -> None:
        """Every tick of every instrument, from the ``market:ticks`` pub/sub channel."""
        if self._bus is None:
            raise RuntimeError("not connected: await consumer.connect() first")
        subscribing = self._bus.subscribe(TICKS_CHANNEL, type_=Tick, maxsize=100_000)
        sub = await self._within(TICKS_CHANNEL, subscribing)
        self._subs.append(sub)

        async def loop() -> None:
            async for msg in sub:
                await self._dispatch(msg.value)
            if sub.failure is not None:  # closed by its reader, not by disconnect()
                raise ConsumerError(f"pub/sub {TICKS_CHANNEL} stopped") from sub.failure

        self._spawn(loop(), "all")

    async def get_latest_tick(self, symbol: str) -> Tick | None:
        """The newest tick in the symbol's stream, or None when there is none."""
        latest = self.client.xrevrange(stream_key(symbol, self._prefix), count=1)
        entries: Any = await self._within("get_latest_tick", latest)
        if not entries:
            return None
        value = decode_value(entries[0][1][FIELD], Tick)
        return value if isinstance(value, Tick) else None

    async def get_stream_info(self, symbol: str) -> dict[str, Any]:
        """Length, first/last entry ids and the consumer groups (pending, lag) of a stream."""
        key = stream_key(symbol, self._prefix)
        if not await self._within("get_stream_info", self.client.exists(key)):
            return {"stream": key, "length": 0, "groups": []}
        info: Any = await self._within("get_stream_info", self.client.xinfo_stream(key))
        groups: Any = await self._within("get_stream_info", self.client.xinfo_groups(key))

        def entry_id(entry: Any) -> str | None:
            return _text(entry[0]) if entry else None

        return {
            "stream": key,
            "length": int(info["length"]),
            "first_id": entry_id(info.get("first-entry")),
            "last_id": entry_id(info.get("last-entry")),
            "groups": [
                {
                    "name": _text(g["name"]),
                    "consumers": int(g["consumers"]),
                    "pending": int(g["pending"]),
                    "lag": int(g.get("lag") or 0),
                }
                for g in groups
            ],
        }

    async def run(self, seconds: float | None = None) -> None:
        """Let the subscriptions run for ``seconds`` (forever when None).

        Raises :class:`ConsumerError` as soon as a subscription has stopped for good."""
        self._raise_failure()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=seconds, return_when=asyncio.FIRST_EXCEPTION)
        elif seconds is not None:
            await asyncio.sleep(seconds)
        self._raise_failure()

    async def disconnect(self) -> None:
        await self._stop_tasks()
        self._tasks.clear()
        self._symbols.clear()
        self._closed_reconnects = self.reconnects
        self.read_errors = self._read_errors()
        for client, counter in self._readers:
            counter.detach()
            await client.aclose()
        self._readers.clear()
        self._subs.clear()
        self._groups.clear()
        if self._bus is not None:
            await self._bus.close()
            self._bus = None

    # ------------------------------------------------------------------------------ internals

    async def _stop_tasks(self) -> None:
        """Cancel the reader tasks and wait for them, asking again while any is still running
        (a cancel that races a read's own deadline can be absorbed); bounded by the stall time."""
        pending = set(self._tasks)
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self._stall_s
        while pending:
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=0.5)
            if pending and loop.time() >= give_up:
                log.error(
                    "tick consumer %s: %d reader task(s) did not stop within %gs; left cancelled",
                    self._name, len(pending), self._stall_s,
                )  # fmt: skip
                return

    async def _within(self, what: str, aw: Awaitable[_T]) -> _T:
        """``await aw``, or TimeoutError once Redis has not answered for ``stall_timeout_s``."""
        try:
            async with asyncio.timeout(self._stall_s):
                return await aw
        except TimeoutError as exc:
            raise TimeoutError(f"{what}: no reply from Redis within {self._stall_s:g}s") from exc

    def _read_errors(self) -> int:
        subs = sum(s.read_errors for s in self._subs)
        return self.read_errors + subs + sum(r.reconnects for r in self._groups)

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=f"tick-consumer:{name}")
        task.add_done_callback(self._task_done)
        self._tasks.append(task)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        exc = None if task.cancelled() else task.exception()
        if exc is None:
            return
        self.failures.append(exc)
        log.error("tick consumer %s: %s stopped", self._name, task.get_name(), exc_info=exc)

    def _raise_failure(self) -> None:
        if self.failures:
            exc = self.failures[0]
            raise ConsumerError(f"tick consumer {self._name}: a subscription stopped") from exc

    async def _dedicated_client(self, what: str) -> Redis:
        """A client holding one connection of the pool for a blocking reader, reconnects counted."""
        client = self.client.client()  # single-connection client over the same pool
        await client.initialize()
        counter = ReconnectCounter(f"tick consumer {self._name} {what}")
        if client.connection is not None:
            counter.attach(client.connection)
        self._readers.append((client, counter))
        return client

    async def _dispatch(self, tick: Tick) -> bool:
        """Run every handler; False if one of them raised."""
        self.received += 1
        ok = True
        for handler in self._handlers:
            try:
                result = handler(tick)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                ok = False
                self.handler_errors += 1
                log.exception("tick handler %r failed for %s", handler, tick.key)
        return ok

    async def _live_cursors(self, symbols: Sequence[str]) -> dict[str, str]:
        """Start each stream at its current last id: only ticks added from now on."""
        cursors = {}
        for s in symbols:
            key = stream_key(s, self._prefix)
            last: Any = await self.client.xrevrange(key, count=1)
            cursors[key] = _text(last[0][0]) if last else "0-0"
        return cursors

    async def _follow_loop(self, client: Redis, cursors: dict[str, str]) -> None:
        """XREAD from ``cursors`` (advanced per entry); a failed read resumes from them."""
        backoff = Backoff()
        deadline = _BLOCK_MS / 1000 + self._stall_s
        while True:
            try:
                async with asyncio.timeout(deadline):
                    streams: dict[Any, Any] = dict(cursors)
                    reply: Any = await client.xread(streams, count=500, block=_BLOCK_MS)
            except RETRYABLE as exc:  # includes the deadline: a connection that stopped answering
                self.read_errors += 1
                delay = backoff.next_delay()
                log.warning(
                    "tick consumer %s: stream read failed (%s); retrying in %.2fs",
                    self._name,
                    describe_failure(exc, deadline),
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            backoff.reset()
            for stream, items in reply or ():
                for id_, fields in items:
                    cursors[_text(stream)] = _text(id_)
                    await self._dispatch_entry(_text(stream), _text(id_), fields)

    async def _dispatch_entry(self, stream: str, id_: str, fields: dict[bytes, bytes]) -> None:
        try:
            value = decode_value(fields[FIELD], Tick)
        except (KeyError, ValueError) as exc:  # msgspec errors derive from ValueError
            self.undecodable += 1
            log.warning("skipping undecodable entry %s of %s: %r", id_, stream, exc)
            return
        if isinstance(value, Tick):
            await self._dispatch(value)

    async def _group_loop(self, reader: StreamGroupReader) -> None:
        while True:
            entries = await reader.read()
            done = [e for e in entries if await self._dispatch(e.value)]
            if not done:
                continue
            await self._ack(reader, done)

    async def _ack(self, reader: StreamGroupReader, done: Sequence[Any]) -> None:
        """Ack, retrying a while: unacked entries are delivered again (at-least-once)."""
        t0 = time.monotonic()
        while True:
            try:
                async with asyncio.timeout(self._stall_s):
                    await reader.ack(done)
                return
            except RETRYABLE as exc:
                self.read_errors += 1
                if time.monotonic() - t0 > 5:
                    log.warning("ack failed (%r); entries will be delivered again", exc)
                    return
                await asyncio.sleep(0.2)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
