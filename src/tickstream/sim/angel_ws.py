"""The simulated Angel One SmartStream (WebSocket 2.0) server.

Handshake: ``GET /smart-stream`` with headers ``Authorization`` (the jwt, ``Bearer`` prefix
optional), ``x-api-key``, ``x-client-code`` and ``x-feed-token``; anything missing, wrong or expired
gets a real HTTP 401 response, a fourth connection for one client code HTTP 429 (Angel closes the
connection past three; a 429 at the handshake has been reported by users). Every byte sent is built
by :mod:`tickstream.feeds.angelone.wire`: one little-endian packet per binary message.

Requests ``{"correlationID", "action": 1|0, "params": {"mode", "tokenList"}}`` subscribe or
unsubscribe; the text ``ping`` is answered with ``pong``. Errors come back as
``{"correlationID", "errorCode", "errorMessage"}``: ``E1001`` for an invalid request payload
(including DEPTH on anything but nse_cm), ``E1002`` when a subscription limit would be exceeded
(1000 tokens per connection, 50 in DEPTH mode); the request is then not applied. The error codes
follow Angel's WebSocket 2.0 documentation as we read it. Unknown tokens are accepted and never
tick. Right after a subscription the current state of each known token is sent.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterable, Sequence
from http import HTTPStatus

import msgspec
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from tickstream.feeds.angelone import wire
from tickstream.feeds.angelone.wire import AngelMode
from tickstream.model import Depth, Tick
from tickstream.sim._conn import Outgoing, Recorder, SimConnection, serve_connection
from tickstream.sim.credentials import SimAuthority
from tickstream.sim.faults import Faults
from tickstream.sim.market import Market

__all__ = ["AngelConnection", "AngelWsServer"]

log = logging.getLogger(__name__)

PATH = "/smart-stream"
MAX_TOKENS = 1000
MAX_DEPTH_TOKENS = 50
MAX_CONNECTIONS = 3
_NSE_CM = 1
_UNKNOWN_MODE = 9
AngelKey = tuple[int, str]  # (exchange type, Angel token)
_INDEX_ZEROS: dict[str, object] = {
    "ltq": 0, "atp": 0.0, "volume": 0, "total_buy_qty": 0, "total_sell_qty": 0,
    "upper_circuit": 0.0, "lower_circuit": 0.0, "high_52w": 0.0, "low_52w": 0.0,
    "depth": Depth(),
}  # fmt: skip


Encoder = Callable[[Tick, AngelMode, AngelKey], bytes]


def _encode(tick: Tick, mode: AngelMode, key: AngelKey) -> bytes:
    return wire.encode_packet(tick, mode, exchange_type=key[0], token=key[1])


class AngelConnection(SimConnection):
    """One SmartWebSocketV2 client: its subscriptions ((exchange type, token) -> modes)."""

    subscriptions: dict[AngelKey, set[AngelMode]]

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.subscriptions = {}
        self.seq_offset = 0

    def subscription_count(self, mode: AngelMode | None = None) -> int:
        if mode is None:
            return sum(len(modes) for modes in self.subscriptions.values())
        return sum(1 for modes in self.subscriptions.values() if mode in modes)

    def send_packet(
        self, tick: Tick, mode: AngelMode, key: AngelKey, encode: Encoder = _encode
    ) -> None:
        """Queue one packet (``encode`` may be a per-step cache shared by connections)."""
        plan = self.plan()
        if plan.seq_jump and tick.seq is not None:
            tick = msgspec.structs.replace(tick, seq=tick.seq + self.seq_offset)
            encode = _encode  # this connection's own sequence numbers: never shared
        packet = encode(tick, mode, key)
        item = Outgoing(packet, True, ((tick, mode.name),))
        self.offer(item)
        if self.every(plan.duplicate_every):
            self.offer(item)
        if plan.truncate_every and self.every(plan.truncate_every):
            self.offer(Outgoing(packet[: len(packet) // 2], True))
        if plan.unknown_every and self.every(plan.unknown_every):
            self.offer(Outgoing(bytes([_UNKNOWN_MODE]) + packet[1:], True))

    def end_step(self) -> None:
        plan = self.plan()
        if plan.seq_jump:
            self.seq_offset += plan.seq_jump

    def send_text(self, text: str) -> None:
        self.offer(Outgoing(text, False))


class AngelWsServer:
    """Connection registry, handshake checks and request handling for SmartStream."""

    def __init__(
        self,
        market: Market,
        authority: SimAuthority,
        faults: Faults,
        *,
        queue_size: int = 4096,
        recorder: Recorder | None = None,
        max_tokens: int = MAX_TOKENS,
        max_depth_tokens: int = MAX_DEPTH_TOKENS,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.market = market
        self.authority = authority
        self.faults = faults
        self.queue_size = queue_size
        self.recorder = recorder
        self.max_tokens = max_tokens
        self.max_depth_tokens = max_depth_tokens
        self.max_connections = max_connections
        self.connections: dict[str, AngelConnection] = {}
        self._ids = itertools.count(1)
        self._angel_key: dict[tuple[str, int], AngelKey] = {}
        for inst in market.instruments:
            if inst.angel_token is None:
                continue
            et = _NSE_CM if inst.exchange == "INDICES" else wire.exchange_type_for(inst.exchange)
            self._angel_key[(inst.exchange, inst.token)] = (et, inst.angel_token)
        self._market_key = {v: k for k, v in self._angel_key.items()}

    # ------------------------------------------------------------------------------ handshake
    def process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        """401 unless every header checks out; 429 for a 4th connection of a client code."""
        if request.path.split("?", 1)[0] != PATH:
            return ws.respond(HTTPStatus.NOT_FOUND, "Not Found\n")
        h = request.headers
        client = h.get("x-client-code")
        if not self.authority.check_angel(
            h.get("Authorization"), h.get("x-api-key"), client, h.get("x-feed-token")
        ):
            log.info("sim angel: handshake refused (missing or invalid credentials)")
            return ws.respond(HTTPStatus.UNAUTHORIZED, "Unauthorized\n")
        live = sum(1 for c in self.connections.values() if c.account == client)
        if live >= self.max_connections:
            return ws.respond(HTTPStatus.TOO_MANY_REQUESTS, "Too Many Requests\n")
        return None

    async def handler(self, ws: ServerConnection) -> None:
        client = ws.request.headers.get("x-client-code", "") if ws.request else ""
        conn = AngelConnection(
            f"angel-{next(self._ids)}", "angelone", client, ws, self.faults,
            queue_size=self.queue_size, recorder=self.recorder,
        )  # fmt: skip
        self.connections[conn.conn_id] = conn
        log.info("sim angel: %s connected", conn.conn_id)
        try:
            await serve_connection(conn, lambda text: self.on_text(conn, text))
        finally:
            self.connections.pop(conn.conn_id, None)
            self.faults.forget(conn.conn_id)
            log.info("sim angel: %s gone", conn.conn_id)

    # ------------------------------------------------------------------------------ messages
    def on_text(self, conn: AngelConnection, text: str | bytes) -> None:
        if text in (wire.PING, wire.PING.encode()):
            conn.send_text(wire.PONG)
            return
        try:
            req = wire.parse_client_request(text)
        except ValueError as exc:
            message = f"Invalid Request Payload. {exc}"
            conn.send_text(wire.encode_error(_correlation(text), "E1001", message))
            return
        keys = [(g.exchange_type, t) for g in req.groups for t in g.tokens]
        if req.action == 0:
            for key in keys:
                conn.subscriptions.get(key, set()).discard(req.mode)
        else:
            self._subscribe(conn, req.correlation_id, req.mode, keys)

    def _subscribe(
        self, conn: AngelConnection, correlation_id: str, mode: AngelMode, keys: list[AngelKey]
    ) -> None:
        new = [k for k in dict.fromkeys(keys) if mode not in conn.subscriptions.get(k, set())]
        if mode is AngelMode.DEPTH:
            used, limit = conn.subscription_count(mode), self.max_depth_tokens
        else:
            used, limit = conn.subscription_count(), self.max_tokens
        if used + len(new) > limit:
            message = "Invalid Request. Subscription Limit Exceeded."
            conn.send_text(wire.encode_error(correlation_id, "E1002", message))
            return
        for key in new:
            conn.subscriptions.setdefault(key, set()).add(mode)
        self._send_current(conn, new, mode)

    def _send_current(
        self, conn: AngelConnection, keys: Iterable[AngelKey], mode: AngelMode
    ) -> None:
        for key in keys:
            where = self._market_key.get(key)
            if where is None:
                continue  # unknown token: never ticks
            conn.send_packet(self._tick_for(self.market.snapshot(*where), mode), mode, key)

    def _tick_for(self, tick: Tick, mode: AngelMode) -> Tick:
        if tick.exchange == "INDICES":
            # Angel sends index packets in every mode with zero quantities, limits and book.
            return msgspec.structs.replace(tick, **_INDEX_ZEROS)
        if mode is AngelMode.DEPTH:
            return msgspec.structs.replace(
                tick, depth=self.market.depth20(tick.exchange, tick.token)
            )
        return tick

    # ------------------------------------------------------------------------------ fan-out
    def publish(self, ticks: Sequence[Tick]) -> None:
        """Fan one market step out: one binary message per subscribed (token, mode)."""
        if not self.connections:
            return
        keyed = [(self._angel_key.get((t.exchange, t.token)), t) for t in ticks]
        cache: dict[tuple[AngelKey, AngelMode], bytes] = {}  # one instrument, one tick per step

        def encode(tick: Tick, mode: AngelMode, key: AngelKey) -> bytes:
            packet = cache.get((key, mode))
            if packet is None:
                packet = cache[(key, mode)] = _encode(tick, mode, key)
            return packet

        for conn in list(self.connections.values()):
            subs = conn.subscriptions
            for key, tick in keyed:
                modes = subs.get(key) if key is not None else None
                if not modes or key is None:
                    continue
                for mode in sorted(modes):
                    conn.send_packet(self._tick_for(tick, mode), mode, key, encode)
            conn.end_step()


def _correlation(text: str | bytes) -> str:
    try:
        body = msgspec.json.decode(text)
    except msgspec.DecodeError:
        return ""
    value = body.get("correlationID") if isinstance(body, dict) else None
    return value if isinstance(value, str) else ""
