"""The Feed protocol every broker client implements, its events, health snapshot and errors.

A feed is started, told what to subscribe, and read through :meth:`Feed.events`: an async iterator
of :data:`FeedEvent`, each either a list of :class:`~tickstream.model.Tick` (one decoded frame or
a few packets; never empty) or a :class:`~tickstream.pipeline.sequence.GapEvent` (a disconnect:
which instruments, from the last byte received to the first data after, and why). The socket
reader never awaits the consumer: events go through a bounded queue, and when it is full the
batch is dropped, counted, and reported as a gap (cause ``queue_overflow``) once there is room.

Two clocks, kept apart on purpose:

* transport liveness (any byte from the server: Kite's 1-byte heartbeat, Angel's ``pong``):
  silence for ``heartbeat_timeout_factor`` x the interval aborts the socket and reconnects;
* data age per instrument: an instrument without data for ``stale_after_secs`` is listed in
  :attr:`FeedHealth.stale`, and nothing reconnects (quiet and illiquid symbols are normal).
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Sequence
from typing import Protocol, runtime_checkable

import msgspec

from tickstream.model import Instrument, Mode, Tick
from tickstream.pipeline.sequence import GapEvent

__all__ = [
    "AuthError",
    "CapacityError",
    "ConnectionHealth",
    "ConnectionState",
    "Feed",
    "FeedError",
    "FeedEvent",
    "FeedHealth",
    "GapEvent",
    "ProtocolError",
    "RateLimitError",
    "TransientError",
]

FeedEvent = list[Tick] | GapEvent
"""What :meth:`Feed.events` yields: a non-empty batch of ticks, or a gap."""


class ConnectionState(enum.StrEnum):
    """Where one connection's supervisor is."""

    IDLE = "idle"  # nothing to subscribe on this shard
    CONNECTING = "connecting"
    CONNECTED = "connected"
    BACKOFF = "backoff"  # waiting before the next attempt
    AUTH_WAIT = "auth_wait"  # credentials refused; waiting for new ones
    STOPPED = "stopped"


class FeedError(Exception):
    """Base class of the errors a feed raises or classifies."""


class TransientError(FeedError):
    """Network trouble: retried with backoff."""


class RateLimitError(FeedError):
    """The broker refused for rate or connection quota (HTTP 429): cool down, then retry."""


class AuthError(FeedError):
    """Credentials refused (HTTP 401/403): never retried with the same token."""


class ProtocolError(FeedError):
    """The server sent something the protocol does not allow (counted, sampled, not fatal)."""


class CapacityError(FeedError):
    """A subscription beyond what the broker allows; the message names the numbers."""


class ConnectionHealth(msgspec.Struct, frozen=True, kw_only=True):
    """One connection (shard) of a feed."""

    shard: int
    state: ConnectionState
    subscribed: int
    connects: int
    reconnects: int
    last_data_ns: int | None
    last_heartbeat_ns: int | None
    last_error: str | None = None


class FeedHealth(msgspec.Struct, frozen=True, kw_only=True):
    """A point-in-time health snapshot of a feed (all times epoch ns, UTC)."""

    source: str
    state: ConnectionState
    connections: tuple[ConnectionHealth, ...]
    subscribed: int
    last_data_ns: int | None
    last_heartbeat_ns: int | None
    reconnects: int
    rejected: dict[str, int]
    server_errors: int
    gaps: int
    dropped_batches: int
    auth_attempts: int
    stale: tuple[str, ...] = ()
    frames: int = 0  # binary messages received (heartbeats included)
    packets: int = 0  # packets those messages declared (and held)
    parsed: int = 0  # packets decoded into ticks; packets = parsed + packet-level rejects

    @property
    def open_connections(self) -> int:
        return sum(1 for c in self.connections if c.state is ConnectionState.CONNECTED)


@runtime_checkable
class Feed(Protocol):
    """A market-data feed: start/stop, subscriptions, events, health."""

    source: str

    async def start(self) -> None:
        """Start the connection supervisors (returns at once; connections open in background)."""
        ...

    async def stop(self) -> None:
        """Close every connection and end :meth:`events`."""
        ...

    async def subscribe(self, instruments: Sequence[Instrument], mode: Mode = Mode.QUOTE) -> None:
        """Add (or change the mode of) instruments; CapacityError beyond the broker's limits."""
        ...

    async def unsubscribe(self, instruments: Sequence[Instrument]) -> None:
        """Remove instruments (unknown ones are ignored)."""
        ...

    def events(self) -> AsyncIterator[FeedEvent]:
        """Tick batches and gap events, in arrival order, until :meth:`stop`."""
        ...

    def health(self) -> FeedHealth:
        """A snapshot of the feed's state and counters."""
        ...
