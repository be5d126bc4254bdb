"""Kite Connect v3 REST, as the simulator serves it to the official ``kiteconnect`` client.

Routes (paths, parameters, headers and bodies as api.kite.trade; root URL is the only difference):

``GET /connect/login?api_key=..&v=3``
    Stands in for the browser login: there is no login page. It answers ``302`` to the configured
    redirect URL with ``?request_token=..&action=login&status=success``, like a completed login.
``POST /session/token`` (form: ``api_key``, ``request_token``, ``checksum``)
    ``checksum`` must be ``sha256(api_key + request_token + api_secret)`` in hex; the access token
    comes from the :class:`~tickstream.sim.rest_auth.TokenAuthority` (so it also opens the
    simulator's ticker). Request tokens are single use.
``GET /user/profile``, ``GET /instruments``, ``GET /instruments/{exchange}``
    The CSV dump has Kite's exact header; index rows look like Kite's (exchange ``NSE``, segment
    ``INDICES``, type ``EQ``, tick and lot 0).
``GET /instruments/historical/{instrument_token}/{interval}?from=..&to=..&continuous=0&oi=0|1``
    Candles from :mod:`tickstream.sim.history`, ``[ts, o, h, l, c, v(, oi)]`` with timestamps like
    ``2017-12-15T09:15:00+0530``; Kite's per-request day limits; 3 requests a second per API key.

Every data route needs ``Authorization: token api_key:access_token``. Errors use Kite's envelope
``{"status": "error", "message": .., "data": null, "error_type": ..}``: a bad or expired token is
403 ``TokenException``, bad input 400 ``InputException``, a rate-limit hit 429 ``NetworkException``
"Too many requests".
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import hashlib
import hmac
import io
import logging
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final
from urllib.parse import parse_qs, urlencode

import msgspec
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from tickstream.calendar import IST, ist_ns
from tickstream.model import Instrument
from tickstream.sim.history import Bar, bars, ist_stamp, reference_price
from tickstream.sim.ratelimit import SlidingWindowLimiter
from tickstream.sim.rest_auth import TokenAuthority

__all__ = [
    "KITE_CSV_HEADER",
    "KITE_MAX_DAYS",
    "create_kite_app",
    "kite_candle",
    "kite_instrument_row",
    "kite_instruments_csv",
]

log = logging.getLogger(__name__)

KITE_CSV_HEADER: Final = (
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
)
#: interval -> (seconds, maximum days per request), as Kite documents them.
KITE_MAX_DAYS: Final[dict[str, tuple[int, int]]] = {
    "minute": (60, 60),
    "3minute": (180, 100),
    "5minute": (300, 100),
    "10minute": (600, 100),
    "15minute": (900, 200),
    "30minute": (1800, 200),
    "60minute": (3600, 400),
    "day": (86_400, 2000),
}
HISTORICAL_PER_SECOND: Final = 3
_MAX_PENDING_LOGINS: Final = 1024
_JSON: Final = "application/json"
_DATE_FORMATS: Final = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d")
_encoder = msgspec.json.Encoder()


class KiteError(Exception):
    """An error answered in Kite's envelope."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message


def _json(data: Any, status: int = 200) -> Response:
    return Response(_encoder.encode(data), status_code=status, media_type=_JSON)


def _success(data: Any) -> Response:
    return _json({"status": "success", "data": data})


def _error(status: int, error_type: str, message: str) -> Response:
    body = {"status": "error", "message": message, "data": None, "error_type": error_type}
    return _json(body, status)


def kite_instrument_row(inst: Instrument) -> list[str]:
    """One instruments-dump row for ``inst`` (it must have a ``kite_token``)."""
    index = inst.segment == "INDICES" or inst.instrument_type == "INDEX"
    return [
        str(inst.kite_token),
        str(inst.token),
        inst.symbol,
        inst.name or "",
        "0.0",
        inst.expiry or "",
        str(float(inst.strike or 0.0)),
        "0.0" if index else str(float(inst.tick_size or 0.0)),
        "0" if index else str(inst.lot_size or 1),
        "EQ" if index else (inst.instrument_type or "EQ"),
        inst.segment or inst.exchange,
        "NSE" if inst.exchange == "INDICES" else inst.exchange,
    ]


def kite_instruments_csv(universe: Sequence[Instrument], exchange: str | None = None) -> str:
    """The instruments CSV for ``universe`` (only ``exchange``'s rows when given)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(KITE_CSV_HEADER)
    for inst in universe:
        if inst.kite_token is None:
            continue
        row = kite_instrument_row(inst)
        if exchange is None or row[-1] == exchange:
            writer.writerow(row)
    return out.getvalue()


def kite_candle(bar: Bar, *, with_oi: bool) -> list[Any]:
    """``[ts, o, h, l, c, v(, oi)]`` with Kite's ``+0530`` timestamp."""
    row: list[Any] = [
        ist_stamp(bar.start_ns, "+0530"),
        bar.open,
        bar.high,
        bar.low,
        bar.close,
        bar.volume,
    ]
    if with_oi:
        row.append(bar.oi)
    return row


def _parse_ist(text: str, name: str) -> int:
    for fmt in _DATE_FORMATS:
        try:
            parsed = dt.datetime.strptime(text, fmt).replace(tzinfo=IST)
        except ValueError:
            continue
        return ist_ns(parsed.date(), parsed.hour, parsed.minute, parsed.second)
    raise KiteError(400, "InputException", f"invalid `{name}` date: {text!r}")


class _KiteApp:
    def __init__(
        self,
        authority: TokenAuthority,
        universe: Sequence[Instrument],
        prices: Mapping[str, float],
        redirect_url: str,
        clock: Callable[[], float],
    ) -> None:
        self.authority = authority
        self.universe = list(universe)
        self.prices = dict(prices)
        self.redirect_url = redirect_url
        self.by_token: dict[int | None, Instrument] = {
            i.kite_token: i for i in universe if i.kite_token is not None
        }
        self.request_tokens: dict[str, None] = {}  # insertion-ordered, bounded
        self.limiter = SlidingWindowLimiter([(HISTORICAL_PER_SECOND, 1.0)], clock=clock)

    def authorize(self, request: Request) -> str:
        """The API key of a valid ``Authorization: token key:token`` header, else TokenException."""
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        api_key, _, token = value.partition(":")
        if (
            scheme.lower() != "token"
            or not hmac.compare_digest(api_key, self.authority.kite.api_key)
            or not self.authority.kite_token_valid(token)
        ):
            raise KiteError(403, "TokenException", "Incorrect `api_key` or `access_token`.")
        return api_key

    async def login(self, request: Request) -> Response:
        api_key = request.query_params.get("api_key", "")
        if not hmac.compare_digest(api_key, self.authority.kite.api_key):
            raise KiteError(400, "InputException", "Invalid `api_key`.")
        request_token = secrets.token_urlsafe(24)
        self.request_tokens[request_token] = None
        if len(self.request_tokens) > _MAX_PENDING_LOGINS:
            del self.request_tokens[next(iter(self.request_tokens))]
        query = urlencode({"request_token": request_token, "action": "login", "status": "success"})
        sep = "&" if "?" in self.redirect_url else "?"
        return RedirectResponse(f"{self.redirect_url}{sep}{query}", status_code=302)

    async def session_token(self, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        api_key, request_token = form.get("api_key", ""), form.get("request_token", "")
        kite = self.authority.kite
        if not hmac.compare_digest(api_key, kite.api_key):
            raise KiteError(403, "TokenException", "Invalid `api_key`.")
        expected = hashlib.sha256((api_key + request_token + kite.api_secret).encode()).hexdigest()
        if not hmac.compare_digest(form.get("checksum", ""), expected):
            raise KiteError(403, "TokenException", "Invalid `checksum`.")
        if request_token not in self.request_tokens:
            raise KiteError(403, "TokenException", "Token is invalid or has expired.")
        del self.request_tokens[request_token]
        access_token = self.authority.issue_kite_token()
        log.info("kite session issued for api key %s", api_key)
        return _success(self._session(api_key, access_token))

    def _session(self, api_key: str, access_token: str) -> dict[str, Any]:
        login_time = dt.datetime.now(IST).strftime("%Y-%m-%d %H:%M:%S")
        return {
            **_PROFILE,
            "api_key": api_key,
            "access_token": access_token,
            "public_token": secrets.token_urlsafe(16),
            "refresh_token": "",
            "enctoken": secrets.token_urlsafe(32),
            "login_time": login_time,
        }

    async def profile(self, request: Request) -> Response:
        self.authorize(request)
        return _success(_PROFILE)

    async def instruments(self, request: Request) -> Response:
        self.authorize(request)
        exchange = request.path_params.get("exchange")
        body = kite_instruments_csv(self.universe, exchange)
        return Response(body, media_type="text/csv")

    async def historical(self, request: Request) -> Response:
        api_key = self.authorize(request)
        if not self.limiter.try_acquire(api_key):
            raise KiteError(429, "NetworkException", "Too many requests")
        interval = request.path_params["interval"]
        if interval not in KITE_MAX_DAYS:
            raise KiteError(400, "InputException", "invalid interval")
        seconds, max_days = KITE_MAX_DAYS[interval]
        inst = self.by_token.get(_int_or_none(request.path_params["instrument_token"]))
        if inst is None:
            raise KiteError(400, "InputException", "invalid token")
        q = request.query_params
        start = _parse_ist(q.get("from", ""), "from")
        end = _parse_ist(q.get("to", ""), "to")
        if end < start:
            raise KiteError(400, "InputException", "invalid from and to dates")
        if end - start > max_days * 86_400 * 1_000_000_000:
            raise KiteError(400, "InputException", f"interval exceeds max limit: {max_days} days")
        with_oi = q.get("oi", "0") == "1"
        ref = reference_price(inst, self.prices)
        got = await asyncio.to_thread(bars, inst, seconds, start, end, ref)
        return _success({"candles": [kite_candle(b, with_oi=with_oi) for b in got]})


_PROFILE: Final[dict[str, Any]] = {
    "user_id": "SIM001",
    "user_type": "individual",
    "email": "sim@example.invalid",
    "user_name": "Simulated User",
    "user_shortname": "Sim",
    "broker": "ZERODHA",
    "exchanges": ["NSE", "NFO", "BSE", "BFO", "CDS", "MCX"],
    "products": ["CNC", "NRML", "MIS"],
    "order_types": ["MARKET", "LIMIT", "SL", "SL-M"],
    "avatar_url": None,
    "meta": {"demat_consent": "consent"},
}


def _int_or_none(text: str) -> int | None:
    return int(text) if text.isdigit() else None


async def _on_kite_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, KiteError)
    return _error(exc.status, exc.error_type, exc.message)


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return _error(404, "GeneralException", "Route not found")
    return _error(exc.status_code, "InputException", str(exc.detail))


def create_kite_app(
    authority: TokenAuthority,
    universe: Sequence[Instrument],
    *,
    prices: Mapping[str, float] | None = None,
    redirect_url: str = "http://127.0.0.1/kite/redirect",
    clock: Callable[[], float] = time.monotonic,
) -> Starlette:
    """The Kite REST app over ``universe`` (``prices``: reference price per instrument key)."""
    app = _KiteApp(authority, universe, prices or {}, redirect_url, clock)
    routes = [
        Route("/connect/login", app.login, methods=["GET"]),
        Route("/session/token", app.session_token, methods=["POST"]),
        Route("/user/profile", app.profile, methods=["GET"]),
        Route("/instruments", app.instruments, methods=["GET"]),
        Route(
            "/instruments/historical/{instrument_token}/{interval}",
            app.historical,
            methods=["GET"],
        ),
        Route("/instruments/{exchange}", app.instruments, methods=["GET"]),
    ]
    handlers = {KiteError: _on_kite_error, HTTPException: _on_http_error}
    return Starlette(routes=routes, exception_handlers=handlers)
