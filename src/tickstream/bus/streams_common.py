"""Names and helpers shared by the Redis stream publisher, reader and consumer library."""

from __future__ import annotations

import logging
import random
from typing import Any, Final
from urllib.parse import urlsplit

from redis import exceptions as rexc

__all__ = [
    "DEAD_LETTER_STREAM",
    "DEFAULT_PREFIX",
    "FIELD",
    "RETRYABLE",
    "Backoff",
    "ReconnectCounter",
    "describe_failure",
    "redact_url",
    "stream_key",
]

log = logging.getLogger(__name__)

DEFAULT_PREFIX: Final = "market_data_stream:"
DEAD_LETTER_STREAM: Final = "market_data_stream:dead_letter"
FIELD: Final = b"data"
# OSError includes the builtin TimeoutError that ``asyncio.timeout`` raises: a read deadline that
# expired is handled like a lost connection.
RETRYABLE: Final = (rexc.ConnectionError, rexc.TimeoutError, rexc.BusyLoadingError, OSError)


def stream_key(symbol: str, prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}{symbol}"


def redact_url(url: str) -> str:
    """``url`` without its password (for logs and errors): ``redis://user:***@host:port/0``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{parts.username or ''}:***@{netloc}").geturl()


def describe_failure(exc: BaseException, deadline_s: float) -> str:
    """A log-friendly reason; the read deadline's bare TimeoutError says what it means."""
    if type(exc) is TimeoutError and not str(exc):
        return f"no reply within {deadline_s:.1f}s, connection presumed dead"
    return repr(exc)


class Backoff:
    """Capped exponential backoff with full jitter."""

    def __init__(self, initial_s: float = 0.05, max_s: float = 2.0) -> None:
        self.initial_s = initial_s
        self.max_s = max_s
        self.attempt = 0

    def next_delay(self) -> float:
        cap = min(self.max_s, self.initial_s * (2**self.attempt))
        self.attempt += 1
        return random.uniform(cap / 2, cap)  # noqa: S311 - jitter, not cryptography

    def reset(self) -> None:
        self.attempt = 0


class ReconnectCounter:
    """Counts and logs every re-establishment of one redis-py connection.

    redis-py reconnects by itself (inside its own retries, or on the next command after an
    error), so a failure the caller never sees can still mean a new connection; the connection's
    connect callback sees them all. The first connect happened before :meth:`attach`.
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self.count = 0
        self._conn: Any = None

    def attach(self, conn: Any) -> None:
        """Count the reconnects of ``conn`` (a redis-py connection) from now on."""
        self.detach()
        conn.register_connect_callback(self._on_connect)
        self._conn = conn

    def detach(self) -> None:
        if self._conn is not None:
            self._conn.deregister_connect_callback(self._on_connect)
            self._conn = None

    def _on_connect(self, _conn: Any) -> None:
        self.count += 1
        log.warning("%s reconnected to Redis (reconnect #%d)", self.what, self.count)
