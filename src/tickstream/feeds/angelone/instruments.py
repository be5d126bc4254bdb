"""Angel One's scrip master (``OpenAPIScripMaster.json``) parsed into :class:`Instrument` records.

Every value is a string; ``strike`` and ``tick_size`` are in paise (``"5.000000"`` = 0.05 rupee),
equities have strike ``"-1.000000"`` and a ``-EQ`` (or ``-BE``, ``-SM`` ...) suffix, indices are
``AMXIDX`` rows of exch_seg NSE/BSE with tokens 999xxxxx, expiries look like ``28APR2026``.
Canonical records: equities keep only the ``-EQ`` series (symbol without the suffix), indices get
exchange ``INDICES`` and their Angel token; derivatives keep Angel's trading symbol.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

import httpx
import msgspec

from tickstream.feeds.kite.instruments import MasterError, _borrowed
from tickstream.model import Instrument

__all__ = ["SCRIP_MASTER_URL", "fetch_scrip_master", "parse_scrip_master"]

SCRIP_MASTER_URL: Final = (
    "https://margincalculator.angelone.in/OpenAPI_File/files/OpenAPIScripMaster.json"
)
_EQUITY_SEGMENTS: Final = frozenset({"NSE", "BSE"})


class Scrip(msgspec.Struct, frozen=True):
    token: str
    symbol: str
    name: str
    expiry: str
    strike: str
    lotsize: str
    instrumenttype: str
    exch_seg: str
    tick_size: str


_decoder = msgspec.json.Decoder(list[Scrip])


def _expiry(text: str) -> str | None:
    if not text:
        return None
    try:
        return dt.datetime.strptime(text, "%d%b%Y").date().isoformat()  # noqa: DTZ007 - a date
    except ValueError:
        raise MasterError(f"angel scrip master: bad expiry {text!r}") from None


def _instrument(s: Scrip) -> Instrument | None:
    """The canonical record, or None for a row we do not keep (non -EQ equity series)."""
    index = s.instrumenttype == "AMXIDX"
    equity = s.exch_seg in _EQUITY_SEGMENTS and not index and not s.instrumenttype
    if equity and not s.symbol.endswith("-EQ"):
        return None
    try:
        strike, tick, lot = float(s.strike), float(s.tick_size), int(float(s.lotsize or 0))
        token = int(s.token)
    except ValueError:
        raise MasterError(f"angel scrip master: token {s.token!r} has a non-number field") from None
    return Instrument(
        exchange="INDICES" if index else s.exch_seg,
        token=token,
        symbol=s.symbol.removesuffix("-EQ") if equity else s.symbol,
        name=s.name or None,
        instrument_type="INDEX" if index else ("EQ" if equity else s.instrumenttype or None),
        segment="INDICES" if index else s.exch_seg,
        angel_token=s.token,
        lot_size=lot or None,
        tick_size=tick / 100 or None,
        expiry=_expiry(s.expiry),
        strike=strike / 100 if strike > 0 else None,
    )


def parse_scrip_master(data: bytes | str) -> list[Instrument]:
    """The kept records; MasterError for malformed JSON, a bad row or nothing usable."""
    try:
        scrips = _decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise MasterError(f"angel scrip master: {exc}") from None
    out = [inst for s in scrips if (inst := _instrument(s)) is not None]
    if not out:
        raise MasterError("angel scrip master: no usable rows")
    return out


async def fetch_scrip_master(
    url: str = SCRIP_MASTER_URL, *, client: httpx.AsyncClient | None = None
) -> bytes:
    """The scrip master's bytes (public; no login needed)."""
    async with httpx.AsyncClient(timeout=120.0) if client is None else _borrowed(client) as http:
        response = await http.get(url)
    if response.status_code != 200:
        raise MasterError(f"angel scrip master: HTTP {response.status_code}")
    return response.content
