"""Redis per-symbol streams: a fast batched publisher and an at-least-once consumer-group reader.

Stream ``market_data_stream:{SYMBOL}`` holds one entry per tick with a single field ``data`` (the
tick's JSON), trimmed with ``MAXLEN ~``.

Publishing (:class:`StreamPublisher`, in :mod:`tickstream.bus.stream_publisher`, re-exported
here): ticks go into a bounded buffer and leave it in chunks; each chunk is ONE command — a
server-side script that runs the XADDs — so the client does no per-entry command packing or reply
parsing (redis-py spends most of its pipeline time there). The script is sent by SHA and reloaded
transparently after a Redis restart. If Redis is unreachable the buffer keeps the ticks (bounded;
``BLOCK`` makes callers wait, ``DROP_OLDEST`` drops and counts) and a background task retries
with capped, jittered exponential backoff. A chunk whose reply was lost may be added twice:
delivery is at-least-once, consumers remove duplicates by tick id.

Reading: :class:`StreamGroupReader` reads with XREADGROUP. It first drains its own pending
entries (id ``0``: delivered before a crash or restart, never acknowledged), then reads new ones
(``>``). Entries idle on another (crashed) consumer for ``claim_idle_ms`` are taken over with
XAUTOCLAIM; an entry delivered more than ``max_deliveries`` times, or one that does not decode,
goes to the dead-letter stream and is acknowledged there. Lag and pending counts come from
XINFO GROUPS (Redis 7) and are cached for ``stats()``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from redis import exceptions as rexc
from redis.asyncio import Redis

from tickstream.bus.envelope import decode_value
from tickstream.bus.stream_publisher import StreamPublisher
from tickstream.bus.streams_common import (
    DEAD_LETTER_STREAM,
    DEFAULT_PREFIX,
    FIELD,
    RETRYABLE,
    Backoff,
    describe_failure,
    stream_key,
)
from tickstream.model import Tick

__all__ = [
    "DEAD_LETTER_STREAM",
    "DEFAULT_PREFIX",
    "FIELD",
    "RETRYABLE",
    "Backoff",
    "StreamEntry",
    "StreamGroupReader",
    "StreamPublisher",
    "stream_key",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StreamEntry:
    stream: str
    id: str
    value: Any


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class StreamGroupReader:
    """At-least-once reader of per-symbol streams through one consumer group.

    ``read()`` returns entries to process; ``ack()`` them once their effects are durable. An entry
    that is never acknowledged is delivered again: to this consumer after a restart (pending
    entries are read first), or to another one once it has been idle for ``claim_idle_ms``.
    """

    def __init__(
        self,
        client: Redis,
        streams: Sequence[str],
        group: str,
        consumer: str,
        *,
        type_: type[Any] | None = Tick,
        count: int = 500,
        block_ms: int = 500,
        claim_idle_ms: int = 30_000,
        max_deliveries: int = 5,
        dead_letter: str = DEAD_LETTER_STREAM,
        start_id: str = "0",
        info_interval_s: float = 2.0,
        stall_timeout_s: float = 10.0,
    ) -> None:
        if block_ms < 1:
            raise ValueError(f"block_ms must be >= 1 (BLOCK 0 waits forever), got {block_ms}")
        self._client = client
        self.streams = list(streams)
        self.group = group
        self.consumer = consumer
        self._type = type_
        self._count = count
        self._block_ms = block_ms
        self._claim_idle_ms = claim_idle_ms
        self._max_deliveries = max_deliveries
        self._dead_letter = dead_letter
        self._start_id = start_id
        self._info_interval_s = info_interval_s
        self._read_deadline_s = block_ms / 1000 + stall_timeout_s  # beyond it: a dead connection
        # stream -> cursor while draining our own pending entries; absent once drained
        self._pending: dict[str, str] = {}
        self._next_claim = 0.0
        self._next_info = 0.0
        self._backoff = Backoff()
        self._info: dict[str, dict[str, int]] = {}
        self.delivered = 0
        self.acked = 0
        self.claimed = 0
        self.dead_lettered = 0
        self.reconnects = 0

    async def start(self) -> None:
        """Create the group on every stream (and the stream itself) if missing."""
        for stream in self.streams:
            await self._create_group(stream)
        self._pending = dict.fromkeys(self.streams, "0")

    async def _create_group(self, stream: str) -> None:
        try:
            await self._client.xgroup_create(stream, self.group, id=self._start_id, mkstream=True)
        except rexc.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def read(self) -> list[StreamEntry]:
        """The next entries: own pending first, then stale ones claimed, then new ones.

        Never blocks longer than ``block_ms`` + ``stall_timeout_s``: a read that has not returned
        by then (a connection that no longer answers) counts as a lost connection, like a
        connection error — both are retried after a backoff, and return ``[]`` meanwhile."""
        try:
            async with asyncio.timeout(self._read_deadline_s):
                entries = await self._read_once()
        except RETRYABLE as exc:
            await self._on_connection_error(exc)
            return []
        except rexc.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            await self._recreate_group()
            return []
        self._backoff.reset()
        self.delivered += len(entries)
        return entries

    async def _recreate_group(self) -> None:
        log.warning("consumer group %s vanished (Redis lost data?); recreating", self.group)
        try:
            async with asyncio.timeout(self._read_deadline_s):
                await self.start()
        except RETRYABLE as exc:
            await self._on_connection_error(exc)

    async def _read_once(self) -> list[StreamEntry]:
        if self._pending:
            entries = await self._read_pending()
            if entries:
                return entries
        now = time.monotonic()
        if now >= self._next_claim:
            self._next_claim = now + self._claim_idle_ms / 2000
            claimed = await self.claim_stale()
            if claimed:
                return claimed
        if now >= self._next_info:
            self._next_info = now + self._info_interval_s
            await self.refresh_info()
        reply = await self._client.xreadgroup(
            self.group,
            self.consumer,
            dict.fromkeys(self.streams, ">"),
            count=self._count,
            block=self._block_ms,
        )
        return await self._decode(reply)

    async def _read_pending(self) -> list[StreamEntry]:
        cursors: dict[Any, Any] = dict(self._pending)
        reply: Any = await self._client.xreadgroup(
            self.group, self.consumer, cursors, count=self._count
        )
        for stream_b, items in reply or ():
            stream = _text(stream_b)
            if items:
                self._pending[stream] = _text(items[-1][0])
            else:
                self._pending.pop(stream, None)
        return await self._decode(reply)

    async def _on_connection_error(self, exc: BaseException) -> None:
        self.reconnects += 1
        delay = self._backoff.next_delay()
        log.warning(
            "redis stream read of group %s failed (%s); retrying in %.2fs",
            self.group,
            describe_failure(exc, self._read_deadline_s),
            delay,
        )
        await asyncio.sleep(delay)
        # Whatever we read but did not ack is pending on the server: read it again first.
        self._pending = dict.fromkeys(self.streams, "0")

    async def _decode(self, reply: Any) -> list[StreamEntry]:
        out: list[StreamEntry] = []
        bad: list[tuple[str, str, dict[bytes, bytes]]] = []
        for stream_b, items in reply or ():
            stream = _text(stream_b)
            for id_b, fields in items:
                if fields is None:  # deleted (trimmed) while pending
                    continue
                try:
                    value = decode_value(fields[FIELD], self._type)
                except (KeyError, msgspec.DecodeError, msgspec.ValidationError):
                    bad.append((stream, _text(id_b), fields))
                    continue
                out.append(StreamEntry(stream, _text(id_b), value))
        for stream, id_, fields in bad:
            await self._to_dead_letter(stream, id_, fields, reason="undecodable")
        return out

    async def ack(self, entries: Sequence[StreamEntry]) -> None:
        """Acknowledge processed entries (one XACK per stream, pipelined)."""
        by_stream: dict[str, list[str]] = {}
        for e in entries:
            by_stream.setdefault(e.stream, []).append(e.id)
        if not by_stream:
            return
        async with self._client.pipeline(transaction=False) as pipe:
            for stream, ids in by_stream.items():
                pipe.xack(stream, self.group, *ids)
            await pipe.execute()
        self.acked += len(entries)

    async def claim_stale(self) -> list[StreamEntry]:
        """XAUTOCLAIM entries idle on other consumers; dead-letter the over-delivered ones."""
        out: list[StreamEntry] = []
        for stream in self.streams:
            reply = await self._client.xautoclaim(
                stream, self.group, self.consumer, self._claim_idle_ms, "0-0", count=self._count
            )
            items = [(i, f) for i, f in reply[1] if f is not None]
            if not items:
                continue
            counts = await self._delivery_counts(stream, [_text(i) for i, _ in items])
            live = []
            for id_b, fields in items:
                id_ = _text(id_b)
                if counts.get(id_, 0) > self._max_deliveries:
                    await self._to_dead_letter(stream, id_, fields, reason="max_deliveries")
                else:
                    live.append((id_b, fields))
            self.claimed += len(live)
            out.extend(await self._decode([(stream, live)]))
        if out:
            log.info("claimed %d stale entries for consumer %s", len(out), self.consumer)
        return out

    async def _delivery_counts(self, stream: str, ids: list[str]) -> dict[str, int]:
        rows: Any = await self._client.xpending_range(
            stream, self.group, min=ids[0], max=ids[-1], count=len(ids), consumername=self.consumer
        )
        return {_text(r["message_id"]): int(r["times_delivered"]) for r in rows}

    async def _to_dead_letter(
        self, stream: str, id_: str, fields: dict[bytes, bytes], *, reason: str
    ) -> None:
        entry: dict[Any, Any] = {
            b"stream": stream,
            b"id": id_,
            b"group": self.group,
            b"reason": reason,
        }
        entry.update({k: v for k, v in fields.items() if k not in entry})
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.xadd(self._dead_letter, entry)
            pipe.xack(stream, self.group, id_)
            await pipe.execute()
        self.dead_lettered += 1
        log.warning("entry %s of %s dead-lettered (%s)", id_, stream, reason)

    async def refresh_info(self) -> dict[str, dict[str, int]]:
        """Pending and lag of our group on every stream (XINFO GROUPS), cached for stats()."""
        info: dict[str, dict[str, int]] = {}
        for stream in self.streams:
            for g in await self._client.xinfo_groups(stream):
                if _text(g["name"]) == self.group:
                    lag = g.get("lag")
                    info[stream] = {"pending": int(g["pending"]), "lag": int(lag or 0)}
        self._info = info
        return info

    def stats(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "consumer": self.consumer,
            "delivered": self.delivered,
            "acked": self.acked,
            "claimed": self.claimed,
            "dead_lettered": self.dead_lettered,
            "reconnects": self.reconnects,
            "lag": sum(v["lag"] for v in self._info.values()),
            "pending": sum(v["pending"] for v in self._info.values()),
            "streams": dict(self._info),
        }
