"""Graceful shutdown of ``tickstream run`` (a real process): SIGTERM stops intake, drains the
pipeline, flushes the sinks and closes within the bound; every accepted tick is stored once."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tickstream.accounting import accounting, violations
from tickstream.checker import check_candles, tick_identity
from tickstream.cli import app
from tickstream.commands.check import load_stored
from tickstream.model import Interval
from tickstream.storage.duckdb_store import DuckDBStore

# The whole fault suite runs under TZ=UTC and TZ=Asia/Kolkata: verdicts must not depend on it.
pytestmark = pytest.mark.usefixtures("tz")

SHUTDOWN_BOUND_S = 20.0  # the runtime's own bound is 15 s
_ACCOUNTING = re.compile(
    r"accounting at shutdown: accepted (\d+), stored (\d+), in flight (\d+), violations: (\S+)"
)


def _env(data_dir: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("REDIS_URL", "DATABASE_URL", "KAFKA_BOOTSTRAP")
        and not k.startswith("TICKSTREAM_")
    }
    env.update(
        TICKSTREAM_PORT="0",
        TICKSTREAM_DATA_DIR=str(data_dir),
        TICKSTREAM_FEED="sim",
        TICKSTREAM_SYMBOLS="RELIANCE,INFY,TCS,SBIN,NIFTY 50",
        TICKSTREAM_SIM_TICK_INTERVAL_MS="50",
        TICKSTREAM_CANDLE_INTERVALS="1s,1m",
        TICKSTREAM_SIM_EMISSION_LOG=str(data_dir / "emissions.jsonl"),
    )
    return env


async def _run_until_sigterm(data_dir: Path, after_s: float) -> tuple[int, float, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tickstream.cli", "run", env=_env(data_dir),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await asyncio.sleep(after_s)
        assert proc.returncode is None, "tickstream run exited before SIGTERM"
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(SHUTDOWN_BOUND_S):
            _, err = await proc.communicate()
        took = time.monotonic() - t0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, took, err.decode(errors="replace")


async def test_fault_sigterm_drains_and_stores_every_accepted_tick_once(tmp_path: Path) -> None:
    # Arrange / Act: run for a while, then SIGTERM mid-stream
    code, took, log = await _run_until_sigterm(tmp_path, after_s=6.0)
    # Assert: a clean exit within the bound, and the drained accounting logged
    assert code == 0, log[-3000:]
    assert took < SHUTDOWN_BOUND_S
    found = _ACCOUNTING.search(log)
    assert found is not None, log[-3000:]
    accepted, logged_stored, in_flight, violations = found.groups()
    assert (int(in_flight), violations) == (0, "none"), found.group(0)
    assert int(logged_stored) == int(accepted) > 0
    # ... and the store really holds every accepted tick exactly once, candles intact
    store = DuckDBStore(tmp_path / "tickstream.duckdb")
    await store.open()
    try:
        intervals = (Interval.S1, Interval.M1)
        ticks, candles = await load_stored(store, intervals)
    finally:
        await store.close()
    assert len(ticks) == int(accepted)
    assert len({tick_identity(t) for t in ticks}) == len(ticks)
    report = check_candles(ticks, candles, intervals)
    assert report.ok and report.compared > 0, report


async def test_fault_sigterm_then_tickstream_check_finds_nothing_missing(
    tmp_path: Path, monkeypatch: Any
) -> None:
    # Arrange: a run that logged its emissions, stopped by SIGTERM
    code, _, log = await _run_until_sigterm(tmp_path, after_s=5.0)
    assert code == 0, log[-3000:]
    for name in ("DATABASE_URL", "REDIS_URL", "KAFKA_BOOTSTRAP"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TICKSTREAM_CANDLE_INTERVALS", "1s,1m")
    args = ["check", "--since", "0", "--emission-log", str(tmp_path / "emissions.jsonl")]
    # Act
    result = await asyncio.to_thread(CliRunner().invoke, app, [*args, "--data-dir", str(tmp_path)])
    # Assert
    assert result.exit_code == 0, result.output
    assert "missing 0, duplicated 0, altered 0" in result.output


async def test_fault_stop_mid_burst_every_received_tick_accepted_and_stored(
    fault_run: Any,
) -> None:
    # Arrange: the whole universe at 10x, so queues hold a backlog when the stop comes
    run = await fault_run(symbols=())
    run.sim.faults.set(None, burst_factor=10.0, burst_seconds=30.0)
    await run.wait_more_ticks(2000, timeout=30)
    # Act: stop at once, no quiescing (what SIGTERM does)
    clean = await run.asm.runtime.stop()
    doc = accounting(run.stats(), drained=True)
    # Assert: whatever the client parsed went through the pipeline and was stored
    assert clean
    assert violations(doc) == [], doc
    assert doc["in_flight"] == 0
    assert doc["feed"]["parsed"] == doc["pipeline"]["ticks_in"] > 2000
