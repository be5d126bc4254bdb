"""One simulated broker connection: a bounded send queue, a sender task, heartbeats and faults.

The market task only ever calls :meth:`SimConnection.offer` (never awaits a client), so a slow
client cannot hold the market back: when its queue is full, new messages for it are dropped and
counted. What a connection actually wrote to its socket is reported to the recorder (the emission
log) after each send.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from tickstream.model import Tick
from tickstream.sim.faults import FaultPlan, Faults

__all__ = ["ConnectionInfo", "Outgoing", "Recorder", "SimConnection", "serve_connection"]

log = logging.getLogger(__name__)

Recorder = Callable[[str, Sequence[tuple[Tick, str]]], None]


class Outgoing(NamedTuple):
    """One WebSocket message: its payload, whether it is market data, and the ticks it carries."""

    payload: bytes | str
    data: bool
    sent: tuple[tuple[Tick, str], ...] = ()


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    """A live connection as listed by ``SimServer.connections()``."""

    conn_id: str
    broker: str
    subscriptions: int
    messages_sent: int
    dropped: int


class SimConnection:
    """Send side of one client connection (the receive side lives in the broker module)."""

    def __init__(
        self,
        conn_id: str,
        broker: str,
        account: str,
        ws: ServerConnection,
        faults: Faults,
        *,
        queue_size: int,
        heartbeat: bytes | None = None,
        heartbeat_s: float = 1.0,
        recorder: Recorder | None = None,
    ) -> None:
        self.conn_id = conn_id
        self.broker = broker
        self.account = account  # the api key / client code the connection counts against
        self.ws = ws
        self.faults = faults
        self.messages_sent = 0
        self.dropped = 0
        self._queue: asyncio.Queue[Outgoing] = asyncio.Queue(maxsize=queue_size)
        self._heartbeat = heartbeat
        self._heartbeat_s = heartbeat_s
        self._recorder = recorder
        self.recording = recorder is not None  # build emission records only when they are kept
        self._paused = False
        self._counter = itertools.count(1)

    def subscription_count(self) -> int:
        return 0

    def info(self) -> ConnectionInfo:
        return ConnectionInfo(
            self.conn_id, self.broker, self.subscription_count(), self.messages_sent, self.dropped
        )

    def every(self, n: int) -> bool:
        """True on every ``n``-th call (for the ``*_every`` faults); False when ``n`` <= 0."""
        k = next(self._counter)
        return n > 0 and k % n == 0

    def offer(self, item: Outgoing) -> bool:
        """Queue a message without waiting; False (and counted) when the queue is full."""
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self.dropped += 1
            return False
        return True

    def plan(self) -> FaultPlan:
        """The fault plan in force, applying the stall (stop reading the socket) as it changes."""
        plan = self.faults.plan_for(self.conn_id)
        transport = self.ws.transport
        if plan.stall and not self._paused:
            transport.pause_reading()
            self._paused = True
        elif not plan.stall and self._paused:
            transport.resume_reading()
            self._paused = False
        return plan

    def abort(self) -> None:
        """Drop the TCP connection without a close frame."""
        log.info("sim %s: aborting the transport (fault)", self.conn_id)
        self.ws.transport.abort()

    async def _next(self, loop: asyncio.AbstractEventLoop, last: float) -> Outgoing | None:
        if self._heartbeat is not None and loop.time() - last >= self._heartbeat_s:
            return None  # a heartbeat is due (also while muted data keeps arriving)
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            pass
        if self._heartbeat is None:
            return await self._queue.get()
        timeout = max(0.0, self._heartbeat_s - (loop.time() - last))
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None

    async def run_sender(self) -> None:
        """Send queued messages (and heartbeats when idle) until the connection closes."""
        loop = asyncio.get_running_loop()
        last = loop.time()
        try:
            while True:
                item = await self._next(loop, last)
                plan = self.plan()
                if plan.stall or (item is not None and plan.mute and item.data):
                    if plan.stall:
                        last = loop.time()
                    continue
                if item is None:
                    assert self._heartbeat is not None
                    item = Outgoing(self._heartbeat, False)
                if plan.send_delay_s > 0:
                    await asyncio.sleep(plan.send_delay_s)
                await self.ws.send(item.payload)
                last = loop.time()
                self.messages_sent += 1
                if self._recorder is not None and item.sent:
                    self._recorder(self.conn_id, item.sent)
        except ConnectionClosed:
            return


async def serve_connection(conn: SimConnection, on_message: Callable[[str | bytes], None]) -> None:
    """Run a connection: its sender task plus the receive loop feeding ``on_message``."""
    sender = asyncio.create_task(conn.run_sender(), name=f"sim-send-{conn.conn_id}")
    try:
        async for message in conn.ws:
            on_message(message)
    except ConnectionClosed:
        pass
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
