"""One supervised WebSocket connection (one shard of a feed's subscriptions).

The supervisor loop: take a connection slot, open the socket, resubscribe exactly this shard's
registry entries, then read until the socket dies while a watchdog checks transport liveness
(and sends Angel's ``ping``). Every way out is classified (``supervisor.classify``):
transient errors back off, a quota refusal cools every shard down, an auth refusal hands over to
the feed's single re-authentication (never the same token twice), protocol errors are counted.
The first disconnect opens a pending gap; the first data after reconnecting closes it and the
gap event goes out ahead of that data.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from tickstream.feeds.adapter import TextKind
from tickstream.feeds.base import ConnectionHealth, ConnectionState, TransientError
from tickstream.feeds.supervisor import Backoff, ErrorClass, LivenessTimeout, classify, describe
from tickstream.pipeline.sequence import GapEvent

if TYPE_CHECKING:
    from tickstream.feeds.client import ShardedFeed

__all__ = ["ShardConnection"]

log = logging.getLogger(__name__)


class ShardConnection:
    """The supervisor of one connection; see the module docstring."""

    def __init__(self, feed: ShardedFeed, shard: int) -> None:
        self.feed = feed
        self.shard = shard
        self.state = ConnectionState.IDLE
        self.ws: ClientConnection | None = None
        self.ready = False  # the initial (re)subscription has been sent on ``ws``
        self.connects = 0
        self.last_data_ns: int | None = None
        self.last_heartbeat_ns: int | None = None
        self.last_rx_ns: int | None = None  # on the exchange clock (for gap events)
        self.last_error: str | None = None
        self.task: asyncio.Task[None] | None = None
        self._pending_gap: tuple[int, str, tuple[tuple[str, int], ...]] | None = None
        self._timed_out = False
        self._rx_mono = 0.0
        cfg = feed.config
        self._backoff = Backoff(
            cfg.reconnect_delay_initial_secs,
            cfg.reconnect_delay_max_secs,
            healthy_after_s=cfg.healthy_after_secs,
        )

    @property
    def reconnects(self) -> int:
        return max(0, self.connects - 1)

    def health(self) -> ConnectionHealth:
        return ConnectionHealth(
            shard=self.shard,
            state=self.state,
            subscribed=self.feed.registry.shard_count(self.shard),
            connects=self.connects,
            reconnects=self.reconnects,
            last_data_ns=self.last_data_ns,
            last_heartbeat_ns=self.last_heartbeat_ns,
            last_error=self.last_error,
        )

    def start(self) -> None:
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self.run(), name=f"{self.feed.source}-{self.shard}")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None
        self.state = ConnectionState.STOPPED

    # ------------------------------------------------------------------------------ supervisor
    async def run(self) -> None:
        feed = self.feed
        loop = asyncio.get_running_loop()
        while True:
            credential = feed.adapter.credential_id()
            self.state = ConnectionState.CONNECTING
            await feed.slots.acquire()
            opened_at: float | None = None
            error: Exception = TransientError("connection ended")
            try:
                ws = await feed.adapter.open()
                opened_at = loop.time()
                await self._session(ws)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = self._liveness(exc)
            finally:
                feed.slots.release()
            if opened_at is not None:
                self._backoff.connection_ended(loop.time() - opened_at)
            await self._after(error, credential, connected=opened_at is not None)

    def _liveness(self, exc: Exception) -> Exception:
        if self._timed_out:
            self._timed_out = False
            return LivenessTimeout(f"no byte for {self.feed.liveness_timeout_s:g}s")
        return exc

    async def _after(self, exc: Exception, credential: str, *, connected: bool) -> None:
        kind, cause = classify(exc), describe(exc)
        self.last_error = cause
        if connected or self._pending_gap is not None:
            self._open_gap(cause)
        log.warning("%s shard %d: %s (%s)", self.feed.source, self.shard, cause, kind.value)
        if kind is ErrorClass.AUTH:
            self.state = ConnectionState.AUTH_WAIT
            await self.feed.reauthenticate(credential)
            return
        if kind is ErrorClass.RATE_LIMIT:
            self.feed.slots.cool_down(self.feed.config.rate_limit_cooldown_secs)
        self.state = ConnectionState.BACKOFF
        await asyncio.sleep(self._backoff.next_delay())

    def _open_gap(self, cause: str) -> None:
        if self._pending_gap is not None:
            start, causes, instruments = self._pending_gap
            if cause not in causes.split("+"):
                self._pending_gap = (start, f"{causes}+{cause}", instruments)
            return
        start = self.last_rx_ns if self.last_rx_ns is not None else self.feed.exchange_now()
        entries = self.feed.registry.shard_entries(self.shard).values()
        instruments = tuple(
            dict.fromkeys((e.instrument.exchange, e.instrument.token) for e in entries)
        )
        self._pending_gap = (start, cause, instruments)

    # ------------------------------------------------------------------------------ session
    async def _session(self, ws: ClientConnection) -> None:
        feed = self.feed
        self.ws, self.connects = ws, self.connects + 1
        self.state = ConnectionState.CONNECTED
        self.last_rx_ns = None
        entries = list(feed.registry.shard_entries(self.shard).items())
        messages = feed.adapter.subscribe_messages(entries)
        self.ready = True
        log.info("%s shard %d: connected, subscribing %d", feed.source, self.shard, len(entries))
        watchdog = asyncio.create_task(self._watchdog(ws))
        try:
            for message in messages:
                await ws.send(message)
            while True:
                self._on_message(await ws.recv())
        finally:
            self.ready = False
            self.ws = None
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
            ws.transport.abort()

    async def _watchdog(self, ws: ClientConnection) -> None:
        """Abort the socket after ``timeout`` without a byte; send the ping if the broker wants."""
        feed = self.feed
        loop = asyncio.get_running_loop()
        interval = feed.adapter.heartbeat_secs
        timeout = feed.liveness_timeout_s
        last = self._rx_mono = loop.time()
        while True:
            await asyncio.sleep(min(interval, timeout) / 2)
            if feed.adapter.ping_text is not None and loop.time() - last >= interval:
                last = loop.time()
                with contextlib.suppress(ConnectionClosed):
                    await ws.send(feed.adapter.ping_text)
            if loop.time() - self._rx_mono > timeout:
                log.warning(
                    "%s shard %d: no byte for %.3gs, aborting", feed.source, self.shard, timeout
                )
                self._timed_out = True
                ws.transport.abort()
                return

    def _on_message(self, message: str | bytes) -> None:
        feed = self.feed
        now = feed.config.clock_ns()
        exchange_now = feed.exchange_now() if feed.config.exchange_clock_ns else now
        self.last_rx_ns = exchange_now
        self._rx_mono = asyncio.get_running_loop().time()
        if isinstance(message, str):
            self._on_text(message, now)
            return
        stamp = exchange_now if feed.config.stamp_packets_on_exchange_clock else now
        result = feed.adapter.decode(message, now, stamp)
        feed.frames += 1
        feed.packets += result.packets
        feed.parsed += len(result.ticks)
        if result.heartbeat:
            self.last_heartbeat_ns = now
        if result.rejects:
            feed.count_rejects(self.shard, result.rejects)
        if result.ticks:
            self.last_data_ns = now
            if self._pending_gap is not None:
                self._close_gap(exchange_now)
            feed.on_ticks(result.ticks)

    def _close_gap(self, end_ns: int) -> None:
        assert self._pending_gap is not None
        start, cause, instruments = self._pending_gap
        self._pending_gap = None
        event = GapEvent(
            source=self.feed.source, instruments=instruments, start_ns=start, end_ns=end_ns,
            cause=cause,
        )  # fmt: skip
        self.feed.on_gap(event)

    def _on_text(self, text: str, now: int) -> None:
        kind, detail = self.feed.adapter.text(text)
        if kind is TextKind.HEARTBEAT:
            self.last_heartbeat_ns = now
        elif kind is TextKind.ERROR:
            self.last_error = detail[:200]
            self.feed.on_server_error(self.shard, detail)
        else:
            log.debug("%s shard %d: server message %.200s", self.feed.source, self.shard, detail)
