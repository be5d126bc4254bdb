"""In-process bus: objects handed over as they are, one bounded deque per subscription."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tickstream.bus._subscription import BufferedSubscription
from tickstream.bus.base import BusClosedError, Message, Overflow

__all__ = ["MemoryBus", "MemorySubscription"]


class MemorySubscription(BufferedSubscription):
    """A bounded queue of messages for one subscriber; closing it unregisters it from its bus."""

    def __init__(self, bus: MemoryBus, topic: str, maxsize: int, overflow: Overflow) -> None:
        super().__init__(topic, maxsize, overflow, on_close=bus._unsubscribe)


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
            await sub.put(msg)

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
        waiting = [(sub, done) for sub in list(subs) if (done := sub.offer_many(msgs)) < len(msgs)]
        for sub, done in waiting:
            for msg in msgs[done:]:
                await sub.put(msg)

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

    async def _unsubscribe(self, sub: BufferedSubscription) -> None:
        self._remove(sub)

    def _remove(self, sub: BufferedSubscription) -> None:
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
