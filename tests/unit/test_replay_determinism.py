"""Determinism: a session recorded by ``tickstream run``'s composition root (simulator → real
WebSocket feed client → pipeline → bus → DuckDB sinks, HTTP server included), replayed at max
speed through a fresh pipeline, gives the same closed candles and the same indicator values; a
second replay adds no rows.

Both runs end with the engine's flush, so the last buckets are closed the same way in both. The
enriched candles (with indicators) are compared as published on the bus and as stored.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path

import pytest

from tickstream.assembly import Assembly, build_assembly, engine_config
from tickstream.bus.base import Overflow, Subscription
from tickstream.bus.memory import MemoryBus
from tickstream.config import Settings, load_settings
from tickstream.model import Candle, Instrument, Interval
from tickstream.pipeline.engine import TOPIC_ENRICHED
from tickstream.replay import Replay, ReplaySpec
from tickstream.replay.pipeline import replay_through_pipeline
from tickstream.storage.duckdb_store import DuckDBStore

SYMBOLS = "RELIANCE,INFY,TCS,NIFTY 50"
RUN_SECS = 11.0

Key = tuple[str, int, str]


async def drain(sub: Subscription) -> dict[Key, list[Candle]]:
    """Enriched candles per (exchange, token, interval), in publication order."""
    out: dict[Key, list[Candle]] = defaultdict(list)
    while batch := await sub.get_batch(10_000, timeout=0.05):
        for msg in batch:
            c: Candle = msg.value
            out[(c.exchange, c.token, c.interval.value)].append(c)
    return dict(out)


async def record(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Assembly, Subscription]:
    for name, value in {
        "TICKSTREAM_DATA_DIR": str(data_dir),
        "TICKSTREAM_PORT": "0",
        "TICKSTREAM_SYMBOLS": SYMBOLS,
        "TICKSTREAM_SIM_TICK_INTERVAL_MS": "50",
    }.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(None)
    asm = await build_assembly(settings)
    sub = await asm.bus.subscribe(TOPIC_ENRICHED, maxsize=1_000_000, overflow=Overflow.DROP_OLDEST)
    assert await asm.runtime.run(asyncio.sleep(RUN_SECS))
    return asm, sub


async def replay_once(
    live: DuckDBStore, out: DuckDBStore, instruments: list[Instrument], settings: Settings
) -> tuple[dict[Key, list[Candle]], int]:
    bus = MemoryBus()
    await bus.start()
    sub = await bus.subscribe(TOPIC_ENRICHED, maxsize=1_000_000, overflow=Overflow.DROP_OLDEST)
    insts = tuple(sorted(instruments, key=lambda i: (i.exchange, i.token)))
    rep = Replay(live, ReplaySpec(insts, 0, 2**62, speed=None))
    result = await replay_through_pipeline(rep, out, engine_config(settings), bus=bus)
    enriched = await drain(sub)
    await bus.close()
    return enriched, result.tick_rows_inserted


@pytest.mark.slow
async def test_replay_of_recorded_run_gives_identical_candles_and_indicators(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange: record a simulated session
    asm, live_sub = await record(tmp_path, monkeypatch)
    live_enriched = await drain(live_sub)
    live = DuckDBStore(tmp_path / "tickstream.duckdb")
    out = DuckDBStore(tmp_path / "replay.duckdb")
    await live.open()
    await out.open()
    instruments, settings = asm.instruments, asm.settings
    # Act
    enriched, inserted = await replay_once(live, out, instruments, settings)
    enriched2, inserted2 = await replay_once(live, out, instruments, settings)
    # Assert: identical enriched candles (indicator values compared exactly)
    assert enriched == live_enriched
    assert enriched2 == live_enriched
    candles = [c for cs in live_enriched.values() for c in cs]
    assert sum(c.interval is Interval.S1 for c in candles) >= 4 * int(RUN_SECS - 2)
    assert any(c.indicators is not None and c.indicators.ema_9 is not None for c in candles)
    assert any(c.indicators is not None and c.indicators.vwap is not None for c in candles)
    # ...and the stored candles equal the live store's
    for inst in instruments:
        for iv in (Interval.S1, Interval.M1, Interval.M5):
            want = await live.query_candles(inst.exchange, inst.token, iv, 0, 2**62)
            assert await out.query_candles(inst.exchange, inst.token, iv, 0, 2**62) == want
    # ...every live tick stored once as a replay row; the second replay added none
    live_ticks = 0
    for i in instruments:
        live_ticks += len(
            (await live.query_ticks(i.exchange, i.token, 0, 2**62, limit=10**6)).ticks
        )
    assert inserted == live_ticks > 0
    assert inserted2 == 0
    await live.close()
    await out.close()
