"""Kite's instruments dump (``GET /instruments``, CSV) parsed into :class:`Instrument` records.

Header, exactly: ``instrument_token,exchange_token,tradingsymbol,name,last_price,expiry,strike,
tick_size,lot_size,instrument_type,segment,exchange``. Index rows (segment ``INDICES``) become
exchange ``INDICES``; their exchange token is Kite's own (NIFTY 50 = 1001), so indices are
cross-referenced with Angel by symbol, not token. A row whose ``instrument_token`` is not
``exchange_token << 8 | segment`` is malformed. Pure parsing; :func:`fetch_kite_instruments`
is the one I/O function.
"""

from __future__ import annotations

import csv
import io
from typing import Final

import httpx

from tickstream.feeds.kite.auth import KITE_API_ROOT, KiteAuth
from tickstream.model import Instrument

__all__ = [
    "KITE_INSTRUMENTS_HEADER",
    "MasterError",
    "fetch_kite_instruments",
    "parse_kite_instruments",
]

KITE_INSTRUMENTS_HEADER: Final = [
    "instrument_token",
    "exchange_token",
    "tradingsymbol",
    "name",
    "last_price",
    "expiry",
    "strike",
    "tick_size",
    "lot_size",
    "instrument_type",
    "segment",
    "exchange",
]


class MasterError(ValueError):
    """An instrument master that is empty or malformed (the last good one stays in use)."""


def _row(row: list[str], line: int) -> Instrument:
    if len(row) != len(KITE_INSTRUMENTS_HEADER):
        raise MasterError(f"kite instruments line {line}: {len(row)} fields, expected 12")
    itok_s, etok_s, symbol, name, _, expiry, strike, tick, lot, kind, segment, exchange = row
    try:
        itok, etok = int(itok_s), int(etok_s)
        strike_v, tick_v, lot_v = float(strike or 0), float(tick or 0), int(float(lot or 0))
    except ValueError:
        raise MasterError(f"kite instruments line {line}: a number field is not a number") from None
    if itok >> 8 != etok or not symbol:
        raise MasterError(f"kite instruments line {line}: instrument_token {itok} != {etok} << 8")
    index = segment == "INDICES"
    return Instrument(
        exchange="INDICES" if index else exchange,
        token=etok,
        symbol=symbol,
        name=name or None,
        instrument_type="INDEX" if index else (kind or None),
        segment=segment or None,
        kite_token=itok,
        lot_size=lot_v or None,
        tick_size=tick_v or None,
        expiry=expiry or None,
        strike=strike_v if kind in ("CE", "PE") else None,
    )


def parse_kite_instruments(text: str) -> list[Instrument]:
    """Every row of a dump; MasterError for a wrong header, a bad row or no rows at all."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header != KITE_INSTRUMENTS_HEADER:
        raise MasterError(f"kite instruments: unexpected header {str(header)[:120]}")
    out = [_row(row, n) for n, row in enumerate(reader, start=2) if row]
    if not out:
        raise MasterError("kite instruments: no rows")
    return out


async def fetch_kite_instruments(
    auth: KiteAuth, *, exchange: str | None = None, root: str = KITE_API_ROOT,
    client: httpx.AsyncClient | None = None,
) -> str:  # fmt: skip
    """The dump's CSV text (all exchanges, or one)."""
    path = "/instruments" + (f"/{exchange}" if exchange else "")
    async with httpx.AsyncClient(timeout=60.0) if client is None else _borrowed(client) as http:
        response = await http.get(root.rstrip("/") + path, headers=auth.headers())
    if response.status_code != 200:
        raise MasterError(f"kite instruments: HTTP {response.status_code}")
    return response.text


class _borrowed:
    """Use a caller's client in ``async with`` without closing it."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def __aenter__(self) -> httpx.AsyncClient:
        return self.client

    async def __aexit__(self, *exc: object) -> None:
        return None
