"""What a broker module supplies to the shared client: the *what* of one broker's WebSocket.

A :class:`BrokerAdapter` says how to open a socket with the current credentials, how to word
(un)subscriptions, how to decode a binary message and classify a text one, and how to get new
credentials. Everything about *when* (reconnects, liveness, sharding, gaps) lives in
:mod:`tickstream.feeds.client` and :mod:`tickstream.feeds.connection`, shared by both brokers.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Protocol

from websockets.asyncio.client import ClientConnection

from tickstream.feeds.registry import Entry, Limits
from tickstream.feeds.wire_common import DecodeResult
from tickstream.model import Instrument

__all__ = ["WS_LOGGER", "BrokerAdapter", "FeedConfig", "TextKind"]

#: The websockets library's logger for our broker sockets. Capped at INFO: at DEBUG, websockets
#: logs the handshake request line (Kite's carries the access token in its query) and every
#: frame, which would leak a secret and cost a log record per tick frame.
WS_LOGGER = logging.getLogger("tickstream.feeds.ws")
WS_LOGGER.setLevel(logging.INFO)


class TextKind(enum.Enum):
    HEARTBEAT = "heartbeat"  # Angel's "pong"
    ERROR = "error"  # a server error frame: surfaced (logged, counted, kept in health)
    INFO = "info"  # any other server text (Kite "message"/"order"): logged at debug


@dataclass(frozen=True, slots=True)
class FeedConfig:
    """The knobs of the shared client (from Settings in production, small values in tests)."""

    heartbeat_timeout_factor: float = 3.0
    reconnect_delay_initial_secs: float = 0.5
    reconnect_delay_max_secs: float = 30.0
    healthy_after_secs: float = 30.0
    stale_after_secs: float = 30.0
    queue_max_batches: int = 10_000
    auth_retry_secs: float = 60.0
    rate_limit_cooldown_secs: float = 5.0
    clock_ns: Callable[[], int] = time.time_ns
    #: The exchange's clock when it is not wall time (the simulator's session clock, which replays
    #: a session off-hours): gap events are stamped on it, so that they compare with the ticks'
    #: ``ts_exchange``. None: wall time (real brokers).
    exchange_clock_ns: Callable[[], int] | None = None
    #: Also stamp packets that carry no exchange time (Kite LTP/quote) on that clock instead of
    #: their receive time.
    stamp_packets_on_exchange_clock: bool = False


class BrokerAdapter(Protocol):
    """One broker's WebSocket protocol, as the shared client needs it."""

    source: str
    limits: Limits
    heartbeat_secs: float  # Kite: the server's heartbeat period; Angel: our ping period
    ping_text: str | None  # sent every heartbeat_secs when not None (Angel "ping")
    unsubscribe_on_mode_change: bool

    def key_for(self, instrument: Instrument, mode: str) -> Hashable:
        """The subscription key of ``instrument`` in ``mode`` (ValueError if not allowed)."""
        ...

    def all_keys(self, instrument: Instrument) -> list[Hashable]:
        """Every key ``instrument`` may be subscribed under (for unsubscribe)."""
        ...

    def track(self, instrument: Instrument) -> None:
        """Remember ``instrument`` so that its ticks carry its symbol and canonical token."""
        ...

    async def open(self) -> ClientConnection:
        """A new socket opened with the current credentials (websockets errors propagate)."""
        ...

    def subscribe_messages(self, entries: Sequence[tuple[Hashable, Entry]]) -> list[str]: ...

    def unsubscribe_messages(self, entries: Sequence[tuple[Hashable, Entry]]) -> list[str]: ...

    def decode(self, data: bytes, ts_recv: int, ts_exchange: int) -> DecodeResult:
        """Decode one binary message; ``ts_exchange`` stamps packets without their own time."""
        ...

    def text(self, text: str) -> tuple[TextKind, str]:
        """Classify a server text message; the string is what to surface."""
        ...

    def credential_id(self) -> str:
        """An opaque fingerprint of the credentials in use (never the secret itself)."""
        ...

    async def reauthenticate(self) -> bool:
        """Try to get new credentials; True when they changed."""
        ...
