"""Fan-out from the bus to WebSocket clients: one pump task per topic, one bounded queue per client.

A pump reads its bus subscription in batches, encodes each tick or candle *once*, appends the bytes
to the queue of every client subscribed to that instrument and then wakes each touched client once
per batch. Appending never blocks: a client queue keeps the newest ``queue_max`` items and counts
what it dropped, so a client that stops reading loses its own oldest messages (and is told how
many), while ingest and the other clients go on unaffected.

Each client's writer task (see :mod:`tickstream.serve.ws`) sends control messages first, then
everything queued as one ``ticks`` and/or one ``candles`` message: under load a batch per wake-up,
which keeps the per-message cost of 100 clients well below one send per tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from tickstream.bus.base import Bus, Overflow, Subscription
from tickstream.model import Candle, Instrument, Tick
from tickstream.pipeline.engine import TOPIC_ENRICHED, TOPIC_TICKS
from tickstream.serve.resolve import Resolver
from tickstream.serve.wire import candle_json, encode, message, tick_json
from tickstream.storage.ringbuffer import RingBuffer

__all__ = ["CHANNELS", "KIND_CANDLE", "KIND_TICK", "Client", "ClientQueue", "Hub", "WsLimits"]

log = logging.getLogger(__name__)

KIND_TICK: Final = 0
KIND_CANDLE: Final = 1
CHANNELS: Final = frozenset({"ticks", "candles"})
_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class WsLimits:
    queue_max: int = 1000  # items (ticks/candles) per client before the oldest are dropped
    max_subscriptions: int = 1000  # instruments per connection
    max_refs_per_request: int = 20_000  # anything longer is refused outright
    max_frame_bytes: int = 256 * 1024  # inbound frames above this close with 1009
    max_errors: int = 10  # malformed/unknown/over-rate messages before closing with 1008
    messages_per_sec: float = 20.0  # inbound message rate per connection
    message_burst: int = 50
    control_max: int = 256  # unsent control messages before the client counts as not reading
    batch_max: int = 2000  # items per outgoing message
    backfill_per_instrument: int = 100
    backfill_total: int = 5000
    candle_history: int = (
        60  # recent enriched candles kept per (instrument, interval), for backfill
    )
    ping_interval_s: float = 15.0


class ClientQueue:
    """Bounded DROP_OLDEST queue of encoded items, counting drops since the last :meth:`take`."""

    __slots__ = ("_items", "dropped", "dropped_total", "maxsize")

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self.maxsize = maxsize
        self._items: deque[tuple[int, bytes]] = deque()
        self.dropped = 0
        self.dropped_total = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, kind: int, data: bytes) -> None:
        items = self._items
        if len(items) >= self.maxsize:
            items.popleft()
            self.dropped += 1
            self.dropped_total += 1
        items.append((kind, data))

    def take(self, max_items: int) -> tuple[list[tuple[int, bytes]], int]:
        """Up to ``max_items`` oldest items, and how many were dropped before them."""
        items = self._items
        n = min(max_items, len(items))
        out = [items.popleft() for _ in range(n)]
        dropped, self.dropped = self.dropped, 0
        return out, dropped


class Client:
    """One connection's subscriptions, data queue and control messages."""

    def __init__(self, limits: WsLimits, key_id: str = "") -> None:
        self.id = next(_ids)
        self.key_id = key_id
        self.queue = ClientQueue(limits.queue_max)
        self.control: deque[str] = deque()
        self.control_max = limits.control_max
        self.wake = asyncio.Event()
        self.keys: set[str] = set()
        self.channels: set[str] = {"ticks"}
        self.intervals: frozenset[str] | None = None  # None: every interval
        self.hold = 0  # >0 while a backfill is being prepared: live data waits behind it
        self.messages_sent = 0

    def __repr__(self) -> str:
        return f"Client(id={self.id}, subscriptions={len(self.keys)}, queued={len(self.queue)})"

    def say(self, payload: dict[str, Any] | str) -> bool:
        """Queue a control message; False when the client has stopped reading them."""
        if len(self.control) >= self.control_max:
            return False
        self.control.append(payload if isinstance(payload, str) else encode(payload).decode())
        self.wake.set()
        return True

    def next_messages(self, batch_max: int) -> list[str]:
        """What to send now: control first, then a dropped marker and the queued data."""
        out = list(self.control)
        self.control.clear()
        if self.hold:
            return out
        items, dropped = self.queue.take(batch_max)
        if dropped:
            out.append(f'{{"type":"dropped","count":{dropped}}}')
        ticks = [d for k, d in items if k == KIND_TICK]
        candles = [d for k, d in items if k == KIND_CANDLE]
        if ticks:
            out.append(message("ticks", "data", ticks))
        if candles:
            out.append(message("candles", "data", candles))
        if len(self.queue):
            self.wake.set()
        return out


class Hub:
    """Owns the bus subscriptions, the instrument -> clients index and the pump tasks."""

    def __init__(
        self,
        bus: Bus,
        ring: RingBuffer,
        resolver: Resolver,
        limits: WsLimits | None = None,
        *,
        tick_topic: str = TOPIC_TICKS,
        candle_topic: str = TOPIC_ENRICHED,
        bus_maxsize: int = 100_000,
    ) -> None:
        self.bus, self.ring, self.resolver = bus, ring, resolver
        self.limits = limits or WsLimits()
        self.topics = (tick_topic, candle_topic)
        self._bus_maxsize = bus_maxsize
        self._index: dict[str, set[Client]] = {}
        self._recent: dict[str, dict[str, deque[bytes]]] = {}  # key -> interval -> candles
        self.clients: set[Client] = set()
        self._subs: list[Subscription] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.counts = {"ticks_in": 0, "candles_in": 0, "connections": 0, "rejected": 0}
        self.last_tick_ns: int | None = None  # wall clock of the last fan-out with ticks
        self.lag_ns: int | None = None  # that fan-out's time minus its last tick's ts_recv

    async def start(self) -> None:
        kinds = ((self.topics[0], Tick, KIND_TICK), (self.topics[1], Candle, KIND_CANDLE))
        for topic, type_, kind in kinds:
            sub = await self.bus.subscribe(
                topic, type_=type_, maxsize=self._bus_maxsize, overflow=Overflow.DROP_OLDEST
            )
            self._subs.append(sub)
            self._tasks.append(asyncio.create_task(self._pump(sub, kind), name=f"ws-pump:{topic}"))

    async def stop(self) -> None:
        for sub in self._subs:
            await sub.close()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._subs.clear()
        self._tasks.clear()

    def attach(self, client: Client) -> None:
        self.clients.add(client)
        self.counts["connections"] += 1

    def detach(self, client: Client) -> None:
        self.clients.discard(client)
        for key in client.keys:
            watchers = self._index.get(key)
            if watchers is not None:
                watchers.discard(client)
                if not watchers:
                    del self._index[key]
        client.keys.clear()

    async def _pump(self, sub: Subscription, kind: int) -> None:
        batch_max = self.limits.batch_max
        while True:
            msgs = await sub.get_batch(batch_max, timeout=1.0)
            if not msgs:
                if getattr(sub, "closed", False) or getattr(sub, "_closed", False):
                    return
                continue
            try:
                if kind == KIND_TICK:
                    self._fan_ticks([m.value for m in msgs])
                else:
                    self._fan_candles([m.value for m in msgs])
            except Exception:  # one bad message must not stop the fan-out for everyone
                log.exception("ws fan-out failed for a batch of %d", len(msgs))

    def _fan_ticks(self, ticks: list[Tick]) -> None:
        self.counts["ticks_in"] += len(ticks)
        index = self._index
        touched: set[Client] = set()
        for t in ticks:
            clients = index.get(f"{t.exchange}:{t.token}")
            if not clients:
                continue
            data = tick_json(t)
            for c in clients:
                if "ticks" in c.channels:
                    c.queue.put(KIND_TICK, data)
                    touched.add(c)
        if ticks:
            now = time.time_ns()
            self.last_tick_ns = now
            self.lag_ns = now - ticks[-1].ts_recv
        for c in touched:
            c.wake.set()

    def _fan_candles(self, candles: list[Candle]) -> None:
        self.counts["candles_in"] += len(candles)
        touched: set[Client] = set()
        keep = self.limits.candle_history
        for candle in candles:
            key = f"{candle.exchange}:{candle.token}"
            data = candle_json(candle)
            if keep:
                by_interval = self._recent.setdefault(key, {})
                recent = by_interval.get(candle.interval.value)
                if recent is None:
                    recent = by_interval[candle.interval.value] = deque(maxlen=keep)
                recent.append(data)
            clients = self._index.get(key)
            if not clients:
                continue
            for c in clients:
                wanted = c.intervals is None or candle.interval.value in c.intervals
                if "candles" in c.channels and wanted:
                    c.queue.put(KIND_CANDLE, data)
                    touched.add(c)
        for c in touched:
            c.wake.set()

    def _pick(self, client: Client, refs: Iterable[object]) -> tuple[list[Instrument], list[Any]]:
        cap = self.limits.max_subscriptions
        accepted: dict[str, Instrument] = {}
        refused: list[dict[str, Any]] = []
        for ref in refs:
            found = self.resolver.resolve(ref)
            if isinstance(found, str):
                refused.append({"ref": ref, "reason": found})
            elif found.key in client.keys or found.key in accepted:
                accepted[found.key] = found
            elif len(client.keys) + len(accepted) >= cap:
                refused.append({"ref": ref, "reason": f"subscription cap of {cap} reached"})
            else:
                accepted[found.key] = found
        return list(accepted.values()), refused

    async def subscribe(
        self, client: Client, refs: list[object], *, backfill: int | None = None
    ) -> tuple[list[Instrument], list[dict[str, Any]]]:
        """Resolve and register ``refs``; queue the reply and then the backfill for them."""
        accepted, refused = self._pick(client, refs)
        client.hold += 1
        try:
            for inst in accepted:
                client.keys.add(inst.key)
                self._index.setdefault(inst.key, set()).add(client)
            client.say(
                {
                    "type": "subscribed",
                    "accepted": [i.key for i in accepted],
                    "refused": refused[:100],
                    "refused_count": len(refused),
                    "channels": sorted(client.channels),
                    "subscriptions": len(client.keys),
                }
            )
            if "ticks" in client.channels and accepted:
                await self._backfill(client, accepted, backfill)
            if "candles" in client.channels and accepted:
                self._candle_backfill(client, accepted)
        finally:
            client.hold -= 1
            client.wake.set()
        return accepted, refused

    async def _backfill(self, client: Client, insts: list[Instrument], n: int | None) -> None:
        lim = self.limits
        per = lim.backfill_per_instrument if n is None else max(0, min(n, 1000))
        per = min(per, max(1, lim.backfill_total // len(insts)))
        if per == 0:
            return
        data: list[bytes] = []
        for inst in insts:
            data.extend(
                tick_json(t) for t in await self.ring.recent(inst.exchange, inst.token, per)
            )
        client.say(message("backfill", "ticks", data))

    def _candle_backfill(self, client: Client, insts: list[Instrument]) -> None:
        """The recent closed candles (with indicators) of these instruments, oldest first."""
        data: list[bytes] = []
        for inst in insts:
            for interval, recent in self._recent.get(inst.key, {}).items():
                if client.intervals is None or interval in client.intervals:
                    data.extend(recent)
        if data:
            client.say(message("candles_backfill", "data", data[-self.limits.backfill_total :]))

    def unsubscribe(self, client: Client, refs: list[object] | None) -> list[str]:
        """Remove subscriptions (all when ``refs`` is None); returns the keys removed."""
        if refs is None:
            keys = set(client.keys)
        else:
            keys = {f.key for f in map(self.resolver.resolve, refs) if isinstance(f, Instrument)}
        removed = sorted(keys & client.keys)
        for key in removed:
            client.keys.discard(key)
            watchers = self._index.get(key)
            if watchers is not None:
                watchers.discard(client)
                if not watchers:
                    del self._index[key]
        return removed

    def stats(self) -> dict[str, Any]:
        clients = list(self.clients)
        return {
            **self.counts,
            "clients": len(clients),
            "subscriptions": sum(len(c.keys) for c in clients),
            "queued": sum(len(c.queue) for c in clients),
            "dropped": sum(c.queue.dropped_total for c in clients),
            "messages_sent": sum(c.messages_sent for c in clients),
            "bus_dropped": sum(s.dropped for s in self._subs),
        }
