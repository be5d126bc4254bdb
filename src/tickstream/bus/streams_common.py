"""Names and helpers shared by the Redis stream publisher, reader and consumer library."""

from __future__ import annotations

import random
from typing import Final

from redis import exceptions as rexc

__all__ = ["DEAD_LETTER_STREAM", "DEFAULT_PREFIX", "FIELD", "RETRYABLE", "Backoff", "stream_key"]

DEFAULT_PREFIX: Final = "market_data_stream:"
DEAD_LETTER_STREAM: Final = "market_data_stream:dead_letter"
FIELD: Final = b"data"
RETRYABLE: Final = (rexc.ConnectionError, rexc.TimeoutError, rexc.BusyLoadingError, OSError)


def stream_key(symbol: str, prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}{symbol}"


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
