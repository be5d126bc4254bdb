"""The shared feed client: a :class:`~tickstream.feeds.base.Feed` over one broker adapter.

:class:`ShardedFeed` owns the subscription registry, one :class:`ShardConnection` per shard in
use, the connection slots, the single re-authentication, the bounded event queue and the
counters behind :meth:`health`. The broker modules (``kite.ticker``, ``angelone.websocket``)
only supply a :class:`~tickstream.feeds.adapter.BrokerAdapter`.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import AsyncIterator, Hashable, Sequence

from tickstream.feeds.adapter import BrokerAdapter, FeedConfig
from tickstream.feeds.base import ConnectionState, FeedEvent, FeedHealth
from tickstream.feeds.connection import ShardConnection
from tickstream.feeds.registry import Entry, SubscriptionRegistry
from tickstream.feeds.supervisor import ConnectionSlots
from tickstream.feeds.wire_common import Reject
from tickstream.model import Instrument, Mode, Tick
from tickstream.pipeline.sequence import GapEvent

__all__ = ["ShardedFeed"]

log = logging.getLogger(__name__)

_SAMPLES = 20  # rejected packets and server errors kept for inspection


class ShardedFeed:
    """A Feed over ``adapter``; see the module docstring."""

    def __init__(self, adapter: BrokerAdapter, config: FeedConfig | None = None) -> None:
        self.adapter = adapter
        self.source = adapter.source
        self.config = config or FeedConfig()
        self.registry = SubscriptionRegistry(adapter.limits, broker=adapter.source)
        self.slots = ConnectionSlots(adapter.limits.connections)
        self.liveness_timeout_s = adapter.heartbeat_secs * self.config.heartbeat_timeout_factor
        self._queue: asyncio.Queue[FeedEvent | None] = asyncio.Queue(self.config.queue_max_batches)
        self._shards: dict[int, ShardConnection] = {}
        self._auth_lock = asyncio.Lock()
        self._running = False
        self._seen: dict[tuple[str, int], float] = {}  # last data (or subscribe) monotonic time
        self._overflow: tuple[int, int, set[tuple[str, int]]] | None = None
        self._held_gaps: list[GapEvent] = []  # gap events never drop: held until there is room
        self.rejected: collections.Counter[str] = collections.Counter()
        self.reject_samples: collections.deque[Reject] = collections.deque(maxlen=_SAMPLES)
        self.server_errors: collections.deque[str] = collections.deque(maxlen=_SAMPLES)
        self.server_error_count = 0
        self.gaps = 0
        self.dropped_batches = 0
        self.auth_attempts = 0
        self.frames = self.packets = self.parsed = 0  # accounting: received = parsed + rejected

    # ------------------------------------------------------------------------------ Feed API
    async def start(self) -> None:
        self._running = True
        for shard in self.registry.used_shards():
            self._shard(shard).start()

    async def stop(self) -> None:
        self._running = False
        for conn in list(self._shards.values()):
            await conn.stop()
        while self._queue.full():
            self._queue.get_nowait()
        self._queue.put_nowait(None)

    async def subscribe(self, instruments: Sequence[Instrument], mode: Mode = Mode.QUOTE) -> None:
        await self.subscribe_mode(instruments, mode.value)

    async def subscribe_mode(self, instruments: Sequence[Instrument], mode: str) -> None:
        """Subscribe under a broker mode tag (``ltp``/``quote``/``full``, Angel ``depth``)."""
        items = [(self.adapter.key_for(inst, mode), inst) for inst in instruments]
        old = {k: e for k, _ in items if (e := self.registry.get(k)) is not None and e.mode != mode}
        changed = self.registry.add(items, mode)
        now = asyncio.get_running_loop().time()
        for _, inst in items:
            self.adapter.track(inst)
            self._seen.setdefault((inst.exchange, inst.token), now)
        for shard, keys in changed.items():
            conn = self._shard(shard)
            if not self._running:
                continue
            conn.start()
            if self.adapter.unsubscribe_on_mode_change:
                stale = [(k, old[k]) for k in keys if k in old]
                await self._send(conn, self.adapter.unsubscribe_messages(stale) if stale else [])
            entries = [(k, e) for k in keys if (e := self.registry.get(k)) is not None]
            await self._send(conn, self.adapter.subscribe_messages(entries))

    async def unsubscribe(self, instruments: Sequence[Instrument]) -> None:
        keys = [k for inst in instruments for k in self.adapter.all_keys(inst)]
        removed = self.registry.remove(keys)
        for inst in instruments:
            self._seen.pop((inst.exchange, inst.token), None)
        for shard, pairs in removed.items():
            conn = self._shards.get(shard)
            if conn is not None:
                await self._send(conn, self.adapter.unsubscribe_messages(pairs))

    async def events(self) -> AsyncIterator[FeedEvent]:
        while (event := await self._queue.get()) is not None:
            yield event

    def health(self) -> FeedHealth:
        conns = tuple(c.health() for c in sorted(self._shards.values(), key=lambda c: c.shard))
        data = [c.last_data_ns for c in conns if c.last_data_ns is not None]
        beats = [c.last_heartbeat_ns for c in conns if c.last_heartbeat_ns is not None]
        return FeedHealth(
            source=self.source,
            state=self._state(conns),
            connections=conns,
            subscribed=len(self.registry),
            last_data_ns=max(data, default=None),
            last_heartbeat_ns=max(beats, default=None),
            reconnects=sum(c.reconnects for c in conns),
            rejected=dict(self.rejected),
            server_errors=self.server_error_count,
            gaps=self.gaps,
            dropped_batches=self.dropped_batches,
            auth_attempts=self.auth_attempts,
            stale=self.stale(),
            frames=self.frames,
            packets=self.packets,
            parsed=self.parsed,
        )

    def stale(self) -> tuple[str, ...]:
        """``exchange:token`` of subscribed instruments without data for ``stale_after_secs``."""
        limit = asyncio.get_running_loop().time() - self.config.stale_after_secs
        return tuple(sorted(f"{ex}:{tok}" for (ex, tok), t in self._seen.items() if t < limit))

    def _state(self, conns: tuple[object, ...]) -> ConnectionState:
        if not self._running:
            return ConnectionState.STOPPED
        states = {c.state for c in self._shards.values()}
        for state in (
            ConnectionState.AUTH_WAIT,
            ConnectionState.BACKOFF,
            ConnectionState.CONNECTING,
        ):
            if state in states:
                return state
        return ConnectionState.CONNECTED if states else ConnectionState.IDLE

    def exchange_now(self) -> int:
        """Now on the exchange clock (wall time unless the config names another clock)."""
        clock = self.config.exchange_clock_ns or self.config.clock_ns
        return clock()

    # ------------------------------------------------------------------------------ internals
    def _shard(self, shard: int) -> ShardConnection:
        conn = self._shards.get(shard)
        if conn is None:
            conn = self._shards[shard] = ShardConnection(self, shard)
        if self._running:
            conn.start()
        return conn

    async def _send(self, conn: ShardConnection, messages: list[str]) -> None:
        ws = conn.ws
        if ws is None or not conn.ready:
            return  # the (re)connect sends the whole shard
        try:
            for message in messages:
                await ws.send(message)
        except Exception as exc:  # the reader sees the same failure and reconnects
            log.info("%s shard %d: send failed (%s)", self.source, conn.shard, type(exc).__name__)

    async def reauthenticate(self, failed_credential: str) -> None:
        """New credentials, one attempt per refused credential, shared by every shard."""
        async with self._auth_lock:
            while self.adapter.credential_id() == failed_credential:
                self.auth_attempts += 1
                try:
                    changed = await self.adapter.reauthenticate()
                except Exception as exc:
                    log.warning("%s: re-authentication failed: %s", self.source, exc)
                    changed = False
                if changed and self.adapter.credential_id() != failed_credential:
                    log.info("%s: re-authenticated, resuming", self.source)
                    return
                await asyncio.sleep(self.config.auth_retry_secs)

    # ------------------------------------------------------------------------------ from shards
    def on_ticks(self, ticks: list[Tick]) -> None:
        now = asyncio.get_running_loop().time()
        seen = self._seen
        for tick in ticks:
            key = (tick.exchange, tick.token)
            if key in seen:  # a late tick of an unsubscribed instrument must not come back
                seen[key] = now
        self._put(ticks)

    def on_gap(self, event: GapEvent) -> None:
        self.gaps += 1
        log.warning(
            "%s: gap %s for %d instruments, %.3fs", self.source, event.cause,
            len(event.instruments or ()), (event.end_ns - event.start_ns) / 1e9,
        )  # fmt: skip
        self._put(event)

    def on_server_error(self, shard: int, detail: str) -> None:
        self.server_error_count += 1
        self.server_errors.append(detail)
        log.warning("%s shard %d: server error: %.300s", self.source, shard, detail)

    def count_rejects(self, shard: int, rejects: list[Reject]) -> None:
        for reject in rejects:
            n = self.rejected[reject.reason] = self.rejected[reject.reason] + 1
            self.reject_samples.append(reject)
            if n == 1 or n % 1000 == 0:
                log.warning(
                    "%s shard %d: rejected packet (%s, %d so far): %s", self.source, shard,
                    reject.reason, n, reject.detail,
                )  # fmt: skip

    def _put(self, event: FeedEvent) -> None:
        queue = self._queue
        while self._held_gaps and queue.maxsize - queue.qsize() >= 2:
            queue.put_nowait(self._held_gaps.pop(0))
        if self._overflow is not None and queue.maxsize - queue.qsize() >= 2:
            start, end, keys = self._overflow
            self._overflow = None
            gap = GapEvent(
                source=self.source, instruments=tuple(sorted(keys)), start_ns=start, end_ns=end,
                cause="queue_overflow",
            )  # fmt: skip
            self.gaps += 1
            queue.put_nowait(gap)
        try:
            queue.put_nowait(event)
        except asyncio.QueueFull:
            self._dropped(event)

    def _dropped(self, event: FeedEvent) -> None:
        self.dropped_batches += 1
        if isinstance(event, GapEvent):
            self._held_gaps.append(event)
            return
        ts = [t.ts_recv for t in event]
        keys = {(t.exchange, t.token) for t in event}
        if self._overflow is None:
            self._overflow = (min(ts), max(ts), keys)
        else:
            start, end, old = self._overflow
            self._overflow = (min(start, *ts), max(end, *ts), old | keys)


def entries_by_mode(entries: Sequence[tuple[Hashable, Entry]]) -> dict[str, list[Hashable]]:
    """Group subscription keys by mode tag (helper for the adapters' messages)."""
    out: dict[str, list[Hashable]] = {}
    for key, entry in entries:
        out.setdefault(entry.mode, []).append(key)
    return out
