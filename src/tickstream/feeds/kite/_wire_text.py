"""Kite ticker JSON text messages (re-exported by :mod:`tickstream.feeds.kite.wire`).

Client -> server: ``{"a":"subscribe","v":[tokens]}``, ``{"a":"unsubscribe","v":[tokens]}``,
``{"a":"mode","v":["full",[tokens]]}``. Server -> client: ``{"type":"error","data":"..."}``,
``{"type":"message","data":...}`` and order updates ``{"type":"order","data":{...}}`` (passed
through as :class:`ServerText`).
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from tickstream.model import Mode

__all__ = [
    "ClientMessage",
    "ServerText",
    "encode_mode",
    "encode_server_error",
    "encode_server_message",
    "encode_subscribe",
    "encode_unsubscribe",
    "parse_client_message",
    "parse_server_text",
]

_json = msgspec.json.Encoder()


def _dumps(obj: object) -> str:
    return _json.encode(obj).decode()


def encode_subscribe(tokens: Sequence[int]) -> str:
    """``{"a":"subscribe","v":[tokens]}``."""
    return _dumps({"a": "subscribe", "v": list(tokens)})


def encode_unsubscribe(tokens: Sequence[int]) -> str:
    """``{"a":"unsubscribe","v":[tokens]}``."""
    return _dumps({"a": "unsubscribe", "v": list(tokens)})


def encode_mode(mode: Mode, tokens: Sequence[int]) -> str:
    """``{"a":"mode","v":["full",[tokens]]}``."""
    return _dumps({"a": "mode", "v": [Mode(mode).value, list(tokens)]})


class ClientMessage(msgspec.Struct, frozen=True):
    """A parsed client -> server text message."""

    action: str
    tokens: tuple[int, ...]
    mode: Mode | None = None


def _tokens(value: object) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(type(t) is int and 0 <= t < 1 << 32 for t in value):
        raise ValueError(f"tokens must be a list of uint32 instrument tokens, got {value!r:.80}")
    return tuple(value)


def parse_client_message(text: str | bytes) -> ClientMessage:
    """Parse a subscribe / unsubscribe / mode message; ValueError with the reason otherwise."""
    try:
        msg = msgspec.json.decode(text)
    except msgspec.DecodeError as exc:
        raise ValueError(f"client message is not JSON: {exc}") from None
    if not isinstance(msg, dict) or not isinstance(msg.get("a"), str) or "v" not in msg:
        raise ValueError('client message must be an object with "a" (action) and "v"')
    action, value = msg["a"], msg["v"]
    if action in ("subscribe", "unsubscribe"):
        return ClientMessage(action, _tokens(value))
    if action == "mode":
        if not isinstance(value, list) or len(value) != 2:
            raise ValueError('mode message "v" must be [mode, [tokens]]')
        try:
            mode = Mode(value[0])
        except ValueError:
            raise ValueError(
                f"unknown mode {value[0]!r:.40}; expected ltp, quote or full"
            ) from None
        return ClientMessage(action, _tokens(value[1]), mode)
    raise ValueError(f"unknown action {action!r:.40}; expected subscribe, unsubscribe or mode")


class ServerText(msgspec.Struct, frozen=True):
    """A server -> client text message: ``type`` is error, message or order (passed through)."""

    type: str
    data: object


def encode_server_error(message: str) -> str:
    """``{"type":"error","data":message}``."""
    return _dumps({"type": "error", "data": message})


def encode_server_message(data: object) -> str:
    """``{"type":"message","data":data}``."""
    return _dumps({"type": "message", "data": data})


def parse_server_text(text: str | bytes) -> ServerText:
    """Parse a server text message; ValueError if it is not ``{"type": str, "data": ...}``."""
    try:
        msg = msgspec.json.decode(text)
    except msgspec.DecodeError as exc:
        raise ValueError(f"server text is not JSON: {exc}") from None
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise ValueError('server text must be an object with a string "type"')
    return ServerText(msg["type"], msg.get("data"))
