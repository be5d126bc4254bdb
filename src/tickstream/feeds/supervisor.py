"""Reconnect machinery shared by every broker client: backoff, error classes, connection slots.

Kept apart from parsing (as cryptofeed keeps its connection handler apart from the exchanges),
with what such loops usually lack:

* :class:`Backoff` -- capped exponential delay with jitter, reset only after the connection has
  been healthy for ``healthy_after_s`` (a socket that opens and dies at once keeps backing off);
* :func:`classify` -- transient network errors, rate limit / connection quota, auth, protocol;
* :class:`ConnectionSlots` -- never more sockets open *or opening* than the broker allows, and a
  shared cool-down after a 429 so that no shard opens the connection the broker would refuse.
"""

from __future__ import annotations

import asyncio
import enum
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from tickstream.feeds.base import AuthError, ProtocolError, RateLimitError, TransientError

__all__ = ["Backoff", "ConnectionSlots", "ErrorClass", "LivenessTimeout", "classify"]


class ErrorClass(enum.StrEnum):
    TRANSIENT = "transient"
    RATE_LIMIT = "rate_limit"
    AUTH = "auth"
    PROTOCOL = "protocol"


class LivenessTimeout(TransientError):
    """No byte from the server for the heartbeat timeout: the socket is dead or half-open."""


def classify(exc: BaseException) -> ErrorClass:
    """The class of an error raised while connecting or reading."""
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        if status in (401, 403):
            return ErrorClass.AUTH
        if status == 429:
            return ErrorClass.RATE_LIMIT
        return ErrorClass.TRANSIENT
    if isinstance(exc, AuthError):
        return ErrorClass.AUTH
    if isinstance(exc, RateLimitError):
        return ErrorClass.RATE_LIMIT
    if isinstance(exc, ProtocolError):
        return ErrorClass.PROTOCOL
    if isinstance(exc, ConnectionClosed | InvalidHandshake | OSError | TimeoutError):
        return ErrorClass.TRANSIENT
    return ErrorClass.TRANSIENT


def describe(exc: BaseException) -> str:
    """A short cause for logs and gap events (never contains the URL, so never a token)."""
    if isinstance(exc, InvalidStatus):
        return f"http_{exc.response.status_code}"
    if isinstance(exc, ConnectionClosed):
        rcvd = exc.rcvd
        return f"closed_{rcvd.code}" if rcvd is not None else "closed_no_frame"
    if isinstance(exc, LivenessTimeout):
        return "heartbeat_timeout"
    return type(exc).__name__


@dataclass
class Backoff:
    """Capped exponential backoff with jitter; see the module docstring."""

    initial_s: float = 0.5
    max_s: float = 30.0
    factor: float = 2.0
    jitter: float = 0.5  # the delay is drawn from [base * (1 - jitter), base]
    healthy_after_s: float = 30.0
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next_delay(self) -> float:
        """The delay before the next attempt (grows until ``max_s``)."""
        base = min(self.max_s, self.initial_s * self.factor**self.attempt)
        self.attempt += 1
        return base * (1.0 - self.jitter * self.rng.random())

    def connection_ended(self, healthy_for_s: float) -> None:
        """Reset the attempt count only if the connection lasted ``healthy_after_s``."""
        if healthy_for_s >= self.healthy_after_s:
            self.attempt = 0


class ConnectionSlots:
    """At most ``limit`` sockets open or opening, and a shared cool-down after a quota refusal."""

    def __init__(self, limit: int, *, clock: Callable[[], float] | None = None) -> None:
        self.limit = limit
        self._sem = asyncio.Semaphore(limit)
        self._cool_until = 0.0
        self._clock = clock
        self.in_use = 0
        self.peak = 0

    def _now(self) -> float:
        return self._clock() if self._clock else asyncio.get_running_loop().time()

    async def acquire(self) -> None:
        await self._sem.acquire()
        try:
            while (wait := self._cool_until - self._now()) > 0:  # noqa: ASYNC110 - a deadline, not an event
                await asyncio.sleep(wait)
        except BaseException:
            self._sem.release()
            raise
        self.in_use += 1
        self.peak = max(self.peak, self.in_use)

    def release(self) -> None:
        self.in_use -= 1
        self._sem.release()

    def cool_down(self, seconds: float) -> None:
        """No slot is handed out for ``seconds`` (after a 429 / connection-quota refusal)."""
        self._cool_until = max(self._cool_until, self._now() + seconds)
