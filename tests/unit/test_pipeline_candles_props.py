"""Property tests (hypothesis) for candles and the engine: invariants that hold for any ticks."""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import pairwise

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tickstream.calendar import ist_ns, session_for_ts
from tickstream.model import Candle, Interval, Tick
from tickstream.pipeline.candles import CandleConfig
from tickstream.pipeline.engine import EngineConfig, EngineOutput, PipelineEngine

NS = 1_000_000_000
MS = 1_000_000
T0 = ist_ns(dt.date(2025, 3, 3), 10, 0)
INSTRUMENTS = (("NSE", 1), ("NSE", 2), ("NFO", 3))
CFG = EngineConfig(
    candles=CandleConfig(
        intervals=(Interval.S1, Interval.M1, Interval.M5), grace_ns=NS, allowed_lateness_ns=5 * NS
    )
)
PROPS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def tick_lists(draw: st.DrawFn, *, disorder: bool) -> list[Tick]:
    """Ticks of three instruments; ``disorder`` adds late ticks, duplicates and bad values."""
    n = draw(st.integers(1, 60))
    ts, volumes, out = T0, [1_000, 50, 7], []
    for _ in range(n):
        k = draw(st.integers(0, 2))
        ts += draw(st.integers(0, 20_000)) * MS
        volumes[k] += draw(st.integers(0, 40))
        stamp = ts
        if disorder and draw(st.integers(0, 4)) == 0:
            stamp -= draw(st.integers(0, 30_000)) * MS
        exchange, token = INSTRUMENTS[k]
        tick = Tick(
            exchange=exchange,
            token=token,
            symbol=f"S{token}",
            source="kite",
            ts_exchange=stamp,
            ts_recv=ts,
            ltp=draw(st.integers(1, 400)) / 20,
            volume=volumes[k],
            oi=draw(st.none() | st.integers(0, 10**6)),
        )
        out.append(tick)
        if disorder and draw(st.integers(0, 6)) == 0:
            out.append(tick)  # exact duplicate
    return out


Counters = dict[str, int | dict[str, int]]


def run(ticks: list[Tick], splits: list[int] | None = None) -> tuple[EngineOutput, Counters]:
    engine = PipelineEngine(CFG)
    total = EngineOutput()
    cuts = sorted({0, len(ticks), *(splits or [])})
    for a, b in pairwise(cuts):
        total.extend(engine.process(ticks[a:b], a))
    total.extend(engine.flush())
    return total, engine.counters.snapshot()


def final(out: EngineOutput) -> list[Candle]:
    """Closed candles with their latest revision applied, in close order."""
    latest = {(c.exchange, c.token, c.interval, c.start): c for c in out.candles}
    for r in out.revisions:
        latest[(r.exchange, r.token, r.interval, r.start)] = r
    return list(latest.values())


@contextmanager
def timezone(name: str) -> Iterator[None]:
    old = os.environ.get("TZ")
    os.environ["TZ"] = name
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old
        time.tzset()


@PROPS
@given(tick_lists(disorder=True))
def test_props_low_bounds_open_close_bounded_by_high(ticks: list[Tick]) -> None:
    out, _ = run(ticks)
    for c in out.candles + out.revisions:
        assert c.low <= c.open <= c.high
        assert c.low <= c.close <= c.high
        assert c.volume >= 0
        assert c.ticks >= 1


@PROPS
@given(tick_lists(disorder=False))
def test_props_candle_volumes_sum_to_cumulative_volume_change(ticks: list[Tick]) -> None:
    # Arrange
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for t in ticks:
        first.setdefault(t.token, t.volume or 0)
        last[t.token] = t.volume or 0
    # Act
    out, _ = run(ticks)
    # Assert: for every instrument and interval, the bars carry exactly the volume traded
    for token in first:
        for interval in CFG.candles.intervals:
            bars = [c for c in final(out) if c.token == token and c.interval is interval]
            assert sum(c.volume for c in bars) == last[token] - first[token]


@PROPS
@given(tick_lists(disorder=False))
def test_props_five_minute_candle_equals_aggregate_of_its_minutes(ticks: list[Tick]) -> None:
    out, _ = run(ticks)
    candles = final(out)
    for c5 in (c for c in candles if c.interval is Interval.M5):
        ones = sorted(
            (
                c
                for c in candles
                if c.interval is Interval.M1
                and c.token == c5.token
                and c5.start <= c.start < c5.start + Interval.M5.nanos
            ),
            key=lambda c: c.start,
        )
        assert ones, "a 5m candle must contain at least one 1m candle"
        assert c5.open == ones[0].open
        assert c5.close == ones[-1].close
        assert c5.high == max(c.high for c in ones)
        assert c5.low == min(c.low for c in ones)
        assert c5.volume == sum(c.volume for c in ones)
        assert c5.ticks == sum(c.ticks for c in ones)
        assert c5.oi == next((c.oi for c in reversed(ones) if c.oi is not None), None)


@PROPS
@given(tick_lists(disorder=True), st.lists(st.integers(0, 130), max_size=6))
def test_props_any_batch_split_gives_identical_engine_outputs(
    ticks: list[Tick], splits: list[int]
) -> None:
    # Arrange / Act
    whole, whole_counters = run(ticks)
    split, split_counters = run(ticks, [s for s in splits if s < len(ticks)])
    # Assert
    assert split == whole
    assert split_counters == whole_counters


@PROPS
@given(tick_lists(disorder=True))
def test_props_identical_under_utc_kolkata_new_york(ticks: list[Tick]) -> None:
    # Act
    results = []
    for tz in ("UTC", "Asia/Kolkata", "America/New_York"):
        with timezone(tz):
            results.append(run(ticks))
    # Assert: same outputs, and every bucket aligned to the IST session open
    assert results[0] == results[1] == results[2]
    for c in results[0][0].candles:
        session = session_for_ts(c.exchange, c.start)
        assert session is not None
        assert (c.start - session.open_ns) % c.interval.nanos == 0


@PROPS
@given(tick_lists(disorder=True), st.integers(0, 200), st.sampled_from(["nan", "xchg", "cross"]))
def test_props_quarantined_tick_changes_nothing_else(
    ticks: list[Tick], where: int, kind: str
) -> None:
    # Arrange: a copy of some tick made invalid, inserted anywhere
    pos = where % (len(ticks) + 1)
    src = ticks[where % len(ticks)]
    bad = {
        "nan": msgspec.structs.replace(src, ltp=float("nan"), volume=10**12),
        "xchg": msgspec.structs.replace(src, exchange="LSE"),
        "cross": msgspec.structs.replace(src, bid=200.0, ask=100.0, volume=10**12),
    }[kind]
    # Act
    clean, clean_counters = run(ticks)
    dirty, dirty_counters = run([*ticks[:pos], bad, *ticks[pos:]])
    # Assert: the bad tick is kept with its reason; everything else is identical
    assert [t for t, _ in dirty.quarantined if t is bad] == [bad]
    dirty.quarantined = [q for q in dirty.quarantined if q[0] is not bad]
    assert dirty == clean
    assert dirty_counters.pop("ticks_in") == len(ticks) + 1
    assert clean_counters.pop("ticks_in") == len(ticks)
    dirty_counters.pop("quarantined")
    clean_counters.pop("quarantined")
    assert dirty_counters == clean_counters
