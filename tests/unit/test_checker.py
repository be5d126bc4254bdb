"""The end-to-end checker: emitted vs stored ticks, candles vs a resample of stored ticks."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

from tickstream.calendar import ist_ns
from tickstream.checker import (
    EmittedTick,
    check,
    check_candles,
    check_ticks,
    emitted_ticks,
    tick_identity,
    wire_view,
)
from tickstream.commands.check import parse_time
from tickstream.model import Candle, Interval, Mode, Tick
from tickstream.pipeline.engine import EngineConfig, PipelineEngine
from tickstream.sim.market import Market
from tickstream.sim.server import Emission
from tickstream.sim.universe import load_universe, reference_prices

START_NS = ist_ns(dt.date(2026, 11, 20), 10)
INTERVALS = (Interval.S1, Interval.M1)


def _market_ticks(steps: int = 40, instruments: int = 4, seed: int = 1) -> list[Tick]:
    universe = [i for i in load_universe(None) if i.exchange == "NSE"][:instruments]
    market = Market(universe, seed=seed, start_ns=START_NS, reference_prices=reference_prices(None))
    out: list[Tick] = []
    for k in range(1, steps + 1):
        out.extend(market.step(START_NS + k * 100_000_000))
    return out


def _emissions(ticks: list[Tick], conn_id: str = "kite-1") -> list[Emission]:
    return [Emission(conn_id, n, "full", t) for n, t in enumerate(ticks, start=1)]


def _received(emitted: list[EmittedTick]) -> list[Tick]:
    """What our client stores: the decoded tick with our receive time, source and symbol."""
    return [
        msgspec.structs.replace(e.tick, ts_recv=e.tick.ts_exchange + e.n, symbol="X", source="kite")
        for e in emitted
    ]


def test_check_ticks_everything_stored_once_is_ok() -> None:
    # Arrange
    emitted = emitted_ticks(_emissions(_market_ticks()))
    stored = _received(emitted)
    # Act
    report = check_ticks(emitted, stored)
    # Assert
    assert (report.missing, report.duplicated, report.altered, report.unexpected) == (0, 0, 0, 0)
    assert report.emitted == len(emitted) == report.stored
    assert report.ok


def test_check_ticks_tick_lost_mid_stream_is_missing_with_sample() -> None:
    # Arrange
    emitted = emitted_ticks(_emissions(_market_ticks()))
    stored = _received(emitted)
    lost = stored.pop(10)
    # Act
    report = check_ticks(emitted, stored, lossy_connections={"kite-1"})
    # Assert: a later tick of the same connection arrived, so the transport delivered this one
    assert report.missing == 1
    assert report.undelivered == 0
    assert report.samples[0].kind == "missing"
    assert (report.samples[0].exchange, report.samples[0].token) == (lost.exchange, lost.token)
    assert not report.ok


def test_check_ticks_same_tick_stored_twice_is_duplicated() -> None:
    # Arrange
    emitted = emitted_ticks(_emissions(_market_ticks()))
    stored = _received(emitted)
    stored.append(msgspec.structs.replace(stored[5], ts_recv=stored[5].ts_recv + 7))
    # Act
    report = check_ticks(emitted, stored)
    # Assert
    assert report.duplicated == 1
    assert report.missing == 0
    assert any(s.kind == "duplicated" and s.detail == "2 rows" for s in report.samples)


def test_check_ticks_tail_of_cut_connection_is_undelivered_not_missing() -> None:
    # Arrange
    emitted = emitted_ticks(_emissions(_market_ticks()))
    stored = _received(emitted)[:-3]
    # Act
    lossy = check_ticks(emitted, stored, lossy_connections={"kite-1"})
    strict = check_ticks(emitted, stored)
    # Assert
    assert (lossy.undelivered, lossy.missing) == (3, 0)
    assert (strict.undelivered, strict.missing) == (0, 3)


def test_check_ticks_changed_price_is_altered_not_missing() -> None:
    # Arrange
    emitted = emitted_ticks(_emissions(_market_ticks()))
    stored = _received(emitted)
    stored[4] = msgspec.structs.replace(stored[4], ltp=(stored[4].ltp or 0) + 0.05)
    # Act
    report = check_ticks(emitted, stored)
    # Assert
    assert (report.altered, report.missing, report.unexpected) == (1, 0, 0)


def test_check_ticks_quarantined_tick_is_accounted_not_missing() -> None:
    # Arrange
    emitted = emitted_ticks(_emissions(_market_ticks()))
    stored = _received(emitted)
    bad = stored.pop(3)
    # Act
    report = check_ticks(emitted, stored, quarantined=[bad])
    # Assert
    assert (report.quarantined, report.missing) == (1, 0)


def test_check_ticks_deliberate_duplicate_emission_stored_once_is_ok() -> None:
    # Arrange: the simulator sent every tick twice, on two connections
    ticks = _market_ticks()
    emissions = _emissions(ticks, "kite-1") + [
        Emission("kite-2", n + 10_000, "full", t) for n, t in enumerate(ticks)
    ]
    emitted = emitted_ticks(emissions)
    stored = _received([e for e in emitted if e.conn_id == "kite-1"])
    # Act
    report = check_ticks(emitted, stored)
    # Assert
    assert report.emitted == 2 * report.emitted_distinct
    assert (report.missing, report.duplicated) == (0, 0)


def test_tick_identity_ignores_receive_time_source_and_symbol() -> None:
    # Arrange
    tick = wire_view(_market_ticks(steps=3)[-1], "full")
    ours = msgspec.structs.replace(tick, ts_recv=123, source="kite", symbol="RELIANCE")
    # Act / Assert
    assert tick_identity(ours) == tick_identity(tick)
    assert tick_identity(msgspec.structs.replace(ours, volume=(ours.volume or 0) + 1)) != (
        tick_identity(tick)
    )


def test_wire_view_full_mode_truncates_exchange_time_to_seconds() -> None:
    # Arrange
    tick = _market_ticks(steps=3)[-1]
    # Act
    seen = wire_view(tick, "full")
    # Assert
    assert seen.ts_exchange == tick.ts_exchange // 1_000_000_000 * 1_000_000_000
    assert seen.ltp == tick.ltp
    assert seen.mode is Mode.FULL


def _engine_candles(stored: list[Tick]) -> tuple[list[Tick], list[Candle]]:
    from tickstream.pipeline.candles import CandleConfig

    engine = PipelineEngine(EngineConfig(candles=CandleConfig(intervals=INTERVALS)))
    out = engine.process(stored, 0)
    out.extend(engine.flush())
    return out.ticks, [*out.candles, *out.revisions]


def test_check_candles_engine_candles_match_resample_of_stored_ticks() -> None:
    # Arrange
    emitted = emitted_ticks(_emissions(_market_ticks(steps=80)))
    accepted, candles = _engine_candles(_received(emitted))
    # Act
    report = check_candles(accepted, candles, INTERVALS)
    # Assert
    assert report.compared == len(candles) > 0
    assert (report.missing, report.extra, report.differing) == (0, 0, 0)


def test_check_candles_changed_high_and_missing_candle_are_reported() -> None:
    # Arrange
    emitted = emitted_ticks(_emissions(_market_ticks(steps=80)))
    accepted, candles = _engine_candles(_received(emitted))
    first = candles[0]
    changed = msgspec.structs.replace(first, high=first.high + 1)
    # Act
    report = check_candles(accepted, [changed, *candles[2:]], INTERVALS)
    # Assert
    assert (report.differing, report.missing, report.extra) == (1, 1, 0)
    assert report.samples[0].kind in {"candle_differs", "candle_missing"}


def test_check_candles_bucket_still_open_is_not_missing_before_until() -> None:
    # Arrange
    emitted = emitted_ticks(_emissions(_market_ticks(steps=80)))
    accepted, candles = _engine_candles(_received(emitted))
    last_start = max(c.start for c in candles)
    kept = [c for c in candles if c.start != last_start]
    # Act
    report = check_candles(accepted, kept, INTERVALS, until_ns=last_start)
    # Assert
    assert report.missing == 0


def test_check_report_ok_and_dict_carry_both_verdicts() -> None:
    # Arrange
    emitted = emitted_ticks(_emissions(_market_ticks(steps=20)))
    accepted, candles = _engine_candles(_received(emitted))
    # Act
    report = check(emitted, accepted, candles, intervals=INTERVALS)
    doc = report.to_dict()
    # Assert
    assert report.ok
    assert doc["ok"] is True
    assert doc["ticks"]["missing"] == 0
    assert doc["candles"]["differing"] == 0


@settings(max_examples=25, deadline=None)
@given(st.sets(st.integers(min_value=0, max_value=58), max_size=10))
def test_check_ticks_any_dropped_subset_before_last_is_counted_exactly(drop: set[int]) -> None:
    # Arrange
    emitted = emitted_ticks(_emissions(_market_ticks(steps=30, instruments=2)))
    received = _received(emitted)
    keep_last = len(received) - 1
    stored = [t for i, t in enumerate(received) if i not in drop or i == keep_last]
    dropped = {tick_identity(received[i]) for i in drop if i < keep_last}
    # Act
    report = check_ticks(emitted, stored, lossy_connections={"kite-1"})
    # Assert
    assert report.missing == len(dropped - {tick_identity(t) for t in stored})
    assert report.undelivered == 0


# ---------------------------------------------------------------------------- tickstream check


def _write_case(tmp_path: Path, drop: int | None) -> Path:
    """An emission log and a DuckDB store holding what our client stored (minus ``drop``)."""
    from tickstream.storage.duckdb_store import DuckDBStore

    emissions = _emissions(_market_ticks(steps=60))
    log = tmp_path / "emissions.jsonl"
    log.write_bytes(b"".join(msgspec.json.encode(e) + b"\n" for e in emissions))
    accepted, candles = _engine_candles(_received(emitted_ticks(emissions)))
    stored = [t for i, t in enumerate(accepted) if i != drop]

    async def write() -> None:
        store = DuckDBStore(tmp_path / "tickstream.duckdb")
        await store.open()
        await store.write_ticks(stored)
        await store.write_candles(candles)
        await store.close()

    asyncio.run(write())
    return log


def _invoke(tmp_path: Path, log: Path, monkeypatch: pytest.MonkeyPatch) -> Result:
    from tickstream.cli import app

    for name in ("DATABASE_URL", "TICKSTREAM_DATABASE_URL", "TICKSTREAM_CANDLE_INTERVALS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TICKSTREAM_CANDLE_INTERVALS", "1s,1m")
    args = ["check", "--since", "2026-11-20T09:15:00", "--emission-log", str(log)]
    return CliRunner().invoke(app, [*args, "--data-dir", str(tmp_path), "--strict"])


def test_check_cli_complete_store_exits_zero(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange
    log = _write_case(tmp_path, drop=None)
    # Act
    result = _invoke(tmp_path, log, monkeypatch)
    # Assert
    assert result.exit_code == 0, result.output
    assert "missing 0, duplicated 0, altered 0" in result.output
    assert result.output.rstrip().endswith("OK")


def test_check_cli_lost_tick_exits_one_and_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange
    log = _write_case(tmp_path, drop=7)
    # Act
    result = _invoke(tmp_path, log, monkeypatch)
    # Assert
    assert result.exit_code == 1, result.output
    assert "missing 1," in result.output
    assert "  missing: NSE:" in result.output
    assert "DEFECTS FOUND" in result.output


def test_check_parse_time_naive_is_ist_and_offsets_are_kept() -> None:
    # Arrange / Act / Assert
    assert parse_time("2026-11-20T10:00:00") == START_NS
    assert parse_time("2026-11-20T04:30:00+00:00") == START_NS
    assert parse_time(str(START_NS)) == START_NS
    with pytest.raises(ValueError, match="not a time"):
        parse_time("yesterday")


def test_emitted_ticks_packet_that_cannot_round_trip_raises_with_reason() -> None:
    # Arrange: an emission the wire cannot carry (a negative price is rejected on decode)
    ticks = _market_ticks(steps=5)
    bad = msgspec.structs.replace(ticks[-1], ltp=-(ticks[-1].ltp or 1.0))
    # Act / Assert
    with pytest.raises(ValueError, match="out_of_range"):
        emitted_ticks(_emissions([*ticks[:-1], bad]))
