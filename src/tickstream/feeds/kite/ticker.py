"""Kite ticker client: the KiteTicker protocol over the shared supervised, sharded client.

What: ``wss://ws.kite.trade?api_key=..&access_token=..``; at most 3 connections per api key and
3000 instruments per connection; binary frames decoded by :mod:`tickstream.feeds.kite.wire`; a
1-byte heartbeat from the server when there is no data; ``heartbeat_secs`` (2.5 s, the SDK's own
ping period: Kite documents "every couple of seconds", not an exact period) times the factor (3)
of silence aborts the socket; JSON text frames ``{"type": "error", ...}`` surfaced. How: everything
else is :class:`~tickstream.feeds.client.ShardedFeed`.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Final
from urllib.parse import urlencode

from websockets.asyncio.client import ClientConnection, connect

from tickstream.feeds.adapter import WS_LOGGER, FeedConfig, TextKind
from tickstream.feeds.client import ShardedFeed, entries_by_mode
from tickstream.feeds.kite import wire
from tickstream.feeds.kite.auth import KiteAuth
from tickstream.feeds.registry import Entry, Limits
from tickstream.feeds.wire_common import DecodeResult
from tickstream.model import Instrument, Mode

__all__ = ["KITE_WS_URL", "KiteAdapter", "KiteTicker"]

KITE_WS_URL: Final = "wss://ws.kite.trade"
MAX_INSTRUMENTS: Final = 3000
MAX_CONNECTIONS: Final = 3
HEARTBEAT_SECS: Final = 2.5
_MODES: Final = {m.value: m for m in Mode}


class KiteAdapter:
    """The Kite ticker's :class:`~tickstream.feeds.adapter.BrokerAdapter`."""

    source = "kite"
    ping_text: str | None = None
    unsubscribe_on_mode_change = False

    def __init__(
        self,
        auth: KiteAuth,
        *,
        url: str = KITE_WS_URL,
        heartbeat_secs: float = HEARTBEAT_SECS,
        max_instruments: int = MAX_INSTRUMENTS,
        max_connections: int = MAX_CONNECTIONS,
        open_timeout_secs: float = 10.0,
    ) -> None:
        self.auth = auth
        self.url = url
        self.heartbeat_secs = heartbeat_secs
        self.limits = Limits(max_instruments, max_connections)
        self.open_timeout_secs = open_timeout_secs
        self._symbols: dict[tuple[str, int], str] = {}

    def key_for(self, instrument: Instrument, mode: str) -> Hashable:
        if mode not in _MODES:
            raise ValueError(f"kite: unknown mode {mode!r}; expected ltp, quote or full")
        if instrument.kite_token is not None:
            return instrument.kite_token
        return wire.instrument_token(instrument.exchange, instrument.token)

    def all_keys(self, instrument: Instrument) -> list[Hashable]:
        return [self.key_for(instrument, Mode.LTP.value)]

    def track(self, instrument: Instrument) -> None:
        itok = self.key_for(instrument, Mode.LTP.value)
        assert isinstance(itok, int)
        self._symbols[wire.split_instrument_token(itok)] = instrument.symbol

    async def open(self) -> ClientConnection:
        query = urlencode({"api_key": self.auth.api_key, "access_token": self.auth.access_token()})
        sep = "&" if "?" in self.url else "?"
        return await connect(
            f"{self.url}{sep}{query}", ping_interval=None, compression=None, max_size=2**22,
            open_timeout=self.open_timeout_secs, close_timeout=1.0, logger=WS_LOGGER,
        )  # fmt: skip

    def subscribe_messages(self, entries: Sequence[tuple[Hashable, Entry]]) -> list[str]:
        out: list[str] = []
        for mode, keys in entries_by_mode(entries).items():
            tokens = [k for k in keys if isinstance(k, int)]
            out += [wire.encode_subscribe(tokens), wire.encode_mode(_MODES[mode], tokens)]
        return out

    def unsubscribe_messages(self, entries: Sequence[tuple[Hashable, Entry]]) -> list[str]:
        tokens = [k for k, _ in entries if isinstance(k, int)]
        return [wire.encode_unsubscribe(tokens)] if tokens else []

    def decode(self, data: bytes, ts_recv: int, ts_exchange: int) -> DecodeResult:
        return wire.decode_frame(
            data, ts_recv=ts_recv, resolve=self._resolve, ts_exchange_default=ts_exchange
        )

    def _resolve(self, exchange: str, token: int) -> str | None:
        return self._symbols.get((exchange, token))

    def text(self, text: str) -> tuple[TextKind, str]:
        try:
            msg = wire.parse_server_text(text)
        except ValueError as exc:
            return TextKind.ERROR, f"unparseable server text: {exc}"
        if msg.type == "error":
            return TextKind.ERROR, str(msg.data)
        return TextKind.INFO, f"{msg.type}: {msg.data}"

    def credential_id(self) -> str:
        return self.auth.credential_id()

    async def reauthenticate(self) -> bool:
        return await self.auth.refresh()


class KiteTicker(ShardedFeed):
    """The Kite market-data feed (a :class:`~tickstream.feeds.base.Feed`)."""

    def __init__(
        self,
        auth: KiteAuth,
        config: FeedConfig | None = None,
        *,
        url: str = KITE_WS_URL,
        heartbeat_secs: float = HEARTBEAT_SECS,
        max_instruments: int = MAX_INSTRUMENTS,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        adapter = KiteAdapter(
            auth, url=url, heartbeat_secs=heartbeat_secs, max_instruments=max_instruments,
            max_connections=max_connections,
        )  # fmt: skip
        super().__init__(adapter, config)
