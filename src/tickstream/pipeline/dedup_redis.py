"""Redis-backed :class:`~tickstream.pipeline.dedup.DedupStore` for the distributed mode.

``SET <prefix><digest> 1 NX EX <window>`` records a key and says whether it was new, atomically,
so N workers (or a worker and its replacement after a crash) agree on which tick came first.
The engine calls the store synchronously, so this uses the blocking redis-py client; prefer
``seen_many`` (one pipelined round trip per batch) over per-tick ``seen``.

Keys are the engine's tuples (str/int/float/None and Depth); they are JSON-encoded and hashed
(BLAKE2b, 16 bytes) so Redis keys stay short whatever the tuple holds. The window is wall-clock
TTL on the server, not exchange time: it bounds memory, as the in-memory store's window does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Sequence
from typing import Any

import msgspec
import redis

__all__ = ["RedisDedupStore"]

_encoder = msgspec.json.Encoder()


class RedisDedupStore:
    """``seen(key, ts_ns)`` / ``seen_many(entries)`` over SET NX EX."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = "dedup:",
        window_s: int = 120,
    ) -> None:
        if window_s <= 0:
            raise ValueError(f"window_s must be positive, got {window_s}")
        self._client = client
        self._prefix = prefix.encode()
        self._window_s = window_s

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RedisDedupStore:
        return cls(redis.Redis.from_url(url, socket_connect_timeout=5.0), **kwargs)

    def redis_key(self, key: Hashable) -> bytes:
        digest = hashlib.blake2b(_encoder.encode(key), digest_size=16).hexdigest()
        return self._prefix + digest.encode()

    def seen(self, key: Hashable, ts_ns: int) -> bool:
        """True if ``key`` was recorded before (by anyone); records it otherwise."""
        created = self._client.set(self.redis_key(key), b"1", nx=True, ex=self._window_s)
        return created is None

    def seen_many(self, entries: Sequence[tuple[Hashable, int]]) -> list[bool]:
        """``seen`` for each entry, in one pipelined round trip. Repeats inside count too."""
        if not entries:
            return []
        pipe = self._client.pipeline(transaction=False)
        for key, _ts in entries:
            pipe.set(self.redis_key(key), b"1", nx=True, ex=self._window_s)
        return [created is None for created in pipe.execute()]

    def close(self) -> None:
        self._client.close()
