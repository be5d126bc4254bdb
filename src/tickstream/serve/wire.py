"""JSON shapes the server sends: ticks and candles once-encoded for WebSocket fan-out, and dicts
with human-readable IST times for REST.

Ticks and candles omit default fields on the bus; clients need ``status`` and ``mode`` on every
tick, so :func:`tick_json` adds them when the struct left them out.
"""

from __future__ import annotations

import time
from typing import Any, Final

import msgspec

from tickstream.calendar import IST_OFFSET_NS
from tickstream.model import NS_PER_SEC, Candle, Instrument, Mode, Status, Tick

__all__ = [
    "candle_json",
    "candle_rest_json",
    "encode",
    "envelope",
    "instrument_dict",
    "ist_iso",
    "message",
    "tick_json",
    "tick_rest_json",
]

encode = msgspec.json.Encoder().encode
_LIVE: Final = b',"status":"LIVE"'
_MODE_LTP: Final = b',"mode":"ltp"'
_IST_OFFSET_S: Final = IST_OFFSET_NS // NS_PER_SEC


def ist_iso(ts_ns: int | None) -> str | None:
    """``2024-12-02T09:15:00.250000+05:30`` for an epoch-ns time (None stays None).

    Equal to ``ist_datetime(ts_ns).isoformat()`` (tested), but ~20x faster: aware-datetime
    construction dominated the cost of large REST responses.
    """
    if ts_ns is None:
        return None
    secs, ns = divmod(ts_ns, NS_PER_SEC)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs + _IST_OFFSET_S))
    us = ns // 1000
    return f"{stamp}.{us:06d}+05:30" if us else f"{stamp}+05:30"


def tick_json(tick: Tick) -> bytes:
    """One tick as JSON with ``status`` and ``mode`` always present (encoded once per tick)."""
    data = encode(tick)
    extra = b""
    if tick.mode is Mode.LTP:
        extra += _MODE_LTP
    if tick.status is Status.LIVE:
        extra += _LIVE
    return data[:-1] + extra + b"}" if extra else data


def candle_json(candle: Candle) -> bytes:
    return encode(candle)


def message(kind: str, key: str, items: list[bytes]) -> str:
    """``{"type": kind, key: [items...]}`` from already encoded items, as WebSocket text."""
    return f'{{"type":"{kind}","{key}":[{b",".join(items).decode()}]}}'


def tick_rest_json(tick: Tick) -> bytes:
    """A tick for REST: :func:`tick_json` plus ``ts_exchange_ist`` and ``ts_recv_ist``."""
    ex, recv = ist_iso(tick.ts_exchange), ist_iso(tick.ts_recv)
    return tick_json(tick)[:-1] + f',"ts_exchange_ist":"{ex}","ts_recv_ist":"{recv}"}}'.encode()


def candle_rest_json(candle: Candle, *, indicators: bool = True) -> bytes:
    """A candle for REST with ``start_ist``; ``indicators=False`` leaves them out."""
    if not indicators and candle.indicators is not None:
        candle = msgspec.structs.replace(candle, indicators=None)
    return encode(candle)[:-1] + f',"start_ist":"{ist_iso(candle.start)}"}}'.encode()


def envelope(meta: dict[str, Any], key: str, items: list[bytes]) -> bytes:
    """``{**meta, key: [items...]}`` as JSON bytes, with the items already encoded."""
    head = encode(meta)
    sep = b"," if len(meta) else b""
    return head[:-1] + sep + f'"{key}":['.encode() + b",".join(items) + b"]}"


def instrument_dict(inst: Instrument) -> dict[str, Any]:
    out: dict[str, Any] = msgspec.to_builtins(inst)
    out["key"] = inst.key
    return out
