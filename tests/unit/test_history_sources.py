"""History: chunking, pacing, 429 / Angel's plain-text 403 retries, and the fallback source.

Broker sources run against the simulated Kite and Angel REST APIs (real HTTP on loopback); the
expected candles come straight from the simulator's deterministic history model.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tickstream.calendar import DAY_NS, ist_ns
from tickstream.feeds.angelone.auth import AngelAuth
from tickstream.feeds.angelone.history import AngelHistory
from tickstream.feeds.fallback import SimHistory
from tickstream.feeds.history import (
    HistoryError,
    HistoryService,
    RateLimited,
    RateLimiter,
    fetch_candles,
    reference_levels,
)
from tickstream.feeds.kite.auth import KiteAuth
from tickstream.feeds.kite.history import KiteHistory
from tickstream.model import Candle, Instrument, Interval
from tickstream.sim.history import bars, reference_price
from tickstream.sim.rest import SimRestServer
from tickstream.sim.rest_auth import LocalAuthority
from tickstream.sim.universe import load_universe, reference_prices

pytestmark = pytest.mark.timeout(120)

Rest = tuple[SimRestServer, LocalAuthority, httpx.AsyncClient]
Row = tuple[Any, ...]

UNIVERSE = load_universe()
PRICES = reference_prices()
RELIANCE = next(i for i in UNIVERSE if i.symbol == "RELIANCE")
NIFTY = next(i for i in UNIVERSE if i.symbol == "NIFTY 50")
START = ist_ns(dt.date(2025, 1, 1), 0)
END = ist_ns(dt.date(2025, 4, 1), 0)  # 90 days: two Kite minute chunks (60 days), three Angel


def expected(inst: Instrument, interval: Interval, start: int, end: int) -> list[Row]:
    ref = reference_price(inst, PRICES)
    got = bars(inst, interval.seconds, start, end - 1, ref)
    return [(b.start_ns, b.open, b.high, b.low, b.close, b.volume) for b in got]


def rows(candles: list[Candle]) -> list[Row]:
    return [(c.start, c.open, c.high, c.low, c.close, c.volume) for c in candles]


class Counting:
    """Wraps a source and counts its rate refusals and calls."""

    def __init__(self, source: KiteHistory | AngelHistory) -> None:
        self.source = source
        self.name = source.name
        self.calls = 0
        self.refused = 0

    def max_days(self, interval: Interval) -> int:
        return self.source.max_days(interval)

    async def fetch(self, inst: Instrument, interval: Interval, a: int, b: int) -> list[Candle]:
        self.calls += 1
        try:
            return await self.source.fetch(inst, interval, a, b)
        except RateLimited:
            self.refused += 1
            raise


@pytest.fixture
async def rest() -> AsyncIterator[Rest]:
    authority = LocalAuthority.generate()
    async with (
        SimRestServer(authority, UNIVERSE, prices=PRICES) as server,
        httpx.AsyncClient(timeout=30) as client,
    ):
        yield server, authority, client


async def test_history_kite_minute_range_chunked_paced_and_exact(rest: Rest) -> None:
    server, authority, client = rest
    auth = KiteAuth(authority.kite.api_key, access_token=authority.issue_kite_token())
    source = Counting(KiteHistory(auth, root=server.kite_root, client=client))

    got = await fetch_candles(source, RELIANCE, Interval.M1, START, END)

    assert rows(got) == expected(RELIANCE, Interval.M1, START, END)
    assert (source.calls, source.refused) == (2, 0)  # 90 days / 60 per request; never a 429


async def test_history_kite_429_retried_until_served(rest: Rest) -> None:
    server, authority, client = rest
    auth = KiteAuth(authority.kite.api_key, access_token=authority.issue_kite_token())
    unpaced = KiteHistory(
        auth, root=server.kite_root, client=client, limiter=RateLimiter([(99, 1.0)])
    )
    source = Counting(unpaced)
    start, end = START, START + 12 * DAY_NS

    got: list[Candle] = []
    for k in range(6):  # six back-to-back one-day requests: the 4th inside a second is refused
        got += await fetch_candles(
            source,
            RELIANCE,
            Interval.M5,
            start + k * 2 * DAY_NS,
            start + (k + 1) * 2 * DAY_NS,
            backoff_secs=0.3,
        )

    assert source.refused >= 1
    assert rows(got) == expected(RELIANCE, Interval.M5, start, end)


async def test_history_angel_plain_text_403_is_rate_limit_and_retried(rest: Rest) -> None:
    server, authority, client = rest
    a = authority.angel
    auth = AngelAuth(
        a.api_key, a.client_code, a.pin, a.totp_secret, root=server.angel_root, client=client
    )
    unpaced = AngelHistory(
        auth, root=server.angel_root, client=client, limiter=RateLimiter([(99, 1.0)])
    )
    source = Counting(unpaced)

    got = await fetch_candles(source, RELIANCE, Interval.M15, START, END, backoff_secs=0.3)
    more = await fetch_candles(source, NIFTY, Interval.M15, START, END, backoff_secs=0.3)
    again = await fetch_candles(source, RELIANCE, Interval.M1, START, END, backoff_secs=0.3)

    assert source.refused >= 1
    assert rows(got) == expected(RELIANCE, Interval.M15, START, END)
    assert rows(more) == expected(NIFTY, Interval.M15, START, END)
    assert rows(again) == expected(RELIANCE, Interval.M1, START, END)


async def test_history_angel_paced_source_never_refused(rest: Rest) -> None:
    server, authority, client = rest
    a = authority.angel
    auth = AngelAuth(
        a.api_key, a.client_code, a.pin, a.totp_secret, root=server.angel_root, client=client
    )
    source = Counting(AngelHistory(auth, root=server.angel_root, client=client))

    for _ in range(3):
        await fetch_candles(source, RELIANCE, Interval.M1, START, END)  # 3 chunks each

    assert (source.calls, source.refused) == (9, 0)


async def test_history_fallback_used_with_warning_when_primary_fails(
    rest: Rest,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, authority, client = rest
    auth = KiteAuth(authority.kite.api_key, access_token="expired-token")
    service = HistoryService(
        KiteHistory(auth, root=server.kite_root, client=client), SimHistory(PRICES)
    )

    with caplog.at_level(logging.WARNING, logger="tickstream.feeds.history"):
        got = await service.candles(RELIANCE, Interval.M5, START, START + 5 * DAY_NS)

    assert got is not None
    assert rows(got) == expected(RELIANCE, Interval.M5, START, START + 5 * DAY_NS)
    assert service.fell_back == ["RELIANCE"] and service.excluded == []
    assert "falling back to sim" in caplog.text and "TokenException" in caplog.text
    assert "expired-token" not in caplog.text


async def test_history_instrument_failing_both_sources_excluded_and_logged(
    rest: Rest,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, authority, client = rest
    auth = KiteAuth(authority.kite.api_key, access_token=authority.issue_kite_token())
    unknown = Instrument(exchange="NFO", token=1, symbol="NOPE", kite_token=None)
    service = HistoryService(
        KiteHistory(auth, root=server.kite_root, client=client), FailingSource()
    )

    with caplog.at_level(logging.ERROR, logger="tickstream.feeds.history"):
        got = await service.candles(unknown, Interval.M5, START, START + DAY_NS)
        fine = await service.candles(RELIANCE, Interval.M5, START, START + DAY_NS)

    assert got is None
    assert service.excluded == ["NOPE"]
    assert fine is not None and rows(fine) == expected(RELIANCE, Interval.M5, START, START + DAY_NS)
    assert "NOPE excluded" in caplog.text


class FailingSource:
    name = "down"

    def max_days(self, interval: Interval) -> int:
        return 10

    async def fetch(self, inst: Instrument, interval: Interval, a: int, b: int) -> list[Candle]:
        raise HistoryError("down: connection refused")


async def test_history_reference_levels_previous_close_high_and_adv20() -> None:
    today = ist_ns(dt.date(2025, 3, 3), 0)
    service = HistoryService(SimHistory(PRICES))

    levels = await reference_levels(service, [RELIANCE], today)

    days = expected(RELIANCE, Interval.D1, today - 50 * DAY_NS, today)
    last20 = days[-20:]
    got = levels[RELIANCE.key]
    assert (got.prev_close, got.prev_high) == (days[-1][4], days[-1][2])
    assert got.avg_daily_volume == sum(d[5] for d in last20) / 20
    assert got.days == 20
