"""Pure parsing and limits for the historical API (no I/O, testable without a server)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Final

from tickstream.calendar import IST
from tickstream.model import NS_PER_SEC, Exchange, Instrument

__all__ = [
    "MAX_CANDLES",
    "MAX_TICKS_LIMIT",
    "MAX_TICK_RANGE_NS",
    "parse_key",
    "parse_time",
    "search_universe",
    "time_range",
]

MAX_TICKS_LIMIT: Final = 10_000
MAX_TICK_RANGE_NS: Final = 7 * 86_400 * NS_PER_SEC
MAX_CANDLES: Final = 50_000  # a candle query spans at most this many intervals
DEFAULT_SPAN_NS: Final = 86_400 * NS_PER_SEC
_MIN_NS: Final = 946_684_800 * NS_PER_SEC  # 2000-01-01
_MAX_NS: Final = 4_102_444_800 * NS_PER_SEC  # 2100-01-01
_EXCHANGES: Final = frozenset(e.value for e in Exchange)


def parse_time(text: str) -> int:
    """Epoch nanoseconds from ``1733111100000000000`` or ISO-8601 (no offset means IST)."""
    text = text.strip()
    if text.isascii() and text.isdigit():
        value = int(text)
    else:
        try:
            parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(
                f"invalid time {text!r}: use epoch nanoseconds or ISO-8601 "
                "(e.g. 2024-12-02T09:15:00+05:30; without an offset the time is IST)"
            ) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=IST)
        value = int(parsed.timestamp()) * NS_PER_SEC + parsed.microsecond * 1000
    if not _MIN_NS <= value < _MAX_NS:
        raise ValueError(f"time {text!r} is outside 2000-01-01 .. 2100-01-01 (epoch ns expected)")
    return value


def time_range(
    start: str | None, end: str | None, max_span_ns: int, *, now_ns: int
) -> tuple[int, int]:
    """Half-open ``[start, end)``; defaults end = now and start = end - min(1 day, max span)."""
    end_ns = now_ns if end is None else parse_time(end)
    start_ns = end_ns - min(DEFAULT_SPAN_NS, max_span_ns) if start is None else parse_time(start)
    if start_ns >= end_ns:
        raise ValueError("start must be before end")
    if end_ns - start_ns > max_span_ns:
        raise ValueError(f"range too long: at most {_human(max_span_ns)} per request")
    return start_ns, end_ns


def _human(ns: int) -> str:
    secs = ns // NS_PER_SEC
    if secs % 86_400 == 0:
        return f"{secs // 86_400} days"
    if secs % 3600 == 0:
        return f"{secs // 3600} hours"
    return f"{secs} seconds"


def parse_key(ref: str) -> tuple[str, int] | None:
    """``NSE:2885`` -> ("NSE", 2885) for a known exchange; None otherwise."""
    exchange, sep, token = ref.strip().partition(":")
    exchange = exchange.upper()
    if (
        not sep
        or exchange not in _EXCHANGES
        or not (token.isascii() and token.isdigit())
        or len(token) > 12
    ):
        return None
    return exchange, int(token)


def search_universe(
    instruments: Iterable[Instrument], query: str, exchange: str | None, limit: int
) -> list[Instrument]:
    """Case-insensitive substring of symbol or name; exact, then prefix matches first."""
    needle = query.strip().upper()
    ranked: list[tuple[int, int, str, str, Instrument]] = []
    for inst in instruments:
        if exchange is not None and inst.exchange != exchange:
            continue
        symbol, name = inst.symbol.upper(), (inst.name or "").upper()
        if needle not in symbol and needle not in name:
            continue
        rank = 0 if symbol == needle else 1 if symbol.startswith(needle) else 2
        ranked.append((rank, len(symbol), symbol, inst.exchange, inst))
    ranked.sort(key=lambda r: r[:4])  # the store's order: exact, prefix, length, symbol, exchange
    return [r[4] for r in ranked[:limit]]
