"""The fault suite's harness: ``tickstream run`` in-process with an emission log, faults, a verdict.

:class:`FaultRun` builds the real assembly (simulator with an emission log → the real Kite client
→ pipeline → bus → sinks → DuckDB or PostgreSQL), lets a scenario inject faults, then
:meth:`FaultRun.finish` quiesces (mutes the simulator so nothing is in flight), stops the
assembly cleanly and returns the checker's verdict (emitted vs stored ticks, candles vs a
resample) together with the drained accounting document. Every scenario asserts that verdict.

Every item here is marked ``faults`` (and ``integration`` by the parent conftest).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tickstream.accounting import accounting
from tickstream.assembly import Assembly, build_assembly
from tickstream.checker import CheckReport
from tickstream.commands.check import read_emissions, read_quarantined, run_check
from tickstream.config import Settings, load_settings
from tickstream.sim.clock import ClockMode, SimClock, latest_session_start
from tickstream.sim.server import SimConfig

FAULTS_DIR = Path(__file__).resolve().parent
REPO = FAULTS_DIR.parents[2]
SYMBOLS = ("NIFTY 50", "RELIANCE", "INFY", "TCS", "HDFCBANK", "ICICIBANK", "SBIN", "ITC")
_Q = 15 * 60 * 1_000_000_000  # 09:00 + 15 min
SIM_HEARTBEAT_S = 0.3  # the Kite heartbeat period: a half-open socket is found in 3 x this


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(FAULTS_DIR):
            item.add_marker(pytest.mark.faults)


@dataclass
class Verdict:
    report: CheckReport
    accounting: dict[str, Any]
    stats: dict[str, Any]

    def describe(self) -> str:
        return f"{self.report.to_dict()}\naccounting={self.accounting}"


@dataclass
class FaultRun:
    """One running assembly under test; see the module docstring."""

    asm: Assembly
    settings: Settings
    emission_log: Path
    lossy: set[str] = field(default_factory=set)
    started_ns: int = 0

    @property
    def sim(self) -> Any:
        return self.asm.sim

    def stats(self) -> dict[str, Any]:
        return self.asm.stats()

    def accepted(self) -> int:
        return int(self.asm.runner.stats()["accepted"])

    def conn_ids(self) -> list[str]:
        return [c.conn_id for c in self.sim.connections()]

    async def wait_for(self, what: str, pred: Callable[[], bool], timeout: float = 15.0) -> None:
        end = time.monotonic() + timeout
        while not pred():
            if time.monotonic() > end:
                raise AssertionError(f"timed out waiting for {what}: {self.stats()['feed']}")
            await asyncio.sleep(0.05)

    async def wait_more_ticks(self, n: int = 200, timeout: float = 15.0) -> None:
        target = self.accepted() + n
        await self.wait_for(f"{n} more accepted ticks", lambda: self.accepted() >= target, timeout)

    async def wait_reconnected(self, old: set[str], timeout: float = 30.0) -> None:
        """Until a connection that is not in ``old`` is open and has delivered ticks."""
        await self.wait_for("a new connection", lambda: bool(set(self.conn_ids()) - old), timeout)
        await self.wait_more_ticks(50, timeout)

    def cut(self, conn_id: str, **fault: Any) -> None:
        """Apply a transport fault to one connection (its in-flight tail may be lost)."""
        self.lossy.add(conn_id)
        self.sim.faults.set(conn_id, **fault)

    async def finish(self, *, strict_candles: bool = True) -> Verdict:
        """Quiesce, stop cleanly, and judge what was stored against what was emitted."""
        self.sim.faults.clear()
        self.sim.faults.set(None, mute=True)
        feed = self.asm.feed
        assert feed is not None
        before = -1
        while before != feed.health().parsed:  # until nothing more arrives
            before = feed.health().parsed
            await asyncio.sleep(0.4)
        await self.asm.runner.wait_idle(10.0)
        clean = await self.asm.runtime.stop()
        assert clean, "the assembly did not stop within its shutdown bound"
        stats = self.asm.stats()
        doc = accounting(stats, drained=True)
        report = await self._check()
        return Verdict(report, doc, stats)

    async def _check(self) -> CheckReport:
        from tickstream.storage import create_store

        emitted = read_emissions(self.emission_log, self.started_ns - 10**12)
        quarantined = read_quarantined(self.settings.data_dir / "quarantine")
        store = create_store(self.settings)
        await store.open()
        try:
            return await run_check(
                store, emitted, intervals=self.settings.candle_intervals,
                quarantined=quarantined, lossy_connections=self.lossy,
                since_ns=self.started_ns - 10**12,
            )  # fmt: skip
        finally:
            await store.close()


def fault_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Small, fast settings: a few symbols, quick reconnects; no service unless asked for."""
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "feed": "sim",
        "symbols": SYMBOLS,
        "sim_tick_interval_ms": 50,
        "reconnect_delay_initial_secs": 0.2,
        "reconnect_delay_max_secs": 1.0,
        "port": 0,
        "redis_url": None,
        "database_url": None,
        "kafka_bootstrap": None,
        "candle_intervals": "1s,1m",
    }
    values.update(overrides)
    return load_settings(None, **values)


def session_open_clock() -> SimClock:
    """Exchange time from 09:15:00 IST (the open) of the latest trading day."""
    return SimClock(ClockMode.FIXED, start_ns=latest_session_start(time.time_ns(), hour=9) + _Q)


async def start_run(
    settings: Settings, *, serve: bool = False, clock: SimClock | None = None
) -> FaultRun:
    log_path = settings.data_dir / "emissions.jsonl"
    config = SimConfig(
        seed=random.randrange(1, 2**31),  # distinct markets per run
        tick_interval_ms=settings.sim_tick_interval_ms,
        emission_log=log_path,
        heartbeat_s=SIM_HEARTBEAT_S,
        clock=clock,
    )
    asm = await build_assembly(settings, serve=serve, sim_config=config)
    run = FaultRun(asm, settings, log_path)
    await asm.runtime.start()
    run.started_ns = asm.sim.clock.now_ns()
    await run.wait_more_ticks(100)
    return run


@pytest.fixture
async def fault_run(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """A factory ``await fault_run(**settings_overrides)``; every run is stopped afterwards."""
    runs: list[FaultRun] = []

    async def make(*, serve: bool = False, at_open: bool = False, **overrides: Any) -> FaultRun:
        settings = fault_settings(tmp_path / f"run{len(runs)}", **overrides)
        clock = session_open_clock() if at_open else None
        run = await start_run(settings, serve=serve, clock=clock)
        runs.append(run)
        return run

    yield make
    for run in runs:
        await run.asm.runtime.stop()


def assert_no_loss(v: Verdict, unjudged: tuple[str, ...] = ()) -> None:
    """The verdict every scenario must reach: nothing missing, duplicated or altered."""
    t = v.report.ticks
    assert (t.missing, t.duplicated, t.altered) == (0, 0, 0), v.describe()
    assert t.emitted_distinct > 0 and t.stored > 0, v.describe()
    assert v.report.candles is not None and v.report.candles.ok, v.describe()
    bad = [k for k, ok in v.accounting["invariants"].items() if ok is False and k not in unjudged]
    assert bad == [], v.describe()
    assert v.accounting["in_flight"] == 0, v.describe()


@pytest.fixture
def no_loss() -> Callable[[Verdict], None]:
    """:func:`assert_no_loss` for the scenario modules (a conftest is not importable)."""
    return assert_no_loss


async def run_services(*args: str) -> None:
    """``scripts/services.sh <args>`` (kill / start / restart a shared service); fails loudly."""
    proc = await asyncio.create_subprocess_exec(
        "bash", str(REPO / "scripts" / "services.sh"), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode(errors="replace")


@pytest.fixture
def services_sh() -> Callable[..., Awaitable[None]]:
    """:func:`run_services` for the scenario modules (a conftest is not importable)."""
    return run_services


@pytest.fixture
def fault_kit() -> Any:
    """The harness functions for scenarios that run their own event loop (sync tests)."""
    import types

    return types.SimpleNamespace(start_run=start_run, fault_settings=fault_settings)


@pytest.fixture(params=["UTC", "Asia/Kolkata"])
def tz(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run under this local time zone (TZ + tzset): verdicts must not depend on it."""
    monkeypatch.setenv("TZ", request.param)
    time.tzset()
    yield request.param
    monkeypatch.undo()
    time.tzset()
