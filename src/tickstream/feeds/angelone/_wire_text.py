"""Angel One SmartWebSocketV2 text messages (re-exported by :mod:`tickstream.feeds.angelone.wire`).

Client -> server::

    {"correlationID": "abc", "action": 1, "params": {"mode": 3,
     "tokenList": [{"exchangeType": 1, "tokens": ["3045"]}]}}

``action`` 1 subscribes, 0 unsubscribes; ``correlationID`` may be absent (the SDK's resubscribe
omits it). Heartbeats are the plain texts ``ping`` / ``pong``. Errors, server -> client::

    {"correlationID": "abc", "errorCode": "E1002", "errorMessage": "Invalid Request Payload."}
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Final

import msgspec

__all__ = [
    "PING",
    "PONG",
    "AngelMode",
    "ClientRequest",
    "TokenGroup",
    "encode_error",
    "encode_request",
    "parse_client_request",
]

PING: Final = "ping"
PONG: Final = "pong"
_MAX_TOKEN_CHARS: Final = 25


class AngelMode(enum.IntEnum):
    """SmartWebSocketV2 subscription mode (the first byte of every binary packet)."""

    LTP = 1
    QUOTE = 2
    SNAP_QUOTE = 3
    DEPTH = 4


class TokenGroup(msgspec.Struct, frozen=True):
    """Tokens of one exchange type, as in ``tokenList``."""

    exchange_type: int
    tokens: tuple[str, ...]


class ClientRequest(msgspec.Struct, frozen=True):
    """A parsed subscribe (action 1) or unsubscribe (action 0) request."""

    correlation_id: str
    action: int
    mode: AngelMode
    groups: tuple[TokenGroup, ...]


class _Group(msgspec.Struct):
    exchange_type: int = msgspec.field(name="exchangeType")
    tokens: list[str] = msgspec.field(default_factory=list)


class _Params(msgspec.Struct):
    mode: int
    token_list: list[_Group] = msgspec.field(name="tokenList")


class _Request(msgspec.Struct):
    action: int
    params: _Params
    correlation_id: str = msgspec.field(default="", name="correlationID")


_json = msgspec.json.Encoder()
_request_decoder = msgspec.json.Decoder(_Request)


def encode_request(
    correlation_id: str, action: int, mode: AngelMode, groups: Sequence[TokenGroup]
) -> str:
    """The JSON text of a subscribe/unsubscribe request."""
    token_list = [{"exchangeType": g.exchange_type, "tokens": list(g.tokens)} for g in groups]
    body = {
        "correlationID": correlation_id,
        "action": action,
        "params": {"mode": int(mode), "tokenList": token_list},
    }
    return _json.encode(body).decode()


def encode_error(correlation_id: str, code: str, message: str) -> str:
    """The JSON text of an error frame."""
    body = {"correlationID": correlation_id, "errorCode": code, "errorMessage": message}
    return _json.encode(body).decode()


def _group(group: _Group, exchange_types: Mapping[int, str], mode: AngelMode) -> TokenGroup:
    if group.exchange_type not in exchange_types:
        raise ValueError(f"unknown exchangeType {group.exchange_type}")
    if mode is AngelMode.DEPTH and group.exchange_type != 1:
        raise ValueError("mode 4 (DEPTH) supports exchangeType 1 (nse_cm) only")
    if not group.tokens:
        raise ValueError(f"exchangeType {group.exchange_type} has no tokens")
    for token in group.tokens:
        if not (token.isascii() and 0 < len(token) <= _MAX_TOKEN_CHARS):
            raise ValueError(f"token {token!r:.40} is not 1..25 ASCII characters")
    return TokenGroup(group.exchange_type, tuple(group.tokens))


def parse_client_request(text: str | bytes, exchange_types: Mapping[int, str]) -> ClientRequest:
    """Parse and validate a request against the known ``exchange_types``; ValueError otherwise."""
    try:
        req = _request_decoder.decode(text)
    except msgspec.DecodeError as exc:  # ValidationError included
        raise ValueError(f"bad request: {exc}") from None
    if req.action not in (0, 1):
        raise ValueError(f"action must be 1 (subscribe) or 0 (unsubscribe), got {req.action}")
    try:
        mode = AngelMode(req.params.mode)
    except ValueError:
        raise ValueError(f"mode must be 1..4, got {req.params.mode}") from None
    if not req.params.token_list:
        raise ValueError("tokenList is empty")
    groups = tuple(_group(g, exchange_types, mode) for g in req.params.token_list)
    return ClientRequest(req.correlation_id, req.action, mode, groups)
