"""The bounded subscription buffer every bus uses (memory, Redis pub/sub, Kafka).

A producer (the memory bus's publish, or a network reader task) calls
:meth:`BufferedSubscription.put` or, for a batch, :meth:`BufferedSubscription.offer_many`; the
overflow policy decides what happens when the consumer falls behind (``BLOCK`` makes the producer
wait: back-pressure).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from tickstream.bus.base import Message, Overflow

__all__ = ["BufferedSubscription"]


class BufferedSubscription:
    """Bounded message buffer with an overflow policy; ``on_close`` stops the producer side."""

    def __init__(
        self,
        topic: str,
        maxsize: int,
        overflow: Overflow,
        on_close: Callable[[BufferedSubscription], Awaitable[None]] | None = None,
    ) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self.topic = topic
        self._maxsize = maxsize
        self._overflow = overflow
        self._on_close = on_close
        self._items: deque[Message] = deque()
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self._closed = False
        self._dropped = 0
        self.delivered = 0
        self.received = 0

    @property
    def dropped(self) -> int:
        return self._dropped

    @property
    def depth(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    async def put(self, msg: Message) -> None:
        """Add one message, applying the overflow policy when the buffer is full."""
        if self._closed:
            return
        self.received += 1
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

    def offer_many(self, msgs: Sequence[Message]) -> int:
        """Append what fits without waiting; returns how many of ``msgs`` were handled.

        The rest must go through :meth:`put` (a full BLOCK subscription). Same outcome as one
        ``put`` per message."""
        if self._closed:
            return len(msgs)
        self.received += len(msgs)
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
            handled = max(room, 0)
            items.extend(msgs[:handled])
            self.received -= len(msgs) - handled  # the rest is counted by put()
            if handled > 0:
                self._readable.set()
            return handled
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

    def stats(self) -> dict[str, int]:
        return {"depth": self.depth, "dropped": self.dropped, "delivered": self.delivered}

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._readable.set()
        self._writable.set()
        if self._on_close is not None:
            await self._on_close(self)
