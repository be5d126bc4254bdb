"""Streaming indicators on the real Kite 1-minute files (40 sessions each) against TA-Lib and
whole-array references (pandas for VWAP, a plain loop on talib.ATR for Supertrend)."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import talib

from tickstream.calendar import ist_ns
from tickstream.model import Candle, Indicators, Interval
from tickstream.pipeline.indicators import IndicatorSet

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "ohlcv_1min"
FILES = sorted(DATA.glob("*.csv"))
REL = 1e-9


def load(path: Path) -> pd.DataFrame:
    """The file as a frame with an int64 epoch-ns ``start`` column (parsed by pandas, not us)."""
    frame = pd.read_csv(path)
    frame.columns = [c.lower() for c in frame.columns]
    stamps = pd.to_datetime(frame["date"], format="ISO8601", utc=True)
    frame["start"] = stamps.dt.as_unit("ns").astype("int64")
    frame["ist_day"] = stamps.dt.tz_convert("Asia/Kolkata").dt.date
    return frame


def candles(frame: pd.DataFrame) -> list[Candle]:
    cols = zip(
        frame["start"],
        frame["open"],
        frame["high"],
        frame["low"],
        frame["close"],
        frame["volume"],
        strict=True,
    )
    return [
        Candle(
            exchange="NSE",
            token=1,
            symbol="X",
            interval=Interval.M1,
            start=int(ts),
            open=float(o),
            high=float(h),
            low=float(lo),
            close=float(c),
            volume=int(v),
        )
        for ts, o, h, lo, c, v in cols
    ]


@pytest.fixture(scope="module", params=FILES, ids=[f.name.split("_")[0] for f in FILES])
def real(request: pytest.FixtureRequest) -> Iterator[tuple[pd.DataFrame, list[Indicators]]]:
    frame = load(request.param)
    ind = IndicatorSet()
    yield frame, [ind.update(c) for c in candles(frame)]


def values(rows: list[Indicators], name: str) -> np.ndarray:
    return np.array([np.nan if getattr(r, name) is None else getattr(r, name) for r in rows])


def assert_matches(got: np.ndarray, ref: np.ndarray) -> None:
    assert np.array_equal(np.isnan(got), np.isnan(ref))
    ok = ~np.isnan(ref)
    np.testing.assert_allclose(got[ok], ref[ok], rtol=REL, atol=0.0)


def ref_vwap(frame: pd.DataFrame) -> np.ndarray:
    typical = (frame["high"] + frame["low"] + frame["close"]) / 3.0
    pv = (typical * frame["volume"]).groupby(frame["ist_day"]).cumsum()
    vol = frame["volume"].astype("float64").groupby(frame["ist_day"]).cumsum()
    return np.where(vol > 0, pv / vol.where(vol > 0, 1.0), np.nan)


def ref_supertrend(h: np.ndarray, lo: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """TradingView ta.supertrend rules, direction +1 up, over the whole array."""
    atr = talib.ATR(h, lo, c, timeperiod=10)
    line = np.full(len(c), np.nan)
    trend: list[int] = []
    fu = fl = 0.0
    for i in range(len(c)):
        if math.isnan(atr[i]):
            continue
        bu, bl = (h[i] + lo[i]) / 2.0 + 3.0 * atr[i], (h[i] + lo[i]) / 2.0 - 3.0 * atr[i]
        if not trend:
            fu, fl, d = bu, bl, -1
        else:
            fu = bu if (bu < fu or c[i - 1] > fu) else fu
            fl = bl if (bl > fl or c[i - 1] < fl) else fl
            d = trend[-1]
            d = 1 if d == -1 and c[i] > fu else -1 if d == 1 and c[i] < fl else d
        trend.append(d)
        line[i] = fl if d == 1 else fu
    return line, trend


def test_real_file_ema_rsi_atr_bollinger_equal_talib(
    real: tuple[pd.DataFrame, list[Indicators]],
) -> None:
    frame, rows = real
    h, lo, c = (frame[k].to_numpy(np.float64) for k in ("high", "low", "close"))
    upper, middle, lower = talib.BBANDS(c, 20, 2.0, 2.0, 0)
    assert_matches(values(rows, "ema_9"), talib.EMA(c, 9))
    assert_matches(values(rows, "ema_21"), talib.EMA(c, 21))
    assert_matches(values(rows, "rsi_14"), talib.RSI(c, 14))
    assert_matches(values(rows, "atr_14"), talib.ATR(h, lo, c, 14))
    assert_matches(values(rows, "bb_upper"), upper)
    assert_matches(values(rows, "bb_middle"), middle)
    assert_matches(values(rows, "bb_lower"), lower)


def test_real_file_vwap_and_supertrend_equal_reference(
    real: tuple[pd.DataFrame, list[Indicators]],
) -> None:
    frame, rows = real
    h, lo, c = (frame[k].to_numpy(np.float64) for k in ("high", "low", "close"))
    line, trend = ref_supertrend(h, lo, c)
    assert_matches(values(rows, "vwap"), ref_vwap(frame))
    assert_matches(values(rows, "supertrend"), line)
    assert [r.supertrend_direction for r in rows[10:]] == trend
    assert {r.supertrend_direction for r in rows[:10]} == {None}


def test_real_file_vwap_resets_at_each_of_40_sessions(
    real: tuple[pd.DataFrame, list[Indicators]],
) -> None:
    # Arrange: the first bar of each IST day
    frame, rows = real
    firsts = np.flatnonzero(frame["ist_day"].ne(frame["ist_day"].shift()).to_numpy())
    typical = ((frame["high"] + frame["low"] + frame["close"]) / 3.0).to_numpy()
    # Act
    first_vwaps = [rows[i].vwap for i in firsts]
    # Assert: a fresh session's VWAP is that bar's typical price (or None with no volume)
    assert len(firsts) == 40
    if frame["volume"].sum() == 0:  # indices: no volume, never a VWAP
        assert {r.vwap for r in rows} == {None}
    else:
        assert first_vwaps == pytest.approx([typical[i] for i in firsts], rel=1e-12)


def test_real_file_first_candle_is_0915_ist() -> None:
    frame = load(FILES[0])
    assert frame["start"].iloc[0] == ist_ns(pd.Timestamp("2023-04-03").date(), 9, 15)


@pytest.mark.parametrize("tz", ["UTC", "Asia/Kolkata", "America/New_York"])
def test_real_file_results_do_not_depend_on_local_tz(
    tz: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange: the same file under a different process TZ, parsed by the CLI's own ts parser
    from tickstream.commands.indicators import parse_ts

    path = DATA / "SBIN_1min_2023-04-03_2023-06-01.csv"
    frame = load(path)
    first = IndicatorSet()
    baseline = [first.update(c) for c in candles(frame)][-400:]
    monkeypatch.setenv("TZ", tz)
    time.tzset()
    try:
        # Act
        starts = [parse_ts(s) for s in pd.read_csv(path)["Date"]]
        frame["start"] = starts
        ind = IndicatorSet()
        rows = [ind.update(c) for c in candles(frame)][-400:]
    finally:
        monkeypatch.undo()
        time.tzset()
    # Assert
    assert starts == load(path)["start"].tolist()
    assert rows == baseline
