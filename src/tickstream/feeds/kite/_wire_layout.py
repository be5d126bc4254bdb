"""Kite binary layouts, segments and price divisors (shared by the decoder and the encoder).

See :mod:`tickstream.feeds.kite.wire` for the field mapping.
"""

from __future__ import annotations

import struct
from typing import Final

__all__ = ["SEGMENTS", "divisor_for", "instrument_token", "split_instrument_token"]

SEGMENTS: Final[dict[int, str]] = {
    1: "NSE",
    2: "NFO",
    3: "CDS",
    4: "BSE",
    5: "BFO",
    6: "BCD",
    7: "MCX",
    8: "MCXSX",
    9: "INDICES",
    12: "NCO",
}
_SEGMENT_OF: Final = {name: seg for seg, name in SEGMENTS.items()}
_DIVISORS: Final[dict[int, float]] = {
    seg: 10_000_000.0 if seg == 3 else 10_000.0 if seg in (6, 12) else 100.0 for seg in SEGMENTS
}
_INDICES: Final = 9

_U16: Final = struct.Struct(">H")
_LTP: Final = struct.Struct(">Ii")
_INDEX_QUOTE: Final = struct.Struct(">I6i")
_INDEX_FULL: Final = struct.Struct(">I6iI")
_QUOTE: Final = struct.Struct(">IiIiIII4i")
_LEVEL: Final = "IiH2x"
_FULL: Final = struct.Struct(">IiIiIII4i5I" + _LEVEL * 10)
_EMPTY_LEVEL: Final = (0, 0, 0)


def divisor_for(segment: int) -> float:
    """Price divisor of a segment (KeyError for an unknown segment)."""
    return _DIVISORS[segment]


def instrument_token(exchange: str, token: int) -> int:
    """Kite instrument token: ``token << 8 | segment``."""
    try:
        segment = _SEGMENT_OF[exchange]
    except KeyError:
        raise ValueError(f"no Kite segment for exchange {exchange!r}") from None
    if not 0 <= token < 1 << 24:
        raise ValueError(f"exchange token {token} does not fit in 24 bits")
    return token << 8 | segment


def split_instrument_token(itok: int) -> tuple[str, int]:
    """``(exchange, exchange token)`` of a Kite instrument token (ValueError if unknown segment)."""
    try:
        return SEGMENTS[itok & 0xFF], itok >> 8
    except KeyError:
        raise ValueError(f"instrument token {itok} has unknown segment {itok & 0xFF}") from None
