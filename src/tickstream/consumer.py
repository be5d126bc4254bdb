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
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from redis.asyncio import Redis

from tickstream.bus.envelope import decode_value
from tickstream.bus.redis_bus import RedisBus
from tickstream.bus.streams import (
    DEFAULT_PREFIX,
    FIELD,
    RETRYABLE,
    Backoff,
    StreamGroupReader,
    stream_key,
)
from tickstream.model import Tick

__all__ = ["TICKS_CHANNEL", "Handler", "TickConsumer", "create_redis_consumer"]

log = logging.getLogger(__name__)

TICKS_CHANNEL = "market:ticks"
Handler = Callable[[Tick], Awaitable[Any] | Any]


def create_redis_consumer(
    url: str = "redis://127.0.0.1:6379/0",
    *,
    group: str | None = None,
    consumer_name: str | None = None,
    stream_prefix: str = DEFAULT_PREFIX,
) -> TickConsumer:
    """A consumer for the tickstream Redis at ``url`` (call :meth:`TickConsumer.connect`)."""
    return TickConsumer(url, group=group, consumer_name=consumer_name, stream_prefix=stream_prefix)


class TickConsumer:
    """Ticks from tickstream's Redis streams or pub/sub, dispatched to your handlers."""

    def __init__(
        self,
        url: str,
        *,
        group: str | None = None,
        consumer_name: str | None = None,
        stream_prefix: str = DEFAULT_PREFIX,
    ) -> None:
        self._url = url
        self._group = group
        self._name = consumer_name or f"consumer-{id(self):x}"
        self._prefix = stream_prefix
        self._bus: RedisBus | None = None
        self._handlers: list[Handler] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._symbols: set[str] = set()
        self.received = 0
        self.handler_errors = 0

    @property
    def client(self) -> Redis:
        if self._bus is None:
            raise RuntimeError("not connected: await consumer.connect() first")
        return self._bus.client

    async def connect(self) -> None:
        """Open the connection (and check it with PING)."""
        self._bus = RedisBus(self._url, stream_prefix=self._prefix)
        await self._bus.start()

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
        self._symbols.update(new)
        if self._group is not None:
            reader = StreamGroupReader(
                self.client,
                [stream_key(s, self._prefix) for s in new],
                self._group,
                self._name,
                block_ms=1000,
            )
            await reader.start()
            self._spawn(self._group_loop(reader), f"group:{','.join(new)}")
        else:
            cursors = await self._live_cursors(new)
            self._spawn(self._follow_loop(cursors), f"follow:{','.join(new)}")

    async def subscribe_to_all_symbols(self) -> None:
        """Every tick of every instrument, from the ``market:ticks`` pub/sub channel."""
        if self._bus is None:
            raise RuntimeError("not connected: await consumer.connect() first")
        sub = await self._bus.subscribe(TICKS_CHANNEL, type_=Tick, maxsize=100_000)

        async def loop() -> None:
            async for msg in sub:
                await self._dispatch(msg.value)

        self._spawn(loop(), "all")

    async def get_latest_tick(self, symbol: str) -> Tick | None:
        """The newest tick in the symbol's stream, or None when there is none."""
        entries: Any = await self.client.xrevrange(stream_key(symbol, self._prefix), count=1)
        if not entries:
            return None
        value = decode_value(entries[0][1][FIELD], Tick)
        return value if isinstance(value, Tick) else None

    async def get_stream_info(self, symbol: str) -> dict[str, Any]:
        """Length, first/last entry ids and the consumer groups (pending, lag) of a stream."""
        key = stream_key(symbol, self._prefix)
        if not await self.client.exists(key):
            return {"stream": key, "length": 0, "groups": []}
        info: Any = await self.client.xinfo_stream(key)
        groups: Any = await self.client.xinfo_groups(key)

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
        """Let the subscriptions run for ``seconds`` (forever when None)."""
        if seconds is None:
            await asyncio.gather(*self._tasks)
        else:
            await asyncio.sleep(seconds)

    async def disconnect(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        self._symbols.clear()
        if self._bus is not None:
            await self._bus.close()
            self._bus = None

    # ------------------------------------------------------------------------------ internals

    def _spawn(self, coro: Any, name: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=f"tick-consumer:{name}"))

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

    async def _follow_loop(self, cursors: dict[str, str]) -> None:
        backoff = Backoff()
        while True:
            try:
                streams: dict[Any, Any] = dict(cursors)
                reply: Any = await self.client.xread(streams, count=500, block=1000)
            except RETRYABLE as exc:
                delay = backoff.next_delay()
                log.warning("stream read failed (%s); retrying in %.2fs", exc, delay)
                await asyncio.sleep(delay)
                continue
            backoff.reset()
            for stream, items in reply or ():
                for id_, fields in items:
                    cursors[_text(stream)] = _text(id_)
                    value = decode_value(fields[FIELD], Tick)
                    if isinstance(value, Tick):
                        await self._dispatch(value)

    async def _group_loop(self, reader: StreamGroupReader) -> None:
        while True:
            entries = await reader.read()
            done = [e for e in entries if await self._dispatch(e.value)]
            if not done:
                continue
            t0 = time.monotonic()
            while True:
                try:
                    await reader.ack(done)
                    break
                except RETRYABLE as exc:  # unacked entries would come back: retry a while
                    if time.monotonic() - t0 > 5:
                        log.warning("ack failed (%s); entries will be delivered again", exc)
                        break
                    await asyncio.sleep(0.2)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
