"""What the HTTP/WebSocket server needs from the running process, as real components.

The composition root (``tickstream.assembly`` for ``run``, ``commands/serve.py`` for the scaled
``serve``) builds one :class:`ServeContext` and hands it to :func:`tickstream.serve.app.create_app`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tickstream.bus.base import Bus
from tickstream.config import Settings
from tickstream.model import Instrument, Mode
from tickstream.pipeline.state import MarketDataStore
from tickstream.storage.base import TickStore
from tickstream.storage.ringbuffer import RingBuffer

__all__ = ["ServeContext", "SubscribeFn"]

SubscribeFn = Callable[[Sequence[Instrument], Mode], Awaitable[dict[str, Any]]]


def _no_stats() -> dict[str, Any]:
    return {}


def _no_feeds() -> list[dict[str, Any]]:
    return []


@dataclass
class ServeContext:
    """The components the API reads; ``store``, ``state`` and ``subscribe`` may be absent."""

    settings: Settings
    bus: Bus
    store: TickStore | None
    ring: RingBuffer
    state: MarketDataStore | None = None
    instruments: Sequence[Instrument] = ()
    stats: Callable[[], dict[str, Any]] = _no_stats
    feed_health: Callable[[], list[dict[str, Any]]] = _no_feeds
    subscribe: SubscribeFn | None = None
