"""Shared builders for the serve tests: a real context (MemoryBus, DuckDB in tmp_path, memory ring
buffer, PipelineEngine fed by the simulated market on a fixed, manually advanced clock)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from tickstream.calendar import ist_ns
from tickstream.config import Settings
from tickstream.model import NS_PER_SEC, Instrument
from tickstream.serve.context import ServeContext
from tickstream.serve.security import KeyStore, Scope
from tickstream.serve.simfeed import SimFeeder, build_sim_context
from tickstream.sim.clock import ClockMode, SimClock
from tickstream.sim.universe import default_universe

START_NS = ist_ns(dt.date(2024, 12, 2), 10)  # a Monday, inside the NSE session


class FakeMonotonic:
    def __init__(self) -> None:
        self.t = 1_000 * NS_PER_SEC

    def __call__(self) -> int:
        return self.t


def small_universe() -> list[Instrument]:
    wanted = {"NIFTY 50", "NIFTY BANK", "RELIANCE", "INFY", "TCS", "HDFCBANK"}
    return [i for i in default_universe() if i.symbol in wanted]


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    return Settings(data_dir=tmp_path, sim_seed=7, **overrides)  # type: ignore[arg-type]


async def make_context(
    tmp_path: Path, *, steps: int = 0, **overrides: object
) -> tuple[ServeContext, SimFeeder, FakeMonotonic]:
    """A real context; ``steps`` simulated seconds are already published and stored."""
    mono = FakeMonotonic()
    clock = SimClock(ClockMode.FIXED, start_ns=START_NS, monotonic_ns=mono)
    ctx, feeder = await build_sim_context(
        make_settings(tmp_path, **overrides),
        instruments=small_universe(),
        store_path=tmp_path / "t.duckdb",
        clock=clock,
    )
    for _ in range(steps):
        mono.t += NS_PER_SEC
        await feeder.step()
    return ctx, feeder, mono


def make_keys() -> tuple[KeyStore, str, str]:
    """(store, read key, admin key), in memory."""
    keys = KeyStore()
    read, _ = keys.create([Scope.READ], name="reader", save=False)
    admin, _ = keys.create([Scope.ADMIN], name="admin", save=False)
    return keys, read, admin
