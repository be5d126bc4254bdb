"""Backfill: every chunk stored once, resumable after an interruption, the CLI end to end."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tickstream.calendar import DAY_NS, ist_ns
from tickstream.cli import app
from tickstream.feeds.backfill import BackfillPlan, run_backfill
from tickstream.feeds.fallback import SimHistory
from tickstream.feeds.history import HistoryError, HistoryService
from tickstream.model import Candle, Instrument, Interval
from tickstream.sim.history import bars, reference_price
from tickstream.sim.universe import load_universe, reference_prices
from tickstream.storage.duckdb_store import DuckDBStore

UNIVERSE = load_universe()
PRICES = reference_prices()
PICKED = [i for i in UNIVERSE if i.symbol in ("RELIANCE", "INFY", "NIFTY 50")]
START = ist_ns(dt.date(2025, 1, 6), 0)
END = START + 10 * DAY_NS


def expected(
    inst: Instrument, interval: Interval, start: int, end: int
) -> list[tuple[int, float, int]]:
    got = bars(inst, interval.seconds, start, end - 1, reference_price(inst, PRICES))
    return [(b.start_ns, b.close, b.volume) for b in got]


class MemorySink:
    def __init__(self, fail_after: int | None = None) -> None:
        self.rows: dict[tuple[str, int], Candle] = {}
        self.writes = 0
        self.fail_after = fail_after

    async def write_candles(self, candles: Sequence[Candle]) -> int:
        if self.fail_after is not None and self.writes >= self.fail_after:
            raise OSError("disk full")
        self.writes += 1
        for c in candles:
            self.rows[(c.key, c.start)] = c
        return len(candles)


def stored(sink: MemorySink, inst: Instrument) -> list[tuple[int, float, int]]:
    got = sorted((c for (key, _), c in sink.rows.items() if key == inst.key), key=lambda c: c.start)
    return [(c.start, c.close, c.volume) for c in got]


async def test_backfill_interrupted_then_resumed_stores_every_chunk_once(tmp_path: Path) -> None:
    plan = BackfillPlan(PICKED, Interval.M5, START, END)
    state = tmp_path / "state.json"
    service = HistoryService(SimHistory(PRICES, max_days=3))  # 10 days: 4 chunks per symbol
    broken = MemorySink(fail_after=5)

    with pytest.raises(OSError, match="disk full"):
        await run_backfill(plan, service, broken, state_path=state)
    done_before = json.loads(state.read_text())["done"]
    sink = MemorySink()
    result = await run_backfill(plan, service, sink, state_path=state)

    assert len(done_before) == 5
    assert (result.skipped, result.units, result.failed) == (5, 7, [])
    merged = MemorySink()
    merged.rows = {**broken.rows, **sink.rows}
    for inst in PICKED:
        assert stored(merged, inst) == expected(inst, Interval.M5, START, END)
    assert not any(k in sink.rows for k in broken.rows)  # nothing fetched twice


async def test_backfill_state_for_other_parameters_is_ignored(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    service = HistoryService(SimHistory(PRICES))
    await run_backfill(
        BackfillPlan(PICKED[:1], Interval.M5, START, END), service, MemorySink(), state_path=state
    )

    result = await run_backfill(
        BackfillPlan(PICKED[:1], Interval.M15, START, END), service, MemorySink(), state_path=state
    )

    assert (result.skipped, result.units) == (0, 1)


class Down:
    name = "down"

    def max_days(self, interval: Interval) -> int:
        return 5

    async def fetch(self, inst: Instrument, interval: Interval, a: int, b: int) -> list[Candle]:
        raise HistoryError("down")


async def test_backfill_unserved_symbol_fails_once_and_is_not_retried_per_chunk() -> None:
    calls: list[str] = []

    class Counting(Down):
        async def fetch(self, inst: Instrument, interval: Interval, a: int, b: int) -> list[Candle]:
            calls.append(inst.symbol)
            raise HistoryError("down")

    service = HistoryService(Counting())
    result = await run_backfill(
        BackfillPlan(PICKED[:1], Interval.M5, START, END), service, MemorySink()
    )

    assert len(result.failed) == 2  # both chunks of the 10 days, recorded
    assert calls == [PICKED[0].symbol]  # the second chunk is not tried once it is excluded
    assert service.excluded == [PICKED[0].symbol]


def test_backfill_cli_sim_source_into_duckdb_then_resumes(tmp_path: Path) -> None:
    db, state = tmp_path / "t.duckdb", tmp_path / "state.json"
    args = ["backfill", "--from", "2025-01-06", "--to", "2025-01-07", "--interval", "15m",
            "--symbols", "RELIANCE,INFY,NOSUCH", "--source", "sim", "--db", str(db),
            "--state", str(state)]  # fmt: skip
    runner = CliRunner()

    first = runner.invoke(app, args)
    second = runner.invoke(app, args)

    assert first.exit_code == 0, first.output
    assert "backfilled 100 candles in 2 chunks (0 already done, 0 failed)" in first.output
    assert "unknown symbols skipped: NOSUCH" in first.output
    assert second.exit_code == 0 and "(2 already done, 0 failed)" in second.output
    reliance = next(i for i in UNIVERSE if i.symbol == "RELIANCE")
    end = ist_ns(dt.date(2025, 1, 8), 0)
    rows = asyncio.run(_query(db, reliance, end))
    assert [(c.start, c.close, c.volume) for c in rows] == expected(
        reliance, Interval.M15, ist_ns(dt.date(2025, 1, 6), 0), end
    )


async def _query(db: Path, inst: Instrument, end: int) -> list[Candle]:
    store = DuckDBStore(db)
    await store.open()
    try:
        return await store.query_candles(inst.exchange, inst.token, Interval.M15, 0, end)
    finally:
        await store.close()


def test_backfill_cli_rejects_bad_dates(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["backfill", "--from", "2025-01-07", "--to", "2025-01-06", "--symbols", "INFY",
              "--source", "sim", "--db", str(tmp_path / "x.duckdb")],
    )  # fmt: skip

    assert result.exit_code == 2
    assert "--to is before --from" in result.output
