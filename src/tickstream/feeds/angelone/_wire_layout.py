"""Angel One binary layouts, exchange types and price divisors (decoder and encoder share them).

See :mod:`tickstream.feeds.angelone.wire` for the field mapping.
"""

from __future__ import annotations

import struct
from typing import Final

from tickstream.feeds.angelone._wire_text import AngelMode

__all__ = ["EXCHANGE_TYPES", "PACKET_SIZES", "exchange_type_for"]

EXCHANGE_TYPES: Final[dict[int, str]] = {
    1: "NSE",
    2: "NFO",
    3: "BSE",
    4: "BFO",
    5: "MCX",
    7: "NCO",
    13: "CDS",
}
_TYPE_OF: Final = {name: et for et, name in EXCHANGE_TYPES.items()}
_DIVISORS: Final[dict[int, float]] = {
    et: 10_000_000.0 if et == 13 else 100.0 for et in EXCHANGE_TYPES
}
_INDEX_TYPES: Final = frozenset((1, 3))
_INDEX_TOKEN_MIN: Final = 99_900_000


PACKET_SIZES: Final[dict[AngelMode, int]] = {
    AngelMode.LTP: 51,
    AngelMode.QUOTE: 123,
    AngelMode.SNAP_QUOTE: 379,
    AngelMode.DEPTH: 443,
}
_SIZE_OF_MODE: Final[dict[int, int]] = {int(m): size for m, size in PACKET_SIZES.items()}

_LTP: Final = struct.Struct("<BB25sqqq")
_QUOTE: Final = struct.Struct("<BB25sqqq" + "qqqddqqqq")
_SNAP: Final = struct.Struct("<BB25sqqq" + "qqqddqqqq" + "qqd" + "HqqH" * 10 + "qqqq")
_DEPTH: Final = struct.Struct("<BB25sqq" + "iih" * 40)
_BEST5_AT: Final = 18  # index of the first best-five value in a _SNAP tuple
_FLAGS: Final = (1, 1, 1, 1, 1, 0, 0, 0, 0, 0)  # buy side first, as the feed sends them
_DEPTH_AT: Final = 5  # index of the first depth value in a _DEPTH tuple


def exchange_type_for(exchange: str) -> int:
    """Angel exchange type of a canonical exchange (INDICES is ambiguous: pass the type)."""
    try:
        return _TYPE_OF[exchange]
    except KeyError:
        raise ValueError(
            f"no Angel exchange type for {exchange!r}; indices use 1 (NSE) or 3 (BSE)"
        ) from None
