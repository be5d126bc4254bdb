"""Buffered, chunked XADD of ticks to their per-symbol streams (see :mod:`tickstream.bus.streams`).

Each chunk is ONE command: a server-side script that runs the XADDs, so the client does no
per-entry command packing or reply parsing (redis-py spends most of its pipeline time there). The
script is sent by SHA and reloaded transparently after a Redis restart. While Redis is unreachable
the buffer keeps the ticks (bounded: ``BLOCK`` makes callers wait, ``DROP_OLDEST`` drops and
counts) and a background task retries with capped, jittered exponential backoff.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from typing import Final

from redis.asyncio import Redis

from tickstream.bus.base import Overflow
from tickstream.bus.envelope import encode_value
from tickstream.bus.streams_common import DEFAULT_PREFIX, RETRYABLE, Backoff, stream_key
from tickstream.model import Tick

__all__ = ["StreamPublisher"]

log = logging.getLogger(__name__)

# KEYS: stream keys; ARGV[1]: approximate MAXLEN; ARGV[i + 1]: the JSON for KEYS[i]. Trimming
# once per stream and chunk (XTRIM ~) costs the server less than MAXLEN on every XADD.
_XADD_MANY: Final = """
local seen = {}
for i = 1, #KEYS do
  local key = KEYS[i]
  redis.call('XADD', key, '*', 'data', ARGV[i + 1])
  seen[key] = true
end
for key in pairs(seen) do
  redis.call('XTRIM', key, 'MAXLEN', '~', ARGV[1])
end
return #KEYS
"""


class StreamPublisher:
    """Buffered, chunked XADD of ticks to their per-symbol streams; survives Redis restarts."""

    def __init__(
        self,
        client: Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        maxlen: int = 100_000,
        chunk_size: int = 1000,
        buffer_max: int = 200_000,
        overflow: Overflow = Overflow.BLOCK,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._maxlen = str(maxlen).encode()
        self._chunk = chunk_size
        self._buffer_max = buffer_max
        self._overflow = overflow
        self._buf: deque[tuple[bytes, bytes]] = deque()
        self._keys: dict[str, bytes] = {}
        self._script = client.register_script(_XADD_MANY)
        self._lock = asyncio.Lock()
        self._room = asyncio.Event()
        self._room.set()
        self._retry_task: asyncio.Task[None] | None = None
        self._backoff = Backoff()
        self.published = 0
        self.dropped = 0
        self.retries = 0

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def _key(self, symbol: str) -> bytes:
        key = self._keys.get(symbol)
        if key is None:
            key = self._keys[symbol] = stream_key(symbol, self._prefix).encode()
        return key

    async def publish(self, ticks: Sequence[Tick]) -> None:
        """Queue ``ticks`` and send what Redis accepts now; the rest is retried in background."""
        for tick in ticks:
            if len(self._buf) >= self._buffer_max:
                await self._make_room()
            self._buf.append((self._key(tick.symbol), encode_value(tick)))
        if self._retry_task is None:
            await self._flush_once()

    async def _make_room(self) -> None:
        if self._overflow is Overflow.BLOCK:
            while len(self._buf) >= self._buffer_max:
                self._room.clear()
                await self._room.wait()
            return
        if self._overflow is Overflow.DROP_OLDEST:
            self._buf.popleft()
        self.dropped += 1

    async def _flush_once(self) -> bool:
        """Send everything buffered; on a connection error start the retry task, return False."""
        try:
            await self._send_all()
        except RETRYABLE as exc:
            log.warning("redis stream publish failed (%s); %d ticks buffered", exc, self.buffered)
            self._start_retry()
            return False
        return True

    async def _send_all(self) -> None:
        async with self._lock:
            while self._buf:
                n = min(self._chunk, len(self._buf))
                keys = [self._buf[i][0] for i in range(n)]
                args: list[bytes] = [self._maxlen]
                args.extend(self._buf[i][1] for i in range(n))
                await self._script(keys=keys, args=args)
                for _ in range(n):
                    self._buf.popleft()
                self.published += n
                self._room.set()

    def _start_retry(self) -> None:
        if self._retry_task is None or self._retry_task.done():
            self._retry_task = asyncio.create_task(self._retry_loop(), name="redis-stream-retry")

    async def _retry_loop(self) -> None:
        try:
            while self._buf:
                await asyncio.sleep(self._backoff.next_delay())
                self.retries += 1
                try:
                    await self._send_all()
                except RETRYABLE as exc:
                    log.debug("redis stream publish retry failed: %s", exc)
            self._backoff.reset()
            log.info("redis stream publisher resumed; %d ticks published", self.published)
        finally:
            self._retry_task = None

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until the buffer is empty (Redis has every tick), or raise TimeoutError."""
        async with asyncio.timeout(timeout):
            while self._buf:
                if self._retry_task is None and await self._flush_once():
                    continue
                await asyncio.sleep(0.02)

    def stats(self) -> dict[str, int]:
        return {
            "published": self.published,
            "buffered": self.buffered,
            "dropped": self.dropped,
            "retries": self.retries,
        }

    async def close(self) -> None:
        if self._retry_task is not None:
            self._retry_task.cancel()
            await asyncio.gather(self._retry_task, return_exceptions=True)
            self._retry_task = None
