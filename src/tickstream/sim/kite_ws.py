"""The simulated Kite ticker WebSocket server (KiteTicker protocol, byte for byte).

Handshake: ``GET /?api_key=...&access_token=...``; a wrong key or a bad/expired token gets a real
HTTP 403 response, a fourth connection for one api_key HTTP 429. Text messages from the client
(``subscribe`` / ``unsubscribe`` / ``mode``) are parsed and every byte sent is built by
:mod:`tickstream.feeds.kite.wire`.

Behaviour (matching Kite as documented or observed; where Kite's behaviour is not documented the
choice is stated):

* ``subscribe`` puts tokens in the default mode ``quote``; ``mode`` changes the mode of the given
  tokens (and subscribes them when they were not, a superset of Kite's behaviour).
* Unknown instrument tokens are accepted and silently never tick (Kite sends nothing for them
  and no error). They count towards the 3000-instrument limit.
* More than 3000 instruments on one connection: the whole request is refused with an error text
  frame ``{"type":"error","data":...}`` (the exact wording Kite uses is not documented).
* A malformed client message gets an error text frame; the connection stays open.
* Right after a (re)subscription the current state of each new token is sent, then one binary
  frame per market step holds every subscribed instrument that traded in that step.
* A 1-byte heartbeat goes out after 1 s without any other message.
"""

from __future__ import annotations

import itertools
import logging
import struct
from collections.abc import Callable, Iterable, Sequence
from http import HTTPStatus
from itertools import repeat
from urllib.parse import parse_qs, urlsplit

import msgspec
import numpy as np
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from tickstream.feeds.kite import wire
from tickstream.model import Mode, Tick
from tickstream.sim._conn import Outgoing, Recorder, SimConnection, serve_connection
from tickstream.sim.credentials import SimAuthority
from tickstream.sim.faults import Faults
from tickstream.sim.market import Market

__all__ = ["KiteConnection", "KiteWsServer"]

log = logging.getLogger(__name__)

MAX_INSTRUMENTS = 3000
MAX_CONNECTIONS = 3
_UNKNOWN_PACKET = bytes(13)  # no Kite packet is 13 bytes long
_SIZES = {Mode.LTP: 8, Mode.QUOTE: 44, Mode.FULL: 184}  # equity packet lengths
_COUNT = struct.Struct(">H")
_FULL_PREFIX = _COUNT.pack(_SIZES[Mode.FULL])  # a frame's length prefix of a full packet


class KiteConnection(SimConnection):
    """One KiteTicker client: its subscriptions (instrument_token -> mode)."""

    subscriptions: dict[int, Mode]

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.subscriptions = {}

    def subscription_count(self) -> int:
        return len(self.subscriptions)

    def publish(
        self, ticks: Sequence[tuple[int, Tick]], encode: Callable[[Tick, Mode], bytes]
    ) -> None:
        """Queue one frame with the packets of ``ticks`` this client subscribed to."""
        subs = self.subscriptions
        picked = [(tick, mode) for itok, tick in ticks if (mode := subs.get(itok)) is not None]
        if picked:
            self.send_ticks(picked, encode)

    def publish_full(
        self, itoks: Sequence[int], ticks: Sequence[Tick], full: Sequence[bytes | None]
    ) -> bool:
        """:meth:`publish` for a step whose ticks (instrument tokens ``itoks``) all have their
        FULL packet in ``full``, to a client subscribed in FULL mode only, with no packet fault
        planned; False (nothing done) otherwise. Whole-list operations, no per-tick Python."""
        plan = self.plan()
        if plan.duplicate_every or plan.unknown_every or plan.truncate_every:
            return False
        subs = self.subscriptions
        if list(subs.values()).count(Mode.FULL) != len(subs):
            return False
        if subs.keys() >= set(itoks):  # subscribed to every instrument that ticked
            picked, packets = ticks, full
        else:
            sel = [j for j, itok in enumerate(itoks) if itok in subs]
            picked, packets = [ticks[j] for j in sel], [full[j] for j in sel]
        if not picked:
            return True
        if None in packets:
            return False
        # The frame encode_frame makes: count, then length prefix and packet for each.
        parts = [_FULL_PREFIX] * (2 * len(picked) + 1)
        parts[0] = _COUNT.pack(len(picked))
        parts[2::2] = packets  # type: ignore[assignment]  # no None: checked above
        sent = tuple(zip(picked, repeat("full"))) if self.recording else ()
        self.offer(Outgoing(b"".join(parts), True, sent))
        return True

    def send_ticks(
        self, picked: Sequence[tuple[Tick, Mode]], encode: Callable[[Tick, Mode], bytes]
    ) -> None:
        plan = self.plan()
        if not (plan.duplicate_every or plan.unknown_every or plan.truncate_every):
            packets = [encode(tick, mode) for tick, mode in picked]  # the common, fast path
            sent = tuple((t, m.value) for t, m in picked) if self.recording else ()
            self.offer(Outgoing(wire.encode_frame(packets), True, sent))
            return
        packets = []
        emitted: list[tuple[Tick, str]] = []
        for tick, mode in picked:
            packet = encode(tick, mode)
            copies = 2 if self.every(plan.duplicate_every) else 1
            packets.extend([packet] * copies)
            emitted.extend([(tick, mode.value)] * copies)
        if plan.unknown_every and self.every(plan.unknown_every):
            packets.append(_UNKNOWN_PACKET)
        frame = wire.encode_frame(packets)
        if plan.truncate_every and self.every(plan.truncate_every):
            frame = wire.encode_frame([*packets, packets[0]])[:-7]  # last packet cut short
        self.offer(Outgoing(frame, True, tuple(emitted)))

    def send_error(self, message: str) -> None:
        self.offer(Outgoing(wire.encode_server_error(message), False))


class KiteWsServer:
    """Connection registry, handshake checks and message handling for the Kite ticker."""

    def __init__(
        self,
        market: Market,
        authority: SimAuthority,
        faults: Faults,
        *,
        queue_size: int = 1024,
        heartbeat_s: float = 1.0,
        recorder: Recorder | None = None,
        max_instruments: int = MAX_INSTRUMENTS,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.market = market
        self.authority = authority
        self.faults = faults
        self.queue_size = queue_size
        self.heartbeat_s = heartbeat_s
        self.recorder = recorder
        self.max_instruments = max_instruments
        self.max_connections = max_connections
        self.connections: dict[str, KiteConnection] = {}
        self._ids = itertools.count(1)
        self._itok = {
            (i.exchange, i.token): wire.instrument_token(i.exchange, i.token)
            for i in market.instruments
        }
        self._itok_at = np.array(list(self._itok.values()), dtype=np.int64)  # by position

    # ------------------------------------------------------------------------------ handshake
    def process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        """Reject bad credentials with 403 and a 4th connection per api_key with 429."""
        url = urlsplit(request.path)
        query = parse_qs(url.query)
        api_key = _first(query, "api_key")
        token = _first(query, "access_token")
        if url.path not in ("", "/"):
            return ws.respond(HTTPStatus.NOT_FOUND, "Not Found\n")
        if not self.authority.check_kite(api_key, token):
            log.info("sim kite: handshake refused (bad api_key or access_token)")
            return _json_response(ws, HTTPStatus.FORBIDDEN, "TokenException",
                                  "Incorrect `api_key` or `access_token`.")  # fmt: skip
        live = sum(1 for c in self.connections.values() if c.account == api_key)
        if live >= self.max_connections:
            return _json_response(ws, HTTPStatus.TOO_MANY_REQUESTS, "NetworkException",
                                  "Too many connections.")  # fmt: skip
        return None

    async def handler(self, ws: ServerConnection) -> None:
        query = parse_qs(urlsplit(ws.request.path if ws.request else "").query)
        conn = KiteConnection(
            f"kite-{next(self._ids)}", "kite", (query.get("api_key") or [""])[0], ws,
            self.faults, queue_size=self.queue_size, heartbeat=wire.HEARTBEAT,
            heartbeat_s=self.heartbeat_s, recorder=self.recorder,
        )  # fmt: skip
        self.connections[conn.conn_id] = conn
        log.info("sim kite: %s connected", conn.conn_id)
        try:
            await serve_connection(conn, lambda text: self.on_text(conn, text))
        finally:
            self.connections.pop(conn.conn_id, None)
            self.faults.forget(conn.conn_id)
            log.info("sim kite: %s gone", conn.conn_id)

    # ------------------------------------------------------------------------------ messages
    def on_text(self, conn: KiteConnection, text: str | bytes) -> None:
        try:
            msg = wire.parse_client_message(text)
        except ValueError as exc:
            conn.send_error(f"Invalid message: {exc}")
            return
        if msg.action == "unsubscribe":
            for itok in msg.tokens:
                conn.subscriptions.pop(itok, None)
            return
        new = [t for t in msg.tokens if t not in conn.subscriptions]
        if len(conn.subscriptions) + len(new) > self.max_instruments:
            conn.send_error(
                f"Subscription limit exceeded: at most {self.max_instruments} instruments "
                "per connection."
            )
            return
        mode = msg.mode if msg.action == "mode" and msg.mode is not None else Mode.QUOTE
        changed = new if msg.action == "subscribe" else list(msg.tokens)
        for itok in changed:
            conn.subscriptions[itok] = mode
        self._send_current(conn, changed)

    def _send_current(self, conn: KiteConnection, tokens: Iterable[int]) -> None:
        known: list[tuple[int, tuple[str, int]]] = []
        for itok in tokens:
            try:
                known.append((itok, wire.split_instrument_token(itok)))
            except ValueError:
                continue  # unknown segment: silently never ticks, as on Kite
        ticks = self.market.snapshot_many([key for _, key in known])  # None: not in the universe
        picked = [
            (tick, conn.subscriptions[itok])
            for (itok, _), tick in zip(known, ticks, strict=True)
            if tick is not None
        ]
        if picked:
            conn.send_ticks(picked, wire.encode_packet)

    # ------------------------------------------------------------------------------ fan-out
    def publish(self, ticks: Sequence[Tick]) -> None:
        """Fan one market step out to every connection (one frame each, packets encoded once)."""
        if not self.connections or not ticks:
            return
        full = self.market.kite_full_packets(ticks)  # one numpy pass for the equity ticks
        pos = self.market.last_step_positions(ticks)
        itoks: list[int] = (
            [self._itok[(t.exchange, t.token)] for t in ticks]
            if pos is None
            else self._itok_at[pos].tolist()
        )
        keyed: list[tuple[int, Tick]] | None = None
        cache: dict[tuple[int, Mode], bytes] = {}
        by_id = {} if full is None else dict(zip(map(id, ticks), full, strict=True))

        def encode(tick: Tick, mode: Mode) -> bytes:
            whole = by_id.get(id(tick))  # None: not batch-encoded (index, out of range)
            if whole is not None:
                # An equity QUOTE/LTP packet is the head of its FULL packet.
                return whole if mode is Mode.FULL else whole[: _SIZES[mode]]
            key = (id(tick), mode)
            packet = cache.get(key)
            if packet is None:
                packet = cache[key] = wire.encode_packet(tick, mode)
            return packet

        for conn in list(self.connections.values()):
            if full is not None and conn.publish_full(itoks, ticks, full):
                continue
            if keyed is None:
                keyed = list(zip(itoks, ticks, strict=True))
            conn.publish(keyed, encode)


def _first(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


def _json_response(
    ws: ServerConnection, status: HTTPStatus, error_type: str, message: str
) -> Response:
    """An HTTP error response with Kite's JSON error envelope."""
    body = {"status": "error", "message": message, "data": None, "error_type": error_type}
    response = ws.respond(status, msgspec.json.encode(body).decode())
    response.headers["Content-Type"] = "application/json"
    return response
