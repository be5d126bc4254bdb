"""JSON shapes the server sends: ticks and candles once-encoded for WebSocket fan-out, and dicts
with human-readable IST times for REST.

Ticks and candles omit default fields on the bus; clients need ``status`` and ``mode`` on every
tick, so :func:`tick_json` adds them when the struct left them out.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from tickstream.calendar import ist_datetime
from tickstream.model import Candle, Instrument, Mode, Status, Tick

__all__ = [
    "candle_dict",
    "candle_json",
    "encode",
    "ist_iso",
    "message",
    "tick_dict",
    "tick_json",
]

encode = msgspec.json.Encoder().encode
_LIVE: Final = b',"status":"LIVE"'
_MODE_LTP: Final = b',"mode":"ltp"'


def ist_iso(ts_ns: int | None) -> str | None:
    """``2024-12-02T09:15:00.250000+05:30`` for an epoch-ns time (None stays None)."""
    return None if ts_ns is None else ist_datetime(ts_ns).isoformat()


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


def tick_dict(tick: Tick) -> dict[str, Any]:
    out: dict[str, Any] = msgspec.to_builtins(tick)
    out["status"] = tick.status.value
    out["mode"] = tick.mode.value
    out["ts_exchange_ist"] = ist_iso(tick.ts_exchange)
    out["ts_recv_ist"] = ist_iso(tick.ts_recv)
    return out


def candle_dict(candle: Candle, *, indicators: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = msgspec.to_builtins(candle)
    if not indicators:
        out.pop("indicators", None)
    out["start_ist"] = ist_iso(candle.start)
    return out


def instrument_dict(inst: Instrument) -> dict[str, Any]:
    out: dict[str, Any] = msgspec.to_builtins(inst)
    out["key"] = inst.key
    return out
