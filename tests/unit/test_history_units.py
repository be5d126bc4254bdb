"""Pure pieces of history: chunking, the pacing limiter, candle parsing, the yfinance adapter."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickstream.calendar import DAY_NS, ist_ns
from tickstream.feeds.angelone.history import parse_angel_candles
from tickstream.feeds.fallback import frame_to_candles, yahoo_symbol
from tickstream.feeds.history import HistoryError, RateLimiter, chunk_range
from tickstream.feeds.kite.history import parse_kite_candles
from tickstream.model import Instrument, Interval

MOCKS = Path(__file__).resolve().parents[3] / "shared" / "data" / "kite" / "kiteconnect-mocks"
INFY = Instrument(exchange="NSE", token=1594, symbol="INFY", kite_token=408065)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10**18), st.integers(0, 400 * DAY_NS), st.integers(1, 120))
def test_history_chunks_cover_range_contiguously_within_limit(
    start: int, span: int, days: int
) -> None:
    chunks = chunk_range(start, start + span, days)

    assert [a for a, _ in chunks[:1]] == ([start] if span else [])
    assert all(b == a2 for (_, b), (a2, _) in itertools.pairwise(chunks))
    assert all(0 < b - a <= days * DAY_NS for a, b in chunks)
    assert (chunks[-1][1] if chunks else start) == start + span


def test_history_chunks_kite_minute_90_days_is_two_requests() -> None:
    start = ist_ns(dt.date(2025, 1, 1), 0)

    assert chunk_range(start, start + 90 * DAY_NS, 60) == [
        (start, start + 60 * DAY_NS), (start + 60 * DAY_NS, start + 90 * DAY_NS),
    ]  # fmt: skip


async def test_history_limiter_holds_three_per_second_and_180_per_minute() -> None:
    now = [0.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    limiter = RateLimiter(
        [(3, 1.0), (180, 60.0)], margin_secs=0.0, clock=lambda: now[0], sleep=sleep
    )
    times = []
    for _ in range(200):
        await limiter.acquire()
        times.append(now[0])

    assert times[:7] == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 2.0]
    assert all(times[i + 3] - times[i] >= 1.0 for i in range(len(times) - 3))
    assert all(times[i + 180] - times[i] >= 60.0 for i in range(len(times) - 180))
    assert times[180] == 60.0  # the 181st call waits for the minute window, not the second


def test_history_kite_mock_fixture_parsed_to_candles() -> None:
    body = json.loads((MOCKS / "historical_oi.json").read_text())

    candles = parse_kite_candles(body["data"]["candles"], INFY, Interval.M1)

    first = candles[0]
    assert first.start == ist_ns(dt.date(2019, 12, 4), 9, 15)
    assert (first.open, first.high, first.low, first.close) == (
        12009.9,
        12019.35,
        12001.25,
        12001.5,
    )
    assert (first.volume, first.oi) == (163275, 13667775)
    assert candles[1].start - first.start == 60 * 10**9


def test_history_angel_rows_parsed_with_ist_offset() -> None:
    rows = [["2023-09-01T09:15:00+05:30", 2456.75, 2460.0, 2450.05, 2455.5, 1200]]

    (candle,) = parse_angel_candles(rows, INFY, Interval.M1)

    assert candle.start == ist_ns(dt.date(2023, 9, 1), 9, 15)
    assert (candle.open, candle.close, candle.volume) == (2456.75, 2455.5, 1200)
    with pytest.raises(HistoryError, match="malformed candle"):
        parse_angel_candles([["not a time", 1, 2, 3, 4, 5]], INFY, Interval.M1)


@pytest.mark.parametrize(
    ("inst", "symbol"),
    [
        (Instrument(exchange="NSE", token=2885, symbol="RELIANCE"), "RELIANCE.NS"),
        (Instrument(exchange="NSE", token=2031, symbol="M&M"), "M&M.NS"),
        (Instrument(exchange="BSE", token=500325, symbol="RELIANCE"), "RELIANCE.BO"),
        (Instrument(exchange="INDICES", token=1001, symbol="NIFTY 50"), "^NSEI"),
        (Instrument(exchange="INDICES", token=1016, symbol="NIFTY BANK"), "^NSEBANK"),
    ],
)
def test_history_yahoo_symbol_mapping(inst: Instrument, symbol: str) -> None:
    assert yahoo_symbol(inst) == symbol


def test_history_yahoo_symbol_refuses_derivatives() -> None:
    with pytest.raises(HistoryError, match="no Yahoo symbol"):
        yahoo_symbol(Instrument(exchange="NFO", token=1, symbol="NIFTY25JANFUT"))


@pytest.mark.parametrize("tz", ["Asia/Kolkata", None])
def test_history_yfinance_frame_to_candles(tz: str | None) -> None:
    index = pd.DatetimeIndex(["2025-01-02 09:15", "2025-01-02 09:16", "2025-01-02 09:17"])
    index = index.tz_localize(tz) if tz else index  # a naive index is read as IST
    frame = pd.DataFrame(
        {
            "Open": [100.0, 101.0, float("nan")],
            "High": [102.0, 101.5, 1.0],
            "Low": [99.5, 100.0, 1.0],
            "Close": [101.0, 100.5, 1.0],
            "Volume": [1200, 800, 5],
        },
        index=index,
    )
    inst = Instrument(exchange="NSE", token=2885, symbol="RELIANCE")

    candles = frame_to_candles(frame, inst, Interval.M1)

    assert [c.start for c in candles] == [
        ist_ns(dt.date(2025, 1, 2), 9, 15), ist_ns(dt.date(2025, 1, 2), 9, 16),
    ]  # fmt: skip
    assert [(c.open, c.high, c.low, c.close, c.volume) for c in candles] == [
        (100.0, 102.0, 99.5, 101.0, 1200), (101.0, 101.5, 100.0, 100.5, 800),
    ]  # fmt: skip
    assert {(c.exchange, c.token, c.symbol, c.interval) for c in candles} == {
        ("NSE", 2885, "RELIANCE", Interval.M1)
    }


def test_history_limiter_is_shared_fairly_by_concurrent_callers() -> None:
    now = [0.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds
        await asyncio.sleep(0)

    async def main() -> list[float]:
        limiter = RateLimiter([(3, 1.0)], margin_secs=0.0, clock=lambda: now[0], sleep=sleep)
        out: list[float] = []

        async def call() -> None:
            await limiter.acquire()
            out.append(now[0])

        await asyncio.gather(*(call() for _ in range(9)))
        return out

    assert asyncio.run(main()) == [0.0] * 3 + [1.0] * 3 + [2.0] * 3
