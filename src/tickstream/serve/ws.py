"""WebSocket ``/ws``: authenticated at the handshake, subscribe/unsubscribe, backfill then live.

Handshake: the ``Origin`` (when sent, i.e. by browsers) must be the server's own origin or one of
``settings.cors_origins``; the API key comes in the ``X-API-Key`` header or, from browsers (which
cannot set headers), as a ``key.<api key>`` entry of ``Sec-WebSocket-Protocol`` next to
``tickstream.v1`` (the protocol the server selects). Refusals close before accepting (HTTP 403).

Client messages (JSON objects):

* ``{"action": "subscribe", "tokens": [256265, "NSE:2885", "RELIANCE"], "channels": ["ticks",
  "candles"], "intervals": ["1m"], "backfill": 100}`` -> ``subscribed`` (accepted keys, refused
  refs with reasons), then ``backfill`` (recent ticks from the ring buffer) and
  ``candles_backfill`` (recent closed candles with indicators), then live ``ticks`` / ``candles``
  messages (``{"type": "ticks", "data": [...]}``);
* ``{"action": "unsubscribe", "tokens": [...]}`` (no tokens: everything) -> ``unsubscribed``;
* ``{"action": "ping"}`` -> ``pong``.

Server messages also include ``{"type": "dropped", "count": n}`` before the data that follows a
queue overflow, ``{"type": "ping"}`` every ``ping_interval_s`` of silence, and ``{"type":
"error", "message": ...}``. Malformed JSON, unknown actions and over-rate messages are errors;
after ``max_errors`` of them the server closes with 1008. Frames over ``max_frame_bytes`` close
with 1009.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, Final

import msgspec
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from tickstream.serve.fanout import CHANNELS, Client, Hub
from tickstream.serve.security import Authenticator, AuthError, Scope, TokenBucket

__all__ = ["SUBPROTOCOL", "WsEndpoint"]

log = logging.getLogger(__name__)

SUBPROTOCOL: Final = "tickstream.v1"
_KEY_PROTOCOL_PREFIX: Final = "key."
CLOSE_POLICY: Final = 1008
CLOSE_TOO_BIG: Final = 1009


class _Abuse(Exception):
    """A client message that counts against the connection's error budget."""


def _origin_allowed(ws: WebSocket, allowed: frozenset[str]) -> bool:
    origin = ws.headers.get("origin")
    if origin is None:  # not a browser; the API key still applies
        return True
    host = ws.headers.get("host", "")
    return origin in allowed or origin in {f"http://{host}", f"https://{host}"}


def _presented_key(ws: WebSocket) -> tuple[str | None, bool]:
    """(key, offered our subprotocol) from the header or the subprotocol list."""
    key = ws.headers.get("x-api-key")
    offered = [p.strip() for p in ws.headers.get("sec-websocket-protocol", "").split(",")]
    for proto in offered:
        if proto.startswith(_KEY_PROTOCOL_PREFIX) and key is None:
            key = proto[len(_KEY_PROTOCOL_PREFIX) :]
    return key, SUBPROTOCOL in offered


class WsEndpoint:
    """The ``/ws`` handler; one instance per app, holding the hub and the authenticator."""

    def __init__(self, hub: Hub, auth: Authenticator, allowed_origins: frozenset[str]) -> None:
        self.hub = hub
        self.auth = auth
        self.allowed_origins = allowed_origins

    async def __call__(self, ws: WebSocket) -> None:
        client = await self._handshake(ws)
        if client is None:
            return
        self.hub.attach(client)
        writer = asyncio.create_task(self._writer(ws, client), name=f"ws-writer:{client.id}")
        try:
            await self._reader(ws, client)
        except WebSocketDisconnect:
            pass
        finally:
            self.hub.detach(client)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer

    async def _handshake(self, ws: WebSocket) -> Client | None:
        if not _origin_allowed(ws, self.allowed_origins):
            log.info("ws refused: origin %r not allowed", ws.headers.get("origin"))
            self.hub.counts["rejected"] += 1
            await ws.close(code=CLOSE_POLICY)
            return None
        key, offered = _presented_key(ws)
        address = ws.client.host if ws.client else "?"
        try:
            record = self.auth.authenticate(key, Scope.READ, address)
        except AuthError as exc:
            log.info("ws refused from %s: %s", address, exc.message)
            self.hub.counts["rejected"] += 1
            await ws.close(code=CLOSE_POLICY)
            return None
        await ws.accept(subprotocol=SUBPROTOCOL if offered else None)
        return Client(self.hub.limits, record.key_id)

    async def _writer(self, ws: WebSocket, client: Client) -> None:
        limits = self.hub.limits
        while True:
            try:
                async with asyncio.timeout(limits.ping_interval_s):
                    await client.wake.wait()
            except TimeoutError:
                client.say({"type": "ping", "ts": time.time_ns()})
                continue
            client.wake.clear()
            for text in client.next_messages(limits.batch_max):
                await ws.send_text(text)
                client.messages_sent += 1

    async def _reader(self, ws: WebSocket, client: Client) -> None:
        limits = self.hub.limits
        bucket = TokenBucket(limits.messages_per_sec, limits.message_burst, time.monotonic())
        errors = 0
        while True:
            event = await ws.receive()
            if event["type"] == "websocket.disconnect":
                return
            raw = event.get("text") or event.get("bytes") or ""
            if len(raw) > limits.max_frame_bytes:
                await self._close(ws, CLOSE_TOO_BIG, "frame too large")
                return
            try:
                if bucket.take(time.monotonic()):
                    raise _Abuse("too many messages; slow down")
                await self._handle(client, raw)
            except _Abuse as exc:
                errors += 1
                if not client.say({"type": "error", "message": str(exc)}):
                    await self._close(ws, CLOSE_POLICY, "not reading")
                    return
                if errors >= limits.max_errors:
                    await self._close(ws, CLOSE_POLICY, "too many invalid messages", client)
                    return

    async def _close(
        self, ws: WebSocket, code: int, reason: str, client: Client | None = None
    ) -> None:
        """Close with ``code``; queued control messages (the last error) go out first."""
        if ws.application_state is not WebSocketState.CONNECTED:
            return
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            if client is not None:
                pending = list(client.control)
                client.control.clear()
                for text in pending:
                    await ws.send_text(text)
            await ws.close(code=code, reason=reason)

    async def _handle(self, client: Client, raw: str | bytes) -> None:
        try:
            msg = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            raise _Abuse("malformed JSON") from None
        if not isinstance(msg, dict):
            raise _Abuse("expected a JSON object with an 'action'")
        action = msg.get("action")
        if action == "subscribe":
            await self._subscribe(client, msg)
        elif action == "unsubscribe":
            refs = msg.get("tokens")
            if refs is not None and not isinstance(refs, list):
                raise _Abuse("'tokens' must be a list")
            removed = self.hub.unsubscribe(client, refs)
            client.say({"type": "unsubscribed", "removed": removed})
        elif action == "ping":
            client.say({"type": "pong", "ts": time.time_ns()})
        else:
            raise _Abuse(f"unknown action {action!r}; expected subscribe, unsubscribe or ping")

    async def _subscribe(self, client: Client, msg: dict[str, Any]) -> None:
        refs = msg.get("tokens", msg.get("symbols"))
        if not isinstance(refs, list) or not refs:
            raise _Abuse("'tokens' must be a non-empty list")
        if len(refs) > self.hub.limits.max_refs_per_request:
            raise _Abuse(f"at most {self.hub.limits.max_refs_per_request} tokens per request")
        channels = msg.get("channels", ["ticks"])
        if not isinstance(channels, list) or not set(channels) <= CHANNELS or not channels:
            raise _Abuse(f"'channels' must be a list of {sorted(CHANNELS)}")
        intervals = msg.get("intervals")
        if intervals is not None and not (
            isinstance(intervals, list) and all(isinstance(i, str) for i in intervals)
        ):
            raise _Abuse("'intervals' must be a list of interval names")
        backfill = msg.get("backfill")
        if backfill is not None and (not isinstance(backfill, int) or isinstance(backfill, bool)):
            raise _Abuse("'backfill' must be an integer")
        client.channels = set(channels)
        client.intervals = None if intervals is None else frozenset(intervals)
        await self.hub.subscribe(client, refs, backfill=backfill)
