"""Types and helpers shared by the broker wire codecs (``kite.wire``, ``angelone.wire``).

A decoder never raises on bad input: every packet it cannot turn into a
:class:`~tickstream.model.Tick` becomes a :class:`Reject` with a short snake_case ``reason``
and a human ``detail``, and the other packets of the same frame still decode. Reasons:

``truncated_frame``   the frame ends inside a header or length prefix
``bad_packet_count``  the declared packet count does not match the packets in the frame
``truncated_packet``  a packet's declared length runs past the end of the frame / is too short
``unknown_length``    a packet whose length is no known packet kind (Kite), or longer than its
                      mode's size (Angel)
``unknown_mode``      a subscription-mode byte that is no known mode (Angel)
``bad_exchange``      an unknown exchange segment / exchange type
``bad_token``         a token field that is not a decimal number (Angel)
``out_of_range``      a negative price or quantity, an absurd timestamp, an unknown depth side flag
``bad_text``          a text message that is not what the protocol allows
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import msgspec

from tickstream.model import Tick

__all__ = [
    "TS_MAX_S",
    "TS_MIN_S",
    "DecodeResult",
    "Reject",
    "SymbolResolver",
    "change_fields",
    "check_ts_s",
    "symbol_for",
]

SymbolResolver = Callable[[str, int], str | None]
"""``(exchange, token) -> trading symbol``, or None when unknown (symbol is then ``str(token)``)."""

TS_MIN_S: Final = 946_684_800  # 2000-01-01T00:00:00Z: earlier exchange times are absurd
TS_MAX_S: Final = 4_102_444_800  # 2100-01-01T00:00:00Z


class Reject(msgspec.Struct, frozen=True):
    """One packet (or frame) that could not be decoded: why, in a short code, and the details."""

    reason: str
    detail: str


class DecodeResult(msgspec.Struct):
    """What one frame (Kite) or one binary message (Angel) decoded to."""

    ticks: list[Tick]
    rejects: list[Reject]
    packets: int
    heartbeat: bool = False


def symbol_for(resolve: SymbolResolver | None, exchange: str, token: int) -> str:
    """The trading symbol from ``resolve``, falling back to the token's decimal string."""
    if resolve is not None:
        symbol = resolve(exchange, token)
        if symbol is not None:
            return symbol
    return str(token)


def change_fields(ltp: float, close: float) -> tuple[float | None, float | None]:
    """``(change, change_pct)`` versus the previous close; both None when close is 0 (unknown)."""
    if close == 0:
        return None, None
    change = ltp - close
    # Same operation order as the brokers' SDKs, so the float is bit-identical to theirs.
    return change, change * 100 / close


def check_ts_s(seconds: int, name: str) -> str | None:
    """None if ``seconds`` is 0 (not sent) or a plausible epoch second, else a Reject detail."""
    if seconds == 0 or TS_MIN_S <= seconds < TS_MAX_S:
        return None
    return f"{name}={seconds}s is outside 2000..2100"
