"""PipelineEngine: the stages wired together, outputs, counters invariant, enrichment."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

from tickstream.calendar import ist_ns
from tickstream.model import Interval, Status, Tick
from tickstream.pipeline.candles import CandleConfig
from tickstream.pipeline.engine import (
    TOPIC_CANDLES,
    TOPIC_ENRICHED,
    TOPIC_TICKS,
    EngineConfig,
    EngineOutput,
    PipelineEngine,
)
from tickstream.pipeline.indicators import IndicatorSet
from tickstream.pipeline.sequence import GapEvent

DAY = dt.date(2025, 3, 3)
NS = 1_000_000_000
M1 = CandleConfig(intervals=(Interval.M1,), grace_ns=NS, allowed_lateness_ns=10 * NS)


def at(h: int, m: int, s: float = 0) -> int:
    return ist_ns(DAY, h, m) + round(s * NS)


def tick(ts: int, ltp: float, volume: int | None = None, **kw: Any) -> Tick:
    base: dict[str, Any] = {
        "exchange": "NSE",
        "token": 2885,
        "symbol": "RELIANCE",
        "source": "kite",
        "ts_exchange": ts,
        "ts_recv": ts,
        "ltp": ltp,
        "volume": volume,
    }
    base.update(kw)
    return Tick(**base)


def engine(**cfg: Any) -> PipelineEngine:
    return PipelineEngine(EngineConfig(candles=M1, **cfg))


def minute_ticks(minutes: int, token: int = 2885) -> list[Tick]:
    return [
        tick(at(10, m, s), 100.0 + m + s / 100, 1000 + m * 60 + s, token=token)
        for m in range(minutes)
        for s in (5, 30, 55)
    ]


def test_engine_topic_names() -> None:
    assert (TOPIC_TICKS, TOPIC_CANDLES, TOPIC_ENRICHED) == (
        "market:ticks",
        "market:candles",
        "market:candles:enriched",
    )


def test_engine_routes_good_bad_and_duplicate_ticks() -> None:
    # Arrange
    eng = engine()
    good = tick(at(10, 0, 1), 100.0, 10)
    bad = tick(at(10, 0, 2), float("nan"), 11)
    # Act
    out = eng.process([good, good, bad, tick(at(10, 0, 3), 101.0, 12, exchange="XX")], 0)
    # Assert
    assert out.ticks == [good]
    assert out.quarantined == [(bad, "non_finite"), (out.quarantined[1][0], "unknown_exchange")]
    snap = eng.counters.snapshot()
    assert (snap["ticks_in"], snap["accepted"], snap["deduplicated"]) == (4, 1, 1)
    assert snap["quarantined"] == {"non_finite": 1, "unknown_exchange": 1}
    assert eng.store.get_tick("NSE", 2885) == good


def test_engine_counter_invariant_holds_with_failover() -> None:
    # Arrange
    eng = engine(primary_source="kite")
    ticks = [
        tick(at(10, 0, 1), 100.0, 10),
        tick(at(10, 0, 1), 100.0, 10),  # duplicate
        tick(at(10, 0, 2), 100.0, 10, source="angelone"),  # primary live: dropped
        tick(at(10, 0, 3), -5.0, 12),  # quarantined
        tick(at(10, 0, 9), 101.0, 30, source="angelone"),  # primary silent 8 s: passes
    ]
    # Act
    out = eng.process(ticks, 0)
    # Assert
    c = eng.counters
    assert [t.source for t in out.ticks] == ["kite", "angelone"]
    assert (c.ticks_in, c.accepted, c.deduplicated, c.failover_dropped) == (5, 2, 1, 1)
    assert c.ticks_in == c.accepted + sum(c.quarantined.values()) + c.deduplicated + (
        c.failover_dropped
    )


def test_engine_closed_candles_are_enriched_like_a_direct_indicator_set() -> None:
    # Arrange
    eng = engine()
    # Act
    out = eng.process(minute_ticks(30), 0)
    out.extend(eng.flush())
    # Assert
    reference = IndicatorSet(exchange="NSE")
    expected = [msgspec.structs.replace(c, indicators=reference.update(c)) for c in out.candles]
    assert len(out.candles) == 30
    assert out.enriched == expected
    assert out.enriched[-1].indicators is not None
    assert out.enriched[-1].indicators.ema_21 is not None


def test_engine_revision_is_re_enriched_with_revise() -> None:
    # Arrange
    eng = engine()
    first = eng.process([*minute_ticks(11), tick(at(10, 11, 5), 111.0, 1665)], 0)
    # Act: a late tick for the last closed minute (10:10), inside the lateness window
    late = eng.process([tick(at(10, 10, 50), 150.0, 1640)], 0)
    # Assert
    reference = IndicatorSet(exchange="NSE")
    for c in first.candles:
        reference.update(c)
    (revised,) = late.revisions
    assert (revised.start, revised.revision, revised.high) == (at(10, 10), 1, 150.0)
    assert late.candles == []
    assert late.enriched == [msgspec.structs.replace(revised, indicators=reference.revise(revised))]


def test_engine_on_timer_closes_by_elapsed_monotonic_time() -> None:
    # Arrange: last tick 10:00:30, seen at monotonic 1000 s
    eng = engine()
    eng.process([tick(at(10, 0, 30), 100.0)], 1000 * NS)
    # Act
    early = eng.on_timer(1030 * NS)  # estimate 10:01:00: before end + grace
    late = eng.on_timer(1031 * NS)  # estimate 10:01:01
    # Assert
    assert early.candles == []
    assert [c.start for c in late.candles] == [at(10, 0)]


def test_engine_sequence_gap_reported_and_candle_incomplete() -> None:
    # Arrange
    eng = engine()
    ticks = [
        tick(at(10, 0, 1), 100.0, seq=1, source="angelone"),
        tick(at(10, 0, 2), 100.0, seq=2, source="angelone"),
        tick(at(10, 0, 40), 101.0, seq=9, source="angelone"),
        tick(at(10, 1, 20), 102.0, seq=10, source="angelone"),
    ]
    # Act
    out = eng.process(ticks, 0)
    out.extend(eng.flush())
    # Assert
    assert [t.status for t in out.ticks] == [Status.LIVE, Status.LIVE, Status.STALE, Status.LIVE]
    assert [(g.start_ns, g.end_ns, g.cause) for g in out.gaps] == [
        (at(10, 0, 2), at(10, 0, 40), "seq_gap")
    ]
    assert [(c.start, c.incomplete) for c in out.candles] == [
        (at(10, 0), True),
        (at(10, 1), False),
    ]


def test_engine_feed_gap_event_marks_stale_and_incomplete() -> None:
    # Arrange
    eng = engine()
    eng.process([tick(at(10, 0, 1), 100.0)], 0)
    event = GapEvent(
        source="kite", instruments=None, start_ns=at(10, 0, 10), end_ns=at(10, 0, 20), cause="ws"
    )
    # Act
    gap_out = eng.on_gap(event)
    out = eng.process([tick(at(10, 0, 15), 100.0), tick(at(10, 0, 25), 101.0)], 0)
    out.extend(eng.flush())
    # Assert
    assert gap_out.gaps == [event]
    assert [t.status for t in out.ticks] == [Status.STALE, Status.LIVE]
    assert [(c.incomplete, c.ticks) for c in out.candles] == [(True, 3)]
    assert eng.counters.gaps == 1


def test_engine_without_indicator_factory_emits_no_enriched() -> None:
    eng = PipelineEngine(EngineConfig(candles=M1), indicator_factory=None)
    out = eng.process(minute_ticks(3), 0)
    assert len(out.candles) == 2
    assert out.enriched == []


def test_engine_output_extend_concatenates_every_list() -> None:
    a = EngineOutput(ticks=[tick(at(10, 0), 1.0)], gaps=[])
    b = EngineOutput(ticks=[tick(at(10, 1), 2.0)], quarantined=[(tick(at(10, 2), 3.0), "x")])
    a.extend(b)
    assert [t.ltp for t in a.ticks] == [1.0, 2.0]
    assert [r for _, r in a.quarantined] == ["x"]


def test_engine_default_config_builds_1s_1m_5m_and_flush_closes_all() -> None:
    # Arrange
    eng = PipelineEngine()
    # Act
    out = eng.process([tick(at(10, 0, 1), 1.0, 10), tick(at(10, 0, 2), 2.0, 12)], 0)
    out.extend(eng.flush())
    # Assert
    assert [(c.interval, c.start, c.close) for c in out.candles] == [
        (Interval.S1, at(10, 0, 1), 1.0),
        (Interval.S1, at(10, 0, 2), 2.0),
        (Interval.M1, at(10, 0), 2.0),
        (Interval.M5, at(10, 0), 2.0),
    ]
    assert eng.counters.snapshot()["candles_emitted"] == {"1s": 2, "1m": 1, "5m": 1}
    assert len(out.enriched) == 4


def test_engine_counters_snapshot_has_every_counter() -> None:
    snap = PipelineEngine().counters.snapshot()
    assert set(snap) >= {
        "ticks_in",
        "accepted",
        "quarantined",
        "deduplicated",
        "failover_dropped",
        "gaps",
        "stale_ticks",
        "out_of_session",
        "late_revised",
        "late_dropped",
        "candles_emitted",
        "candles_revised",
        "candles_incomplete",
    }
    assert snap["quarantined"] == {} and snap["ticks_in"] == 0


def test_engine_indicator_intervals_limits_enrichment() -> None:
    eng = PipelineEngine(EngineConfig(indicator_intervals=frozenset({Interval.M1})))
    out = eng.process([tick(at(10, 0, 1), 1.0, 10), tick(at(10, 0, 2), 2.0, 12)], 0)
    out.extend(eng.flush())
    assert len(out.candles) == 4
    assert [(c.interval, c.close) for c in out.enriched] == [(Interval.M1, 2.0)]
