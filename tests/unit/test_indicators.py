"""Streaming indicators against TA-Lib and against straightforward whole-array references.

EMA, RSI, ATR and Bollinger must equal TA-Lib (``talib``) to 1e-9 relative, with ``None`` exactly
where TA-Lib gives NaN. VWAP and Supertrend are checked against loop implementations written here
from the module docstring's definitions (Supertrend's ATR taken from ``talib.ATR``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import pytest
import talib
from hypothesis import given, settings
from hypothesis import strategies as st

from tickstream.calendar import DAY_NS, IST_OFFSET_NS, ist_date, ist_ns
from tickstream.model import Candle, Indicators, Interval
from tickstream.pipeline.indicators import (
    Bollinger,
    Ema,
    IndicatorSet,
    SessionVwap,
    Supertrend,
    WilderAtr,
    WilderRsi,
)

REL = 1e-9
MINUTE_NS = 60 * 1_000_000_000
FIRST_OPEN_NS = ist_ns(ist_date(1_680_000_000 * 1_000_000_000), 9, 15)


@dataclass
class Series:
    """A candle series as parallel arrays (float64 prices, int volumes, epoch-ns starts)."""

    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    start: list[int]

    def candles(self) -> list[Candle]:
        return [
            Candle(
                exchange="NSE",
                token=1,
                symbol="TEST",
                interval=Interval.M1,
                start=self.start[i],
                open=float(self.open[i]),
                high=float(self.high[i]),
                low=float(self.low[i]),
                close=float(self.close[i]),
                volume=int(self.volume[i]),
            )
            for i in range(len(self.close))
        ]


@st.composite
def series(draw: st.DrawFn, min_size: int = 1, max_size: int = 90) -> Series:
    """Valid OHLCV: positive, low <= open, close <= high; optionally on a 0.05 tick grid (ties,
    flat bars); volume sometimes 0; starts one minute apart with occasional new IST days."""
    n = draw(st.integers(min_size, max_size))
    price = draw(st.floats(1.0, 50_000.0))
    on_grid = draw(st.booleans())
    unit = st.floats(0.0, 1.0)
    rows = []
    for _ in range(n):
        o = price * (1 + draw(st.floats(-0.01, 0.01)))
        c = o * (1 + draw(st.floats(-0.03, 0.03)))
        h = max(o, c) * (1 + 0.01 * draw(unit))
        low = min(o, c) * (1 - 0.01 * draw(unit))
        if on_grid:
            o, c, h, low = (max(0.05, round(x * 20) / 20) for x in (o, c, h, low))
            h, low = max(h, o, c), min(low, o, c)
        rows.append((o, h, low, c, draw(st.sampled_from([0, 1, 7, 1000, 123_456]))))
        price = c
    day_breaks = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    starts, ts = [], FIRST_OPEN_NS
    for brk in day_breaks:
        starts.append(ts)
        ts += DAY_NS if brk else MINUTE_NS
    arr = np.array(rows, dtype=np.float64)
    return Series(arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3], arr[:, 4].astype(np.int64), starts)


def as_array(values: list[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def assert_matches(ours: list[float | None], ref: np.ndarray) -> None:
    got = as_array(ours)
    assert np.array_equal(np.isnan(got), np.isnan(ref)), (got, ref)
    ok = ~np.isnan(ref)
    np.testing.assert_allclose(got[ok], ref[ok], rtol=REL, atol=0.0)


def ref_vwap(s: Series) -> list[float | None]:
    """sum(typical * volume) / sum(volume) per IST date, by a plain loop over the whole series."""
    out: list[float | None] = []
    pv = vol = 0.0
    day = None
    for i in range(len(s.close)):
        today = ist_date(s.start[i])
        if today != day:
            day, pv, vol = today, 0.0, 0.0
        pv += (s.high[i] + s.low[i] + s.close[i]) / 3.0 * float(s.volume[i])
        vol += float(s.volume[i])
        out.append(pv / vol if vol > 0 else None)
    return out


def ref_supertrend(s: Series) -> tuple[list[float | None], list[int | None]]:
    """TradingView's ta.supertrend rules (direction +1 up) on talib.ATR(10), whole array."""
    atr = talib.ATR(s.high, s.low, s.close, timeperiod=10)
    line: list[float | None] = []
    trend: list[int | None] = []
    fu = fl = 0.0
    for i in range(len(s.close)):
        if math.isnan(atr[i]):
            line.append(None)
            trend.append(None)
            continue
        hl2 = (s.high[i] + s.low[i]) / 2.0
        bu, bl = hl2 + 3.0 * atr[i], hl2 - 3.0 * atr[i]
        if trend[-1] is None:
            fu, fl, d = bu, bl, -1
        else:
            pc = s.close[i - 1]
            fu = bu if (bu < fu or pc > fu) else fu
            fl = bl if (bl > fl or pc < fl) else fl
            d = trend[-1]
            if d == -1 and s.close[i] > fu:
                d = 1
            elif d == 1 and s.close[i] < fl:
                d = -1
        trend.append(d)
        line.append(fl if d == 1 else fu)
    return line, trend


def run_set(candles: list[Candle]) -> list[Indicators]:
    ind = IndicatorSet()
    return [ind.update(c) for c in candles]


def column(rows: list[Indicators], name: str) -> list[float | None]:
    return [getattr(r, name) for r in rows]


@settings(max_examples=60, deadline=None)
@given(series())
def test_indicator_set_random_series_equals_talib(s: Series) -> None:
    # Arrange
    upper, middle, lower = talib.BBANDS(s.close, 20, 2.0, 2.0, 0)
    # Act
    rows = run_set(s.candles())
    # Assert
    assert_matches(column(rows, "ema_9"), talib.EMA(s.close, 9))
    assert_matches(column(rows, "ema_21"), talib.EMA(s.close, 21))
    assert_matches(column(rows, "rsi_14"), talib.RSI(s.close, 14))
    assert_matches(column(rows, "atr_14"), talib.ATR(s.high, s.low, s.close, 14))
    assert_matches(column(rows, "bb_middle"), middle)
    assert_matches(column(rows, "bb_upper"), upper)
    assert_matches(column(rows, "bb_lower"), lower)


@settings(max_examples=60, deadline=None)
@given(series())
def test_indicator_set_random_series_equals_reference_vwap_and_supertrend(s: Series) -> None:
    # Arrange
    line, trend = ref_supertrend(s)
    # Act
    rows = run_set(s.candles())
    # Assert
    assert_matches(column(rows, "vwap"), as_array(ref_vwap(s)))
    assert_matches(column(rows, "supertrend"), as_array(line))
    assert [r.supertrend_direction for r in rows] == trend


@st.composite
def revision(draw: st.DrawFn) -> tuple[list[Candle], list[Candle], list[Candle]]:
    """(history ending in the original candle, revised versions of it, candles after it)."""
    base = draw(series(min_size=2, max_size=60)).candles()
    cut = draw(st.integers(1, len(base)))
    history, after = base[:cut], base[cut:]
    last = history[-1]
    revised = []
    for _ in range(draw(st.integers(1, 3))):
        close = last.close * (1 + draw(st.floats(-0.02, 0.02)))
        revised.append(
            Candle(
                exchange=last.exchange,
                token=last.token,
                symbol=last.symbol,
                interval=last.interval,
                start=last.start,
                open=last.open,
                high=max(last.high, close),
                low=min(last.low, close),
                close=close,
                volume=last.volume + draw(st.integers(0, 500)),
                revision=last.revision + 1,
            )
        )
    return history, revised, after


@settings(max_examples=80, deadline=None)
@given(revision())
def test_indicator_set_revise_equals_fresh_set_fed_revised_history(
    case: tuple[list[Candle], list[Candle], list[Candle]],
) -> None:
    # Arrange
    history, revised, after = case
    live, fresh = IndicatorSet(), IndicatorSet()
    for c in history:
        live.update(c)
    for c in [*history[:-1], revised[-1]]:
        expected = fresh.update(c)
    # Act
    for c in revised:
        got = live.revise(c)
    # Assert: the revision and everything after it are exactly what a fresh set computes
    assert got == expected
    assert [live.update(c) for c in after] == [fresh.update(c) for c in after]


def test_indicator_set_revise_before_update_raises() -> None:
    candle = Series(*(np.ones(1) for _ in range(4)), np.ones(1, np.int64), [0]).candles()[0]
    with pytest.raises(ValueError, match="last updated candle"):
        IndicatorSet().revise(candle)


def test_indicator_set_revise_other_start_raises() -> None:
    # Arrange
    one = np.ones(2)
    first, second = Series(one, one, one, one, np.ones(2, np.int64), [0, MINUTE_NS]).candles()
    ind = IndicatorSet()
    ind.update(first)
    ind.update(second)
    # Act / Assert
    with pytest.raises(ValueError, match="start=0"):
        ind.revise(first)


def test_indicator_set_unknown_exchange_raises() -> None:
    with pytest.raises(ValueError, match="unknown exchange"):
        IndicatorSet(exchange="NYSE")


@pytest.mark.parametrize(
    ("factory", "period"),
    [(Ema, 0), (WilderRsi, 1), (WilderAtr, 1), (Bollinger, 1), (Supertrend, 1)],
)
def test_indicator_bad_period_raises(factory: type, period: int) -> None:
    with pytest.raises(ValueError, match="period must be"):
        factory(period)


def test_ema_warmup_then_sma_seed_then_smoothing() -> None:
    ema = Ema(3)
    out = [ema.update(x) for x in (1.0, 2.0, 6.0, 7.0)]
    assert out == [None, None, 3.0, 5.0]  # seed (1+2+6)/3, then (7-3)*0.5+3


def test_rsi_flat_series_is_zero_like_talib() -> None:
    rsi = WilderRsi(14)
    out = [rsi.update(100.0) for _ in range(16)]
    assert out[:14] == [None] * 14
    assert out[14:] == [0.0, 0.0]
    assert talib.RSI(np.full(16, 100.0), 14)[14] == 0.0


def test_rsi_only_gains_is_hundred() -> None:
    rsi = WilderRsi(14)
    out = [rsi.update(float(x)) for x in range(1, 17)]
    assert out[14:] == [100.0, 100.0]


def test_atr_first_value_is_mean_of_first_true_ranges() -> None:
    atr = WilderAtr(2)
    # TRs: max(3-1, |2-3|, |2-1|)=2, then max(5-4, |2-5|, |2-4|)=3
    out = [atr.update(*bar) for bar in ((2.0, 2.0, 2.0), (3.0, 1.0, 2.0), (5.0, 4.0, 4.5))]
    assert out == [None, None, 2.5]


def test_bollinger_constant_window_has_zero_width() -> None:
    bb = Bollinger(3, 2.0)
    out = [bb.update(10.0) for _ in range(5)]
    assert out == [None, None, 10.0, 10.0, 10.0]
    assert (bb.upper, bb.lower) == (10.0, 10.0)


def test_bollinger_known_window_population_std() -> None:
    bb = Bollinger(4, 2.0)
    for x in (2.0, 4.0, 4.0, 4.0, 5.0):  # last window 4,4,4,5: mean 4.25, pop var 0.1875
        middle = bb.update(x)
    assert middle == pytest.approx(4.25, rel=REL)
    assert bb.upper == pytest.approx(4.25 + 2 * math.sqrt(0.1875), rel=REL)
    assert bb.lower == pytest.approx(4.25 - 2 * math.sqrt(0.1875), rel=REL)


def test_session_vwap_resets_on_new_ist_date() -> None:
    # Arrange: 23:59 IST and 00:00 IST of the next day are 1 minute apart but different sessions
    vwap = SessionVwap()
    late = ist_ns(ist_date(FIRST_OPEN_NS), 23, 59)
    # Act
    first = vwap.update(late, 12.0, 6.0, 9.0, 10)
    second = vwap.update(late + MINUTE_NS, 30.0, 30.0, 30.0, 5)
    # Assert
    assert (first, second) == (9.0, 30.0)
    assert (late + MINUTE_NS + IST_OFFSET_NS) % DAY_NS == 0


def test_session_vwap_zero_volume_is_none_until_volume_arrives() -> None:
    vwap = SessionVwap()
    assert vwap.update(FIRST_OPEN_NS, 10.0, 10.0, 10.0, 0) is None
    assert vwap.update(FIRST_OPEN_NS + MINUTE_NS, 21.0, 18.0, 18.0, 2) == 19.0


def test_supertrend_snapshot_restore_roundtrip_is_exact() -> None:
    # Arrange
    st_ = Supertrend(2, 3.0)
    bars = [(10.0, 9.0, 9.5), (11.0, 9.5, 10.5), (12.0, 10.0, 11.5), (20.0, 18.0, 19.0)]
    for bar in bars[:3]:
        st_.update(*bar)
    state = st_.snapshot()
    first = (st_.update(*bars[3]), st_.direction)
    # Act
    st_.restore(state)
    again = (st_.update(*bars[3]), st_.direction)
    # Assert
    assert again == first
    assert first[1] == 1  # close 19 breaks above the upper band: direction flips up


def test_bollinger_long_stream_large_offset_bands_within_few_ulps_of_exact() -> None:
    # Arrange: 700 closes near 1e6 moving by ~0.01 (sigma/price ~ 1e-8: sums of squares cancel)
    rng = np.random.default_rng(7)
    closes = [float(x) for x in 1_000_000.0 + np.cumsum(rng.normal(0.0, 0.01, 700))]
    bb = Bollinger(20, 2.0)
    worst_ulps = 0.0
    for i, x in enumerate(closes):
        # Act
        middle = bb.update(x)
        if middle is None:
            continue
        assert bb.upper is not None and bb.lower is not None
        # Assert: against exact rational arithmetic over the window
        window = [Fraction(v) for v in closes[i - 19 : i + 1]]
        mean = sum(window, Fraction(0)) / 20
        sigma = math.sqrt(sum((v - mean) ** 2 for v in window) / 20)
        for got, exact in ((bb.upper, mean + 2 * Fraction(sigma)), (middle, mean)):
            worst_ulps = max(worst_ulps, abs(got - float(exact)) / math.ulp(got))
    assert worst_ulps <= 4.0


def test_indicator_set_revise_every_candle_across_window_turns_equals_fresh() -> None:
    # Arrange: 450 candles (over two exact recomputations of the Bollinger window), each revised
    rng = np.random.default_rng(11)
    closes = 500.0 + np.cumsum(rng.normal(0.0, 0.5, 450))
    base = Series(
        closes,
        closes + 1,
        closes - 1,
        closes,
        np.full(450, 100),
        [FIRST_OPEN_NS + i * MINUTE_NS for i in range(450)],
    ).candles()
    revised = [
        Candle(**{**{f: getattr(c, f) for f in c.__struct_fields__}, "close": c.close + 0.25})
        for c in base
    ]
    live, fresh = IndicatorSet(), IndicatorSet()
    # Act
    got = []
    for original, late in zip(base, revised, strict=True):
        live.update(original)
        got.append(live.revise(late))
    # Assert
    assert got == [fresh.update(c) for c in revised]


def test_bollinger_flat_window_after_volatility_has_exactly_zero_width() -> None:
    # Arrange: volatile closes, then 20 equal ones (incremental updates would leave ~1e-18 noise)
    volatile = [1.0, 1.0234375, 0.9994506835937, 1.05, 0.93, 1.11, 0.97] * 5
    flat = 0.9760260581970215
    bb = Bollinger(20, 2.0)
    # Act
    for x in [*volatile, *[flat] * 20]:
        bb.update(x)
    # Assert
    assert (bb.lower, bb.value, bb.upper) == (flat, flat, flat)
    assert talib.BBANDS(np.array([*volatile, *[flat] * 20]), 20, 2.0, 2.0, 0)[0][-1] == flat
