"""Angel One SmartAPI REST, as the simulator serves it to the official ``SmartApi`` client.

Routes (paths, JSON bodies and headers as apiconnect.angelone.in; only the root URL differs):

``POST /rest/auth/angelbroking/user/v1/loginByPassword`` ``{clientcode, password, totp}``
    ``password`` is the PIN; ``totp`` is checked with pyotp against the configured secret
    (``valid_window=1``). Success: ``jwtToken`` (no ``Bearer`` prefix; the SDK adds it),
    ``refreshToken``, ``feedToken``. A wrong TOTP answers ``{"status": false, "message":
    "Invalid totp", "errorcode": "AB1050"}`` with HTTP 200 (as observed from the live API); a wrong
    client code or PIN ``AB1000`` "Invalid clientcode or password".
``POST /rest/auth/angelbroking/jwt/v1/generateTokens`` ``{refreshToken}``
    New jwt and feed tokens; an unknown refresh token is ``AB8050`` "Invalid Refresh Token".
``GET /rest/secure/angelbroking/user/v1/getProfile`` (``generateSession`` calls it after login)
``POST /rest/secure/angelbroking/historical/v1/getCandleData``
    ``{exchange, symboltoken, interval, fromdate, todate}`` -> ``[[ts, o, h, l, c, v], ..]`` with
    ``2023-09-01T09:15:00+05:30`` timestamps, from :mod:`tickstream.sim.history`; Angel's per
    interval day limits. Rate limits 3 a second and 180 a minute per API key; beyond them the
    answer is HTTP 403 with the *plain-text* body "Access denied because of exceeding access rate",
    exactly as the real gateway (the SDK then fails to parse JSON and raises ``DataException``).
    Parameter errors use the generic ``AB1004`` code with a message naming the problem.
``POST /rest/secure/angelbroking/order/v1/searchScrip`` ``{exchange, searchscrip}``
``GET /OpenAPI_File/files/OpenAPIScripMaster.json`` (public, as on the real host)
    The universe in Angel's scrip-master schema (string-typed values, strike and tick in paise).

Secure routes need ``Authorization: Bearer <jwt>``; a missing, invalid or expired token answers
HTTP 401 with the gateway's own envelope ``{"success": false, "message": "Invalid Token",
"errorCode": "AG8001", "data": ""}`` (its keys differ from the API's ``status``/``errorcode``).
Every API route needs ``X-PrivateKey`` = the API key (``AG8004`` "Invalid API Key" otherwise).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import msgspec
import pyotp
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from tickstream.calendar import IST, ist_ns
from tickstream.model import Instrument
from tickstream.sim.history import Bar, bars, ist_stamp, reference_price
from tickstream.sim.ratelimit import SlidingWindowLimiter
from tickstream.sim.rest_auth import TokenAuthority

__all__ = [
    "ANGEL_MAX_DAYS",
    "RATE_LIMIT_TEXT",
    "angel_candle",
    "angel_exchange",
    "angel_scrip",
    "angel_symbol",
    "create_angel_app",
]

log = logging.getLogger(__name__)

#: interval -> (seconds, maximum days per request), as Angel documents them.
ANGEL_MAX_DAYS: Final[dict[str, tuple[int, int]]] = {
    "ONE_MINUTE": (60, 30),
    "THREE_MINUTE": (180, 90),
    "FIVE_MINUTE": (300, 90),
    "TEN_MINUTE": (600, 90),
    "FIFTEEN_MINUTE": (900, 180),
    "THIRTY_MINUTE": (1800, 180),
    "ONE_HOUR": (3600, 365),
    "ONE_DAY": (86_400, 2000),
}
RATE_LIMIT_TEXT: Final = "Access denied because of exceeding access rate"
CANDLE_LIMITS: Final = ((3, 1.0), (180, 60.0))
_INDEX_NAMES: Final = {"NIFTY 50": ("Nifty 50", "NIFTY"), "NIFTY BANK": ("Nifty Bank", "BANKNIFTY")}
_INDEX_UNDERLYINGS: Final = frozenset({"NIFTY", "BANKNIFTY", "FINNIFTY", "MIDCPNIFTY", "SENSEX"})
_DATE_FORMAT: Final = "%Y-%m-%d %H:%M"
_encoder = msgspec.json.Encoder()


class AngelError(Exception):
    """An error answered in the API's envelope (HTTP 200, ``status: false``) or the gateway's."""

    def __init__(self, message: str, errorcode: str, *, http_status: int = 200) -> None:
        super().__init__(message)
        self.message = message
        self.errorcode = errorcode
        self.http_status = http_status


class _RateLimited(Exception):
    pass


def _json(data: Any, status: int = 200) -> Response:
    return Response(_encoder.encode(data), status_code=status, media_type="application/json")


def _success(data: Any) -> Response:
    return _json({"status": True, "message": "SUCCESS", "errorcode": "", "data": data})


def _is_index(inst: Instrument) -> bool:
    return inst.segment == "INDICES" or inst.instrument_type == "INDEX"


def angel_exchange(inst: Instrument) -> str:
    """Angel's ``exch_seg``: indices live under NSE (or BSE)."""
    if inst.exchange == "INDICES":
        return "BSE" if inst.symbol.startswith(("SENSEX", "BANKEX")) else "NSE"
    return inst.exchange


def _expiry(inst: Instrument) -> str:
    if not inst.expiry:
        return ""
    return dt.date.fromisoformat(inst.expiry).strftime("%d%b%Y").upper()


def angel_symbol(inst: Instrument) -> str:
    """Angel's trading symbol: ``RELIANCE-EQ``, ``Nifty 50``, ``NIFTY18AUG2625000CE``."""
    if _is_index(inst):
        return _INDEX_NAMES.get(inst.symbol, (inst.symbol, inst.symbol))[0]
    if inst.instrument_type in ("CE", "PE") and inst.expiry and inst.strike is not None:
        expiry = _expiry(inst)
        strike = f"{inst.strike:g}"
        return f"{inst.name}{expiry[:5]}{expiry[-2:]}{strike}{inst.instrument_type}"
    if inst.instrument_type == "FUT" and inst.expiry:
        expiry = _expiry(inst)
        return f"{inst.name}{expiry[:5]}{expiry[-2:]}FUT"
    return f"{inst.symbol}-EQ" if inst.exchange in ("NSE", "BSE") else inst.symbol


def _instrument_type(inst: Instrument) -> str:
    if _is_index(inst):
        return "AMXIDX"
    kind = "IDX" if (inst.name or "") in _INDEX_UNDERLYINGS else "STK"
    if inst.instrument_type in ("CE", "PE"):
        return "OPT" + kind
    if inst.instrument_type == "FUT":
        return "FUT" + kind
    return ""


def _scrip_name(inst: Instrument) -> str:
    if _is_index(inst):
        return _INDEX_NAMES.get(inst.symbol, (inst.symbol, inst.symbol))[1]
    if inst.instrument_type in ("CE", "PE", "FUT"):
        return inst.name or inst.symbol
    return inst.symbol


def angel_scrip(inst: Instrument) -> dict[str, str]:
    """One scrip-master record for ``inst`` (it must have an ``angel_token``)."""
    index = _is_index(inst)
    if index:
        strike = "0.000000"
    elif inst.strike is not None:
        strike = f"{inst.strike * 100:.6f}"
    else:
        strike = "-1.000000"
    return {
        "token": str(inst.angel_token),
        "symbol": angel_symbol(inst),
        "name": _scrip_name(inst),
        "expiry": _expiry(inst),
        "strike": strike,
        "lotsize": str(inst.lot_size or 1),
        "instrumenttype": _instrument_type(inst),
        "exch_seg": angel_exchange(inst),
        "tick_size": "0.000000" if index else f"{(inst.tick_size or 0.05) * 100:.6f}",
    }


def angel_candle(bar: Bar) -> list[Any]:
    """``[ts, o, h, l, c, v]`` with Angel's ``+05:30`` timestamp."""
    return [ist_stamp(bar.start_ns, "+05:30"), bar.open, bar.high, bar.low, bar.close, bar.volume]


def _parse_ist(text: object, name: str) -> int:
    try:
        parsed = dt.datetime.strptime(str(text), _DATE_FORMAT).replace(tzinfo=IST)
    except ValueError:
        raise AngelError(f"Invalid {name}: expected YYYY-MM-DD HH:MM", "AB1004") from None
    return ist_ns(parsed.date(), parsed.hour, parsed.minute)


async def _body(request: Request) -> dict[str, Any]:
    try:
        data = msgspec.json.decode(await request.body())
    except msgspec.DecodeError:
        raise AngelError("Invalid request body", "AB1004") from None
    if not isinstance(data, dict):
        raise AngelError("Invalid request body", "AB1004")
    return data


class _AngelApp:
    def __init__(
        self,
        authority: TokenAuthority,
        universe: Sequence[Instrument],
        prices: Mapping[str, float],
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
    ) -> None:
        self.authority = authority
        self.universe = [i for i in universe if i.angel_token is not None]
        self.prices = dict(prices)
        self.by_token = {(angel_exchange(i), str(i.angel_token)): i for i in self.universe}
        self.limiter = SlidingWindowLimiter(CANDLE_LIMITS, clock=clock)
        self.wall_clock = wall_clock
        self.master = _encoder.encode([angel_scrip(i) for i in self.universe])

    def check_key(self, request: Request) -> str:
        api_key = request.headers.get("x-privatekey", "")
        if not hmac.compare_digest(api_key, self.authority.angel.api_key):
            raise AngelError("Invalid API Key", "AG8004")
        return api_key

    def authorize(self, request: Request) -> str:
        api_key = self.check_key(request)
        scheme, _, jwt = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not self.authority.angel_jwt_valid(jwt.strip()):
            raise AngelError("Invalid Token", "AG8001", http_status=401)
        return api_key

    async def login(self, request: Request) -> Response:
        self.check_key(request)
        body = await _body(request)
        angel = self.authority.angel
        code_ok = hmac.compare_digest(str(body.get("clientcode", "")), angel.client_code)
        pin_ok = hmac.compare_digest(str(body.get("password", "")), angel.pin)
        if not (code_ok and pin_ok):
            raise AngelError("Invalid clientcode or password", "AB1000")
        totp = pyotp.TOTP(angel.totp_secret)
        if not totp.verify(str(body.get("totp", "")), for_time=self.wall_clock(), valid_window=1):
            raise AngelError("Invalid totp", "AB1050")
        log.info("angel session issued for client %s", angel.client_code)
        return _success(self._tokens())

    def _tokens(self) -> dict[str, Any]:
        jwt, refresh, feed = self.authority.issue_angel_tokens()
        return {"jwtToken": jwt, "refreshToken": refresh, "feedToken": feed}

    async def generate_tokens(self, request: Request) -> Response:
        self.check_key(request)
        body = await _body(request)
        if not self.authority.angel_refresh_valid(str(body.get("refreshToken", ""))):
            raise AngelError("Invalid Refresh Token", "AB8050")
        return _success(self._tokens())

    async def profile(self, request: Request) -> Response:
        self.authorize(request)
        return _success({**_PROFILE, "clientcode": self.authority.angel.client_code})

    async def candles(self, request: Request) -> Response:
        api_key = self.authorize(request)
        if not self.limiter.try_acquire(api_key):
            raise _RateLimited
        body = await _body(request)
        interval = str(body.get("interval", ""))
        if interval not in ANGEL_MAX_DAYS:
            raise AngelError("Invalid interval", "AB1004")
        seconds, max_days = ANGEL_MAX_DAYS[interval]
        key = (str(body.get("exchange", "")), str(body.get("symboltoken", "")))
        inst = self.by_token.get(key)
        if inst is None:
            raise AngelError("Invalid symboltoken", "AB1004")
        start = _parse_ist(body.get("fromdate"), "fromdate")
        end = _parse_ist(body.get("todate"), "todate")
        if end < start:
            raise AngelError("Invalid date range: fromdate is after todate", "AB1004")
        if end - start > max_days * 86_400 * 1_000_000_000:
            raise AngelError(f"Invalid date range: {interval} allows {max_days} days", "AB1004")
        ref = reference_price(inst, self.prices)
        got = await asyncio.to_thread(bars, inst, seconds, start, end, ref)
        return _success([angel_candle(b) for b in got])

    async def search_scrip(self, request: Request) -> Response:
        self.authorize(request)
        body = await _body(request)
        exchange = str(body.get("exchange", "")).upper()
        needle = str(body.get("searchscrip", "")).upper()
        found = [
            {"exchange": exchange, "tradingsymbol": angel_symbol(i), "symboltoken": i.angel_token}
            for i in self.universe
            if angel_exchange(i) == exchange and needle and needle in angel_symbol(i).upper()
        ]
        return _success(found)

    async def scrip_master(self, request: Request) -> Response:
        return Response(self.master, media_type="application/json")


_PROFILE: Final[dict[str, Any]] = {
    "name": "SIMULATED USER",
    "email": "",
    "mobileno": "",
    "exchanges": ["nse_fo", "nse_cm", "cde_fo", "ncx_fo", "bse_fo", "bse_cm", "mcx_fo"],
    "products": ["MARGIN", "MIS", "NRML", "CNC", "CO", "BO"],
    "lastlogintime": "",
    "broker": "",
}


async def _on_angel_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AngelError)
    if exc.errorcode.startswith("AG80"):
        body: dict[str, Any] = {"success": False, "message": exc.message}
        return _json({**body, "errorCode": exc.errorcode, "data": ""}, exc.http_status)
    envelope = {"status": False, "message": exc.message, "errorcode": exc.errorcode, "data": None}
    return _json(envelope, exc.http_status)


async def _on_rate_limited(request: Request, exc: Exception) -> Response:
    return PlainTextResponse(RATE_LIMIT_TEXT, status_code=403)


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    envelope = {"status": False, "message": str(exc.detail), "errorcode": "AB2000", "data": None}
    return _json(envelope, exc.status_code)


def create_angel_app(
    authority: TokenAuthority,
    universe: Sequence[Instrument],
    *,
    prices: Mapping[str, float] | None = None,
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], float] = time.time,
) -> Starlette:
    """The Angel REST app over ``universe``; ``wall_clock`` is the TOTP time source."""
    app = _AngelApp(authority, universe, prices or {}, clock, wall_clock)
    base = "/rest/secure/angelbroking"
    routes = [
        Route(_LOGIN, app.login, methods=["POST"]),
        Route(_TOKENS, app.generate_tokens, methods=["POST"]),
        Route(f"{base}/user/v1/getProfile", app.profile, methods=["GET"]),
        Route(f"{base}/historical/v1/getCandleData", app.candles, methods=["POST"]),
        Route(f"{base}/order/v1/searchScrip", app.search_scrip, methods=["POST"]),
        Route("/OpenAPI_File/files/OpenAPIScripMaster.json", app.scrip_master, methods=["GET"]),
    ]
    handlers = {
        AngelError: _on_angel_error,
        _RateLimited: _on_rate_limited,
        HTTPException: _on_http_error,
    }
    return Starlette(routes=routes, exception_handlers=handlers)


_LOGIN: Final = "/rest/auth/angelbroking/user/v1/loginByPassword"
_TOKENS: Final = "/rest/auth/angelbroking/jwt/v1/generateTokens"
