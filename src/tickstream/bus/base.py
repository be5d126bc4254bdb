"""The Bus protocol: topics carrying canonical structs, bounded subscriptions, explicit overflow.

A backend moves ``Message(topic, key, value)`` from publishers to subscribers. Values are
msgspec Structs (Tick, Candle, ...) or raw bytes; network backends encode them (JSON) and decode
into the ``type_`` named at subscribe time, the memory backend hands the objects over as they are.

Every subscription has a bounded buffer and a named overflow policy, so a slow consumer can never
grow memory without limit:

- ``DROP_OLDEST`` — keep the newest ``maxsize`` messages; count what was dropped (live views,
  WebSocket clients: they are told how many they missed).
- ``DROP_NEWEST`` — refuse new messages while full; count them.
- ``BLOCK`` — the publisher waits for room (sinks that must not lose anything: back-pressure).
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = ["Bus", "BusClosedError", "Message", "Overflow", "Subscription"]


class Overflow(enum.StrEnum):
    DROP_OLDEST = "drop_oldest"
    DROP_NEWEST = "drop_newest"
    BLOCK = "block"


class BusClosedError(RuntimeError):
    """Raised by publish on a closed bus."""


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    value: Any
    key: str | None = None


@runtime_checkable
class Subscription(Protocol):
    """A bounded stream of messages from one topic."""

    topic: str

    @property
    def dropped(self) -> int:
        """Messages lost to the overflow policy so far."""
        ...

    def __aiter__(self) -> AsyncIterator[Message]: ...

    async def get(self, timeout: float | None = None) -> Message | None:
        """Next message, or None on timeout or once the subscription is closed and drained."""
        ...

    async def get_batch(self, max_items: int, timeout: float | None = None) -> list[Message]:
        """Up to ``max_items`` messages; waits up to ``timeout`` for the first one only."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class Bus(Protocol):
    """Publish/subscribe by topic. One class per backend; all pass tests/bus_conformance.py."""

    name: str

    async def start(self) -> None: ...

    async def publish(self, topic: str, value: Any, key: str | None = None) -> None: ...

    async def publish_many(
        self, topic: str, values: Sequence[Any], keys: Sequence[str | None] | None = None
    ) -> None: ...

    async def subscribe(
        self,
        topic: str,
        *,
        type_: type[Any] | None = None,
        maxsize: int = 10_000,
        overflow: Overflow = Overflow.DROP_OLDEST,
    ) -> Subscription: ...

    def stats(self) -> dict[str, Any]: ...

    async def close(self) -> None: ...
