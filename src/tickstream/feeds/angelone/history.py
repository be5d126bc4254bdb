"""Angel One historical candles: ``POST .../historical/v1/getCandleData``.

Per-request range limits (days) by interval, as Angel documents them; 3 requests a second and
180 a minute per API key. Beyond them the gateway answers HTTP 403 with the *plain-text* body
"Access denied because of exceeding access rate" (no JSON): that, and any 429, is
:class:`~tickstream.feeds.history.RateLimited`. A 401 renews the session once and retries.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

import httpx

from tickstream.calendar import IST, ist_datetime
from tickstream.feeds.angelone.auth import ANGEL_API_ROOT, AngelAuth
from tickstream.feeds.base import AuthError
from tickstream.feeds.history import HistoryError, RateLimited, RateLimiter
from tickstream.model import NS_PER_SEC, Candle, Instrument, Interval

__all__ = ["ANGEL_INTERVALS", "AngelHistory", "parse_angel_candles"]

CANDLE_PATH: Final = "/rest/secure/angelbroking/historical/v1/getCandleData"
RATE_TEXT: Final = "exceeding access rate"
#: our interval -> (Angel's name, maximum days per request)
ANGEL_INTERVALS: Final[dict[Interval, tuple[str, int]]] = {
    Interval.M1: ("ONE_MINUTE", 30),
    Interval.M5: ("FIVE_MINUTE", 90),
    Interval.M15: ("FIFTEEN_MINUTE", 180),
    Interval.H1: ("ONE_HOUR", 365),
    Interval.D1: ("ONE_DAY", 2000),
}


def parse_angel_candles(rows: list[Any], inst: Instrument, interval: Interval) -> list[Candle]:
    """``[[ts, o, h, l, c, v], ...]`` with ``+05:30`` ISO timestamps, as Candles."""
    out = []
    for row in rows:
        try:
            parsed = dt.datetime.fromisoformat(row[0])
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=IST)
            start = int(parsed.timestamp()) * NS_PER_SEC
            out.append(Candle(
                exchange=inst.exchange, token=inst.token, symbol=inst.symbol, interval=interval,
                start=start, open=float(row[1]), high=float(row[2]), low=float(row[3]),
                close=float(row[4]), volume=int(row[5]),
            ))  # fmt: skip
        except (ValueError, TypeError, IndexError):
            raise HistoryError(f"angelone: malformed candle {str(row)[:80]}") from None
    return out


def _stamp(ns: int) -> str:
    return ist_datetime(ns).strftime("%Y-%m-%d %H:%M")


def angel_exchange(instrument: Instrument) -> str:
    if instrument.exchange == "INDICES":
        return "BSE" if instrument.symbol.startswith(("SENSEX", "BANKEX")) else "NSE"
    return instrument.exchange


class AngelHistory:
    """A :class:`~tickstream.feeds.history.HistorySource` over Angel's candle API."""

    name = "angelone"

    def __init__(
        self, auth: AngelAuth, *, root: str = ANGEL_API_ROOT, client: httpx.AsyncClient,
        limiter: RateLimiter | None = None,
    ) -> None:  # fmt: skip
        self.auth = auth
        self.root = root.rstrip("/")
        self.client = client
        self.limiter = limiter or RateLimiter([(3, 1.0), (180, 60.0)])

    def max_days(self, interval: Interval) -> int:
        return _spec(interval)[1]

    async def fetch(
        self, instrument: Instrument, interval: Interval, start_ns: int, end_ns: int
    ) -> list[Candle]:
        if instrument.angel_token is None:
            raise HistoryError(f"angelone: {instrument.symbol} has no Angel token")
        body = {
            "exchange": angel_exchange(instrument),
            "symboltoken": instrument.angel_token,
            "interval": _spec(interval)[0],
            "fromdate": _stamp(start_ns),
            "todate": _stamp(end_ns - 60 * NS_PER_SEC),
        }
        response = await self._post(body)
        if response.status_code == 401:
            await self._renew()
            response = await self._post(body)
        data = _payload(response)
        return parse_angel_candles(data, instrument, interval)

    async def _post(self, body: dict[str, str]) -> httpx.Response:
        await self.limiter.acquire()
        try:
            await self.auth.ensure_fresh()
            return await self.client.post(
                self.root + CANDLE_PATH, json=body, headers=self.auth.headers()
            )
        except (httpx.HTTPError, AuthError) as exc:
            raise HistoryError(f"angelone: {type(exc).__name__}: {exc}") from None

    async def _renew(self) -> None:
        try:
            await self.auth.reauthenticate()
        except AuthError as exc:
            raise HistoryError(f"angelone: session renewal failed: {exc}") from None


def _spec(interval: Interval) -> tuple[str, int]:
    try:
        return ANGEL_INTERVALS[interval]
    except KeyError:
        raise HistoryError(f"angelone has no {interval.value} candles") from None


def _payload(response: httpx.Response) -> list[Any]:
    if response.status_code == 429:
        raise RateLimited("angelone: HTTP 429")
    try:
        body = response.json()
    except ValueError:
        if RATE_TEXT in response.text:
            raise RateLimited(
                f"angelone: HTTP {response.status_code} access rate exceeded"
            ) from None
        raise HistoryError(f"angelone: HTTP {response.status_code}, not JSON") from None
    if not isinstance(body, dict) or body.get("status") is not True:
        get = body.get if isinstance(body, dict) else {}.get
        code = get("errorcode") or get("errorCode")
        raise HistoryError(
            f"angelone: HTTP {response.status_code} {code}: {str(get('message'))[:200]}"
        )
    data = body.get("data")
    return data if isinstance(data, list) else []
