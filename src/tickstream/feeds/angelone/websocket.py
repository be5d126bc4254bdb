"""Angel One SmartStream client: SmartWebSocketV2 over the shared supervised, sharded client.

What: ``wss://smartapisocket.angelone.in/smart-stream`` with the jwt, api key, client code and
feed token as headers; at most 3 connections per client code and 1000 subscriptions per
connection, 20-level depth (mode 4) for NSE_CM only and at most 50 per connection; one binary
packet per message decoded by :mod:`tickstream.feeds.angelone.wire`; we send ``ping`` every
``heartbeat_secs`` (10 s) and the server answers ``pong``, so silence for 3 x that aborts the
socket; JSON error frames (``errorCode``) surfaced. Before every connect the session is renewed
if it is close to 05:00 IST. How: :class:`~tickstream.feeds.client.ShardedFeed`.

Mode tags: ``ltp``, ``quote``, ``full`` (SNAP_QUOTE, 5 levels) and ``depth`` (20 levels; a
separate subscription beside the instrument's other mode, see :meth:`AngelOneFeed.subscribe_depth`).
Angel's index tokens (99926000 ...) differ from the exchange token the instrument manager gives
an index, so index ticks are re-keyed to the subscribed instrument's token.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Hashable, Sequence
from typing import Final

import msgspec
from websockets.asyncio.client import ClientConnection, connect

from tickstream.feeds.adapter import WS_LOGGER, FeedConfig, TextKind
from tickstream.feeds.angelone import wire
from tickstream.feeds.angelone.auth import AngelAuth
from tickstream.feeds.base import AuthError
from tickstream.feeds.client import ShardedFeed, entries_by_mode
from tickstream.feeds.registry import Entry, Limits
from tickstream.feeds.wire_common import DecodeResult
from tickstream.model import Instrument, Tick

__all__ = ["ANGEL_WS_URL", "AngelAdapter", "AngelOneFeed"]

log = logging.getLogger(__name__)

ANGEL_WS_URL: Final = "wss://smartapisocket.angelone.in/smart-stream"
MAX_TOKENS: Final = 1000
MAX_DEPTH_TOKENS: Final = 50
MAX_CONNECTIONS: Final = 3
DEPTH: Final = "depth"
_MODES: Final = {
    "ltp": wire.AngelMode.LTP,
    "quote": wire.AngelMode.QUOTE,
    "full": wire.AngelMode.SNAP_QUOTE,
    DEPTH: wire.AngelMode.DEPTH,
}
_NSE_CM: Final = 1
_BSE_CM: Final = 3

AngelKey = tuple[str, int, str]  # (kind: "" or "depth", exchange type, Angel token)


def exchange_type(instrument: Instrument) -> int:
    """Angel's exchange type; indices go by their listing exchange (SENSEX/BANKEX on BSE)."""
    if instrument.exchange == "INDICES":
        return _BSE_CM if instrument.symbol.startswith(("SENSEX", "BANKEX")) else _NSE_CM
    return wire.exchange_type_for(instrument.exchange)


class AngelAdapter:
    """SmartStream's :class:`~tickstream.feeds.adapter.BrokerAdapter`."""

    source = "angelone"
    ping_text: str | None = wire.PING
    unsubscribe_on_mode_change = True

    def __init__(
        self,
        auth: AngelAuth,
        *,
        url: str = ANGEL_WS_URL,
        heartbeat_secs: float = 10.0,
        max_tokens: int = MAX_TOKENS,
        max_depth_tokens: int = MAX_DEPTH_TOKENS,
        max_connections: int = MAX_CONNECTIONS,
        open_timeout_secs: float = 10.0,
    ) -> None:
        self.auth = auth
        self.url = url
        self.heartbeat_secs = heartbeat_secs
        self.limits = Limits(max_tokens, max_connections, {DEPTH: max_depth_tokens})
        self.open_timeout_secs = open_timeout_secs
        self._by_wire: dict[tuple[str, int], Instrument] = {}
        self._ids = itertools.count(1)

    def key_for(self, instrument: Instrument, mode: str) -> Hashable:
        if mode not in _MODES:
            raise ValueError(f"angelone: unknown mode {mode!r}; expected {', '.join(_MODES)}")
        et = exchange_type(instrument)
        if mode == DEPTH and et != _NSE_CM:
            raise ValueError(f"angelone: depth mode is NSE_CM only, not {instrument.key}")
        token = instrument.angel_token or str(instrument.token)
        return (DEPTH if mode == DEPTH else "", et, token)

    def all_keys(self, instrument: Instrument) -> list[Hashable]:
        et, token = exchange_type(instrument), instrument.angel_token or str(instrument.token)
        return [("", et, token), (DEPTH, et, token)]

    def track(self, instrument: Instrument) -> None:
        token = instrument.angel_token or str(instrument.token)
        exchange = wire.EXCHANGE_TYPES[exchange_type(instrument)]
        if token.isdigit() and int(token) >= 99_900_000:  # the wire's index convention
            exchange = "INDICES"
        self._by_wire[(exchange, int(token) if token.isdigit() else -1)] = instrument

    async def open(self) -> ClientConnection:
        session = await self.auth.ensure_fresh()
        headers = {
            "Authorization": session.jwt,
            "x-api-key": self.auth.api_key,
            "x-client-code": self.auth.client_code,
            "x-feed-token": session.feed_token,
        }
        return await connect(
            self.url, additional_headers=headers, ping_interval=None, compression=None,
            max_size=2**20, open_timeout=self.open_timeout_secs, close_timeout=1.0,
            logger=WS_LOGGER,
        )  # fmt: skip

    def _requests(self, action: int, entries: Sequence[tuple[Hashable, Entry]]) -> list[str]:
        out: list[str] = []
        for mode, keys in entries_by_mode(entries).items():
            by_type: dict[int, list[str]] = {}
            for key in keys:
                assert isinstance(key, tuple)
                by_type.setdefault(key[1], []).append(key[2])
            groups = [wire.TokenGroup(et, tuple(tokens)) for et, tokens in by_type.items()]
            out.append(wire.encode_request(f"ts{next(self._ids)}", action, _MODES[mode], groups))
        return out

    def subscribe_messages(self, entries: Sequence[tuple[Hashable, Entry]]) -> list[str]:
        return self._requests(1, entries)

    def unsubscribe_messages(self, entries: Sequence[tuple[Hashable, Entry]]) -> list[str]:
        return self._requests(0, entries)

    def decode(self, data: bytes, ts_recv: int, ts_exchange: int) -> DecodeResult:
        # Every SmartStream packet carries its exchange timestamp: ``ts_exchange`` is not needed.
        result = wire.decode_packet(data, ts_recv=ts_recv, resolve=self._resolve)
        if result.ticks:
            result.ticks = [self._canonical(t) for t in result.ticks]
        return result

    def _resolve(self, exchange: str, token: int) -> str | None:
        inst = self._by_wire.get((exchange, token))
        return inst.symbol if inst is not None else None

    def _canonical(self, tick: Tick) -> Tick:
        inst = self._by_wire.get((tick.exchange, tick.token))
        if inst is None or (inst.exchange == tick.exchange and inst.token == tick.token):
            return tick
        return msgspec.structs.replace(tick, exchange=inst.exchange, token=inst.token)

    def text(self, text: str) -> tuple[TextKind, str]:
        if text == wire.PONG:
            return TextKind.HEARTBEAT, text
        try:
            body = msgspec.json.decode(text)
        except msgspec.DecodeError:
            return TextKind.ERROR, f"unparseable server text: {text[:200]}"
        if isinstance(body, dict) and body.get("errorCode"):
            return TextKind.ERROR, f"{body.get('errorCode')}: {body.get('errorMessage', '')}"
        return TextKind.INFO, text[:200]

    def credential_id(self) -> str:
        return self.auth.credential_id()

    async def reauthenticate(self) -> bool:
        return await self.auth.reauthenticate()


class AngelOneFeed(ShardedFeed):
    """The Angel One market-data feed (a :class:`~tickstream.feeds.base.Feed`)."""

    def __init__(
        self,
        auth: AngelAuth,
        config: FeedConfig | None = None,
        *,
        url: str = ANGEL_WS_URL,
        heartbeat_secs: float = 10.0,
        max_tokens: int = MAX_TOKENS,
        max_depth_tokens: int = MAX_DEPTH_TOKENS,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        adapter = AngelAdapter(
            auth, url=url, heartbeat_secs=heartbeat_secs, max_tokens=max_tokens,
            max_depth_tokens=max_depth_tokens, max_connections=max_connections,
        )  # fmt: skip
        super().__init__(adapter, config)
        self._auth = auth
        self._renewal: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the shards and the renewal of the session before each 05:00 IST expiry."""
        await super().start()
        if self._renewal is None:
            self._renewal = asyncio.create_task(self._keep_fresh(), name="angelone-renewal")

    async def stop(self) -> None:
        if self._renewal is not None:
            self._renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewal
            self._renewal = None
        await super().stop()

    async def _keep_fresh(self) -> None:
        while True:
            try:
                await self._auth.keep_fresh()
            except AuthError as exc:
                log.warning("angelone: session renewal failed (%s); retrying in 60 s", exc)
                await asyncio.sleep(60.0)

    async def subscribe_depth(self, instruments: Sequence[Instrument]) -> None:
        """20-level depth (NSE_CM only, at most 50 per connection) beside other modes."""
        await self.subscribe_mode(instruments, DEPTH)
