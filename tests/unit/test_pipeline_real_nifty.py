"""Real data: 1m candles from the per-second NIFTY 50 series vs an independent pandas resample.

The files (/work/shared/data/ticks_nifty50_per_second, see SOURCES.md) hold one index value per
second, IST wall time, including the 09:00-09:08 pre-open and values after 15:30. They go through
the whole engine as INDICES ticks without volume; pandas resamples the same rows (first, max, min,
last, count per minute, bins anchored at 09:15) over the continuous session 09:15-15:30.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from tickstream.calendar import IST_OFFSET_NS, ist_ns
from tickstream.model import Interval, Tick
from tickstream.pipeline.candles import CandleConfig
from tickstream.pipeline.engine import EngineConfig, PipelineEngine

DATA = Path("/work/shared/data/ticks_nifty50_per_second")
FILES = sorted(DATA.glob("NIFTY50_index_per_second_*.csv"))
NS = 1_000_000_000

pytestmark = pytest.mark.skipif(not FILES, reason="shared NIFTY data not present")


def to_ticks(path: Path) -> list[Tick]:
    ticks = []
    for line in path.read_text().splitlines():
        stamp, value = line.split(",")
        day = dt.date.fromisoformat(stamp[:10])
        h, m, s = (int(x) for x in stamp[11:].split(":"))
        ts = ist_ns(day, h, m, s)
        ticks.append(
            Tick(
                exchange="INDICES",
                token=256265,
                symbol="NIFTY 50",
                source="replay",
                ts_exchange=ts,
                ts_recv=ts,
                ltp=float(value),
            )
        )
    return ticks


def pandas_minutes(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path, header=None, names=["ts", "v"])
    idx = pd.DatetimeIndex(pd.to_datetime(df["ts"])).tz_localize("Asia/Kolkata")
    series = pd.Series(df["v"].to_numpy(), index=idx)
    day = idx[0].normalize()
    open_, close = day + pd.Timedelta("9h15min"), day + pd.Timedelta("15h30min")
    session = series[(series.index >= open_) & (series.index < close)]
    bars = session.resample("1min", origin=open_).agg(["first", "max", "min", "last", "count"])
    return bars[bars["count"] > 0]


@pytest.mark.slow
@pytest.mark.parametrize("path", FILES, ids=[p.stem[-10:] for p in FILES])
def test_real_nifty_1m_candles_equal_pandas_resample(path: Path) -> None:
    # Arrange
    ticks = to_ticks(path)
    expected = pandas_minutes(path)
    engine = PipelineEngine(
        EngineConfig(candles=CandleConfig(intervals=(Interval.M1,))), indicator_factory=None
    )
    # Act
    out = engine.process(ticks, 0)
    out.extend(engine.flush())
    # Assert
    got = [
        (c.start, c.open, c.high, c.low, c.close, c.ticks, c.partial, c.incomplete)
        for c in out.candles
    ]
    want = [
        (
            int(ts.value),
            row["first"],
            row["max"],
            row["min"],
            row["last"],
            int(row["count"]),
            False,
            False,
        )
        for ts, row in expected.iterrows()
    ]
    assert got == want
    assert out.revisions == []
    day = dt.date.fromisoformat(path.stem[-10:])
    assert out.candles[0].start == ist_ns(day, 9, 15)
    assert (out.candles[-1].start + IST_OFFSET_NS) // NS % 86_400 == 15 * 3600 + 29 * 60
    outside = sum(1 for t in ticks if not ist_ns(day, 9, 15) <= t.ts_exchange < ist_ns(day, 15, 30))
    assert engine.counters.out_of_session == outside > 800
