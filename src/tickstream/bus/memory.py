"""In-process bus: objects handed over as they are, one bounded deque per subscription."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Sequence
from typing import Any

from tickstream.bus.base import BusClosedError, Message, Overflow

__all__ = ["MemoryBus", "MemorySubscription"]


class MemorySubscription:
    """A bounded queue of messages for one subscriber."""

    def __init__(self, bus: MemoryBus, topic: str, maxsize: int, overflow: Overflow) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self.topic = topic
        self._bus = bus
        self._maxsize = maxsize
        self._overflow = overflow
        self._items: deque[Message] = deque()
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self._closed = False
        self._dropped = 0
        self.delivered = 0

    @property
    def dropped(self) -> int:
        return self._dropped

    @property
    def depth(self) -> int:
        return len(self._items)

    async def _put(self, msg: Message) -> None:
        if self._closed:
            return
        while len(self._items) >= self._maxsize:
            if self._overflow is Overflow.DROP_OLDEST:
                self._items.popleft()
                self._dropped += 1
            elif self._overflow is Overflow.DROP_NEWEST:
                self._dropped += 1
                return
            else:
                self._writable.clear()
                await self._writable.wait()
                if self._closed:
                    return
        self._items.append(msg)
        self._readable.set()

    def _offer_many(self, msgs: Sequence[Message]) -> int:
        """Append what fits without waiting; how many of ``msgs`` were handled (the rest must
        go through :meth:`_put`: a full BLOCK subscription). Same outcome as one ``_put`` each."""
        if self._closed:
            return len(msgs)
        items = self._items
        room = self._maxsize - len(items)
        if room >= len(msgs) or self._overflow is Overflow.DROP_OLDEST:
            items.extend(msgs)
            excess = len(items) - self._maxsize
            for _ in range(excess):
                items.popleft()
            self._dropped += max(excess, 0)
        elif self._overflow is Overflow.DROP_NEWEST:
            items.extend(msgs[:room])
            self._dropped += len(msgs) - room
        else:
            items.extend(msgs[:room])
            if room > 0:
                self._readable.set()
            return room
        if items:
            self._readable.set()
        return len(msgs)

    def _take(self) -> Message:
        msg = self._items.popleft()
        self.delivered += 1
        if not self._items:
            self._readable.clear()
        if len(self._items) < self._maxsize:
            self._writable.set()
        return msg

    async def get(self, timeout: float | None = None) -> Message | None:
        if not self._items:
            if self._closed:
                return None
            try:
                async with asyncio.timeout(timeout):
                    await self._readable.wait()
            except TimeoutError:
                return None
            if not self._items:
                return None
        return self._take()

    async def get_batch(self, max_items: int, timeout: float | None = None) -> list[Message]:
        first = await self.get(timeout)
        if first is None:
            return []
        items = self._items
        n = min(max_items - 1, len(items))
        if n <= 0:
            return [first]
        out = [first]
        out += [items.popleft() for _ in range(n)]
        self.delivered += n
        if not items:
            self._readable.clear()
        if len(items) < self._maxsize:
            self._writable.set()
        return out

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Message]:
        while True:
            msg = await self.get()
            if msg is None:
                return
            yield msg

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._readable.set()
        self._writable.set()
        self._bus._remove(self)


class MemoryBus:
    """The embedded default. Publishing never copies or encodes; fan-out is per subscription."""

    name = "memory"

    def __init__(self) -> None:
        self._subs: dict[str, list[MemorySubscription]] = {}
        self._published: dict[str, int] = {}
        self._closed = False

    async def start(self) -> None:
        self._closed = False

    async def publish(self, topic: str, value: Any, key: str | None = None) -> None:
        if self._closed:
            raise BusClosedError("publish on a closed bus")
        self._published[topic] = self._published.get(topic, 0) + 1
        msg = Message(topic, value, key)
        for sub in self._subs.get(topic, ()):
            await sub._put(msg)

    async def publish_many(
        self, topic: str, values: Sequence[Any], keys: Sequence[str | None] | None = None
    ) -> None:
        if self._closed:
            raise BusClosedError("publish on a closed bus")
        if keys is not None and len(keys) != len(values):
            raise ValueError(f"{len(keys)} keys for {len(values)} values")
        self._published[topic] = self._published.get(topic, 0) + len(values)
        subs = self._subs.get(topic)
        if not subs:
            return
        if keys is None:
            msgs = [Message(topic, value, None) for value in values]
        else:
            msgs = [Message(topic, value, key) for value, key in zip(values, keys, strict=True)]
        # One bulk append per subscription first, so every subscriber has what fits right away;
        # then only a full BLOCK subscription waits, message by message, for the rest.
        waiting = [(sub, done) for sub in list(subs) if (done := sub._offer_many(msgs)) < len(msgs)]
        for sub, done in waiting:
            for msg in msgs[done:]:
                await sub._put(msg)

    async def subscribe(
        self,
        topic: str,
        *,
        type_: type[Any] | None = None,
        maxsize: int = 10_000,
        overflow: Overflow = Overflow.DROP_OLDEST,
    ) -> MemorySubscription:
        if self._closed:
            raise BusClosedError("subscribe on a closed bus")
        sub = MemorySubscription(self, topic, maxsize, overflow)
        self._subs.setdefault(topic, []).append(sub)
        return sub

    def _remove(self, sub: MemorySubscription) -> None:
        subs = self._subs.get(sub.topic)
        if subs and sub in subs:
            subs.remove(sub)

    def stats(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "published": dict(self._published),
            "subscriptions": {
                t: [
                    {"depth": s.depth, "dropped": s.dropped, "delivered": s.delivered} for s in subs
                ]
                for t, subs in self._subs.items()
            },
        }

    async def close(self) -> None:
        self._closed = True
        for subs in list(self._subs.values()):
            for sub in list(subs):
                await sub.close()
        self._subs.clear()


def _sub_stats(sub: MemorySubscription) -> dict[str, int]:
    return {"depth": sub.depth, "dropped": sub.dropped, "delivered": sub.delivered}
