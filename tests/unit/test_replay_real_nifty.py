"""Real data: the per-second NIFTY 50 days (/work/shared/data/ticks_nifty50_per_second, see
SOURCES.md) loaded into a DuckDB store, replayed at max speed through the pipeline into another
store; the stored 1m candles equal an independent pandas resample of the CSV (first, max, min,
last, count per minute, bins anchored at 09:15 over the 09:15-15:30 session).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from tickstream.calendar import ist_ns
from tickstream.model import Instrument, Interval, Tick
from tickstream.pipeline.candles import CandleConfig
from tickstream.pipeline.engine import EngineConfig
from tickstream.replay import Replay, ReplaySpec, day_range
from tickstream.replay.pipeline import replay_through_pipeline
from tickstream.storage.duckdb_store import DuckDBStore

DATA = Path("/work/shared/data/ticks_nifty50_per_second")
FILES = sorted(DATA.glob("NIFTY50_index_per_second_*.csv"))
NIFTY = Instrument(exchange="INDICES", token=256265, symbol="NIFTY 50")

pytestmark = pytest.mark.skipif(not FILES, reason="shared NIFTY data not present")


def load_ticks(path: Path) -> list[Tick]:
    """The CSV as recorded ticks of a live source (IST wall time -> epoch ns)."""
    out = []
    for line in path.read_text().splitlines():
        stamp, value = line.split(",")
        day = dt.date.fromisoformat(stamp[:10])
        h, m, s = (int(x) for x in stamp[11:].split(":"))
        ts = ist_ns(day, h, m, s)
        out.append(
            Tick(
                exchange=NIFTY.exchange,
                token=NIFTY.token,
                symbol=NIFTY.symbol,
                source="nse",
                ts_exchange=ts,
                ts_recv=ts,
                ltp=float(value),
            )
        )
    return out


def resampled(path: Path) -> list[tuple[int, float, float, float, float, int]]:
    df = pd.read_csv(path, header=None, names=["ts", "v"])
    idx = pd.DatetimeIndex(pd.to_datetime(df["ts"])).tz_localize("Asia/Kolkata")
    series = pd.Series(df["v"].to_numpy(), index=idx)
    day = idx[0].normalize()
    open_, close = day + pd.Timedelta("9h15min"), day + pd.Timedelta("15h30min")
    session = series[(series.index >= open_) & (series.index < close)]
    bars = session.resample("1min", origin=open_).agg(["first", "max", "min", "last", "count"])
    bars = bars[bars["count"] > 0]
    return [
        (int(ts.value), r["first"], r["max"], r["min"], r["last"], int(r["count"]))
        for ts, r in bars.iterrows()
    ]


@pytest.mark.slow
@pytest.mark.parametrize("path", FILES, ids=[p.stem[-10:] for p in FILES])
async def test_replay_real_nifty_day_1m_candles_equal_pandas_resample(
    path: Path, tmp_path: Path
) -> None:
    # Arrange
    day = dt.date.fromisoformat(path.stem[-10:])
    src, out = DuckDBStore(tmp_path / "live.duckdb"), DuckDBStore(tmp_path / "replay.duckdb")
    await src.open()
    await out.open()
    ticks = load_ticks(path)
    await src.write_ticks(ticks)
    rep = Replay(src, ReplaySpec((NIFTY,), *day_range(day), speed=None, page_size=5000))
    config = EngineConfig(candles=CandleConfig(intervals=(Interval.M1,)))
    # Act
    result = await replay_through_pipeline(rep, out, config)
    # Assert
    lo, hi = day_range(day)
    candles = await out.query_candles(NIFTY.exchange, NIFTY.token, Interval.M1, lo, hi)
    got = [(c.start, c.open, c.high, c.low, c.close, c.ticks) for c in candles]
    assert got == resampled(path)
    assert not any(c.partial or c.incomplete or c.revision for c in candles)
    assert result.summary.emitted == len(ticks) > 20_000
    assert result.tick_rows_inserted == len(ticks)
    await src.close()
    await out.close()
