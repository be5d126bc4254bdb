"""The exchange simulator: one market, a Kite ticker server and an Angel SmartStream server.

``async with SimServer(SimConfig()) as sim:`` starts both WebSocket servers on loopback (port 0 by
default: the OS picks, ``sim.kite_ws_url`` / ``sim.angel_ws_url`` say where) and one task that
steps the market every ``tick_interval_ms`` of wall time and fans the ticks out to every
connection's bounded send queue. Tests that want full control pass ``autostep=False`` and call
:meth:`SimServer.step_once`.

With ``rest=True`` the REST simulator (:class:`tickstream.sim.rest.SimRestServer`: login, session,
instruments, history) runs too, sharing :attr:`SimServer.authority` (its ``TokenAuthority``) so that
tokens it issues at login open these WebSocket servers; ``sim.kite_rest_root`` /
``sim.angel_rest_root`` say where.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING

import msgspec
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from tickstream.model import Instrument, Tick
from tickstream.sim._conn import ConnectionInfo, Recorder, SimConnection
from tickstream.sim.angel_ws import AngelWsServer
from tickstream.sim.clock import SimClock
from tickstream.sim.credentials import SimAuthority, SimCredentials
from tickstream.sim.faults import FaultPlan, Faults
from tickstream.sim.kite_ws import KiteWsServer
from tickstream.sim.market import Market
from tickstream.sim.universe import load_universe, reference_prices

if TYPE_CHECKING:
    from tickstream.sim.rest import SimRestServer

__all__ = ["Emission", "SimConfig", "SimServer"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SimConfig:
    """How to run the simulator. Everything has a working default."""

    host: str = "127.0.0.1"
    kite_port: int = 0
    angel_port: int = 0
    seed: int = 0
    tick_interval_ms: float = 50.0
    autostep: bool = True
    universe_path: Path | None = None
    instruments: Sequence[Instrument] | None = None
    reference_prices: Mapping[str, float] | None = None
    price_source: Mapping[str, Sequence[tuple[int, float]]] | None = None
    clock: SimClock | None = None
    credentials: SimCredentials | None = None
    faults: FaultPlan | None = None
    emission_log: Path | None = None  # JSONL of every tick sent, per connection
    emission_memory: int = 0  # keep the last N emissions in ``SimServer.emissions``
    # Called right after each data frame is written to a client socket, with the connection id
    # and the (tick, mode name) pairs it carried (end-to-end latency: the send-time stamp).
    on_send: Recorder | None = None
    queue_size: int = 1024  # messages per connection before new ones are dropped
    heartbeat_s: float = 1.0
    kite_max_instruments: int = 3000
    kite_max_connections: int = 3
    angel_max_tokens: int = 1000
    angel_max_depth_tokens: int = 50
    angel_max_connections: int = 3
    rest: bool = False  # also serve the Kite and Angel REST simulators (login, history, ...)
    kite_rest_port: int = 0
    angel_rest_port: int = 0


class Emission(msgspec.Struct, frozen=True):
    """One tick as written to one connection, in the broker's mode name it was sent in (Kite
    ``ltp``/``quote``/``full``, Angel ``LTP``/``QUOTE``/``SNAP_QUOTE``/``DEPTH``); ``n`` numbers
    emissions across the whole simulator in send order."""

    conn_id: str
    n: int
    mode: str
    tick: Tick


class SimServer:
    """The running simulator; see the module docstring."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        c = self.config
        self.clock = c.clock or SimClock()
        self.authority = SimAuthority(c.credentials or SimCredentials.generate())
        self.faults = Faults(c.faults)
        self.faults.on_change = self._on_fault
        instruments = list(c.instruments or load_universe(c.universe_path))
        refs = c.reference_prices if c.reference_prices is not None else reference_prices(
            c.universe_path
        )  # fmt: skip
        self.market = Market(
            instruments, seed=c.seed, start_ns=self.clock.now_ns(), reference_prices=refs,
            price_source=c.price_source,
        )  # fmt: skip
        self.emissions: collections.deque[Emission] = collections.deque(maxlen=c.emission_memory)
        self._emitted = 0
        self._log_file: IO[bytes] | None = None
        record = self._record if (c.emission_log or c.emission_memory) else c.on_send
        self.kite = KiteWsServer(
            self.market, self.authority, self.faults, queue_size=c.queue_size,
            heartbeat_s=c.heartbeat_s, recorder=record, max_instruments=c.kite_max_instruments,
            max_connections=c.kite_max_connections,
        )  # fmt: skip
        self.angel = AngelWsServer(
            self.market, self.authority, self.faults, queue_size=c.queue_size, recorder=record,
            max_tokens=c.angel_max_tokens, max_depth_tokens=c.angel_max_depth_tokens,
            max_connections=c.angel_max_connections,
        )  # fmt: skip
        self._servers: list[Server] = []
        self._rest: SimRestServer | None = None
        self._refs = refs
        self._task: asyncio.Task[None] | None = None
        self._expiry_applied: int | None = None
        self.kite_ws_url = ""
        self.angel_ws_url = ""
        self.kite_rest_root = ""
        self.angel_rest_root = ""

    # ------------------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> SimServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        await self.stop()

    async def start(self) -> None:
        c = self.config
        if c.emission_log is not None:
            self._log_file = c.emission_log.open("ab")
        kite = await _serve(self.kite.handler, self.kite.process_request, c.host, c.kite_port)
        angel = await _serve(self.angel.handler, self.angel.process_request, c.host, c.angel_port)
        self._servers = [kite, angel]
        self.kite_ws_url = f"ws://{c.host}:{_port(kite)}/"
        self.angel_ws_url = f"ws://{c.host}:{_port(angel)}/smart-stream"
        if c.rest:
            await self._start_rest()
        if c.autostep:
            self._task = asyncio.create_task(self._run(), name="sim-market")
        log.info("sim: kite %s, angel %s", self.kite_ws_url, self.angel_ws_url)

    async def _start_rest(self) -> None:
        from tickstream.sim.rest import SimRestServer

        c = self.config
        self._rest = SimRestServer(
            self.authority, self.market.instruments, prices=self._refs, host=c.host,
            port=c.kite_rest_port, angel_port=c.angel_rest_port,
        )  # fmt: skip
        await self._rest.start()
        self.kite_rest_root = self._rest.kite_root
        self.angel_rest_root = self._rest.angel_root

    async def stop(self) -> None:
        if self._rest is not None:
            await self._rest.stop()
            self._rest = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for server in self._servers:
            server.close()
        for server in self._servers:
            await server.wait_closed()
        self._servers = []
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.config.tick_interval_ms / 1000
        next_at = loop.time()
        while True:
            try:
                self.step_once()
            except Exception:  # a bug in one step must not kill the feed for every client
                log.exception("sim: market step failed")
            next_at = max(next_at + interval, loop.time())
            await asyncio.sleep(next_at - loop.time())

    # ------------------------------------------------------------------------------ stepping
    def step_once(self, now_ns: int | None = None) -> list[Tick]:
        """Advance the market to ``now_ns`` (default: the clock) and send the ticks out."""
        now = self.clock.now_ns() if now_ns is None else now_ns
        expire_at = self.faults.expire_at_ns()
        if expire_at is not None and now >= expire_at and self._expiry_applied != expire_at:
            self._expiry_applied = expire_at
            self.expire_tokens()
        ticks = self.market.step(now, tick_rate_scale=self.faults.tick_rate_scale())
        self.kite.publish(ticks)
        self.angel.publish(ticks)
        return ticks

    # ------------------------------------------------------------------------------ control
    @property
    def credentials(self) -> SimCredentials:
        """The simulator's credentials (with the most recently issued tokens)."""
        return self.authority.credentials

    def expire_tokens(self) -> None:
        """Every issued token stops opening connections (live connections stay up)."""
        log.info("sim: access tokens expired")
        self.authority.expire_tokens()

    def issue_kite_token(self) -> str:
        return self.authority.issue_kite_token()

    def issue_angel_tokens(self) -> tuple[str, str, str]:
        """A fresh ``(jwt, refresh_token, feed_token)``."""
        return self.authority.issue_angel_tokens()

    def _all(self) -> dict[str, SimConnection]:
        return {**self.kite.connections, **self.angel.connections}

    def connections(self) -> list[ConnectionInfo]:
        """The live connections with their ids (for ``faults.set(conn_id, ...)``)."""
        return [conn.info() for conn in self._all().values()]

    def _on_fault(self, conn_id: str | None, plan: FaultPlan) -> None:
        if not plan.close:
            return
        conns = self._all()
        if conn_id is not None and conn_id not in conns:
            raise KeyError(f"no live connection {conn_id!r}; live: {', '.join(conns) or 'none'}")
        targets = list(conns.values()) if conn_id is None else [conns[conn_id]]
        for conn in targets:
            conn.abort()

    def _record(self, conn_id: str, sent: Sequence[tuple[Tick, str]]) -> None:
        if self.config.on_send is not None:
            self.config.on_send(conn_id, sent)
        for tick, mode in sent:
            self._emitted += 1
            emission = Emission(conn_id, self._emitted, mode, tick)
            self.emissions.append(emission)
            if self._log_file is not None:
                self._log_file.write(msgspec.json.encode(emission) + b"\n")


async def _serve(
    handler: Callable[[ServerConnection], Awaitable[None]],
    process_request: Callable[[ServerConnection, Request], Response | None],
    host: str,
    port: int,
) -> Server:
    # No server keepalive pings (the brokers' clients ping), no compression (the brokers send
    # plain frames), frames up to 1 MiB (3000 full-mode Kite packets are ~560 KB).
    return await serve(
        handler, host, port, process_request=process_request, ping_interval=None,
        compression=None, max_size=2**20,
    )  # fmt: skip


def _port(server: Server) -> int:
    for sock in server.sockets:
        return int(sock.getsockname()[1])
    raise RuntimeError("server has no listening socket")
