"""Kite Connect historical candles: ``GET /instruments/historical/{token}/{interval}``.

Per-request range limits (days) by interval, as Kite documents them; 3 requests a second per
API key (paced by a :class:`~tickstream.feeds.history.RateLimiter`); HTTP 429 is
:class:`~tickstream.feeds.history.RateLimited`. Candles arrive as ``[ts, o, h, l, c, v(, oi)]``
with ``2017-12-15T09:15:00+0530`` timestamps.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

import httpx

from tickstream.calendar import IST, ist_datetime
from tickstream.feeds.base import AuthError
from tickstream.feeds.history import HistoryError, RateLimited, RateLimiter
from tickstream.feeds.kite.auth import KITE_API_ROOT, KiteAuth
from tickstream.model import NS_PER_SEC, Candle, Instrument, Interval

__all__ = ["KITE_INTERVALS", "KiteHistory", "parse_kite_candles"]

#: our interval -> (Kite's name, maximum days per request)
KITE_INTERVALS: Final[dict[Interval, tuple[str, int]]] = {
    Interval.M1: ("minute", 60),
    Interval.M5: ("5minute", 100),
    Interval.M15: ("15minute", 200),
    Interval.H1: ("60minute", 400),
    Interval.D1: ("day", 2000),
}


def _ns(text: str) -> int:
    parsed = dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S%z")
    if parsed.tzinfo is None:  # pragma: no cover - %z makes it aware
        parsed = parsed.replace(tzinfo=IST)
    return int(parsed.timestamp()) * NS_PER_SEC


def parse_kite_candles(rows: list[list[Any]], inst: Instrument, interval: Interval) -> list[Candle]:
    """Kite's candle arrays as Candles (HistoryError on a malformed row)."""
    out = []
    for row in rows:
        try:
            out.append(Candle(
                exchange=inst.exchange, token=inst.token, symbol=inst.symbol, interval=interval,
                start=_ns(row[0]), open=float(row[1]), high=float(row[2]), low=float(row[3]),
                close=float(row[4]), volume=int(row[5]),
                oi=int(row[6]) if len(row) > 6 else None,
            ))  # fmt: skip
        except (ValueError, TypeError, IndexError):
            raise HistoryError(f"kite: malformed candle {str(row)[:80]}") from None
    return out


def _stamp(ns: int) -> str:
    return ist_datetime(ns).astimezone(IST).strftime("%Y-%m-%d %H:%M:%S")


class KiteHistory:
    """A :class:`~tickstream.feeds.history.HistorySource` over Kite's historical API."""

    name = "kite"

    def __init__(
        self, auth: KiteAuth, *, root: str = KITE_API_ROOT, client: httpx.AsyncClient,
        limiter: RateLimiter | None = None,
    ) -> None:  # fmt: skip
        self.auth = auth
        self.root = root.rstrip("/")
        self.client = client
        self.limiter = limiter or RateLimiter([(3, 1.0)])

    def max_days(self, interval: Interval) -> int:
        return _spec(interval)[1]

    async def fetch(
        self, instrument: Instrument, interval: Interval, start_ns: int, end_ns: int
    ) -> list[Candle]:
        if instrument.kite_token is None:
            raise HistoryError(f"kite: {instrument.symbol} has no Kite instrument token")
        name, _ = _spec(interval)
        url = f"{self.root}/instruments/historical/{instrument.kite_token}/{name}"
        params = {"from": _stamp(start_ns), "to": _stamp(end_ns - NS_PER_SEC), "oi": "0"}
        await self.limiter.acquire()
        try:
            headers = self.auth.headers()
            response = await self.client.get(url, params=params, headers=headers)
        except (httpx.HTTPError, AuthError) as exc:
            raise HistoryError(f"kite: {type(exc).__name__}: {exc}") from None
        if response.status_code == 429:
            raise RateLimited("kite: 429 Too many requests")
        body = _json(response)
        if response.status_code != 200 or body.get("status") != "success":
            message = str(body.get("message", ""))[:200]
            raise HistoryError(
                f"kite: HTTP {response.status_code} {body.get('error_type')}: {message}"
            )
        candles = (body.get("data") or {}).get("candles")
        if not isinstance(candles, list):
            raise HistoryError("kite: response has no candles")
        return parse_kite_candles(candles, instrument, interval)


def _spec(interval: Interval) -> tuple[str, int]:
    try:
        return KITE_INTERVALS[interval]
    except KeyError:
        raise HistoryError(f"kite has no {interval.value} candles") from None


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise HistoryError(f"kite: HTTP {response.status_code}, not JSON") from None
    return body if isinstance(body, dict) else {}
