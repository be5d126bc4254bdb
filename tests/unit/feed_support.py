"""Shared helpers for the feed-client tests against the simulator (not a test module)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Callable

from tickstream.calendar import ist_ns
from tickstream.feeds.adapter import FeedConfig
from tickstream.feeds.client import ShardedFeed
from tickstream.model import Tick
from tickstream.pipeline.sequence import GapEvent
from tickstream.sim.clock import SimClock
from tickstream.sim.server import SimConfig, SimServer
from tickstream.sim.universe import load_universe

START = ist_ns(dt.date(2025, 11, 21), 10)
STEP_NS = 100_000_000
UNIVERSE = load_universe()
EQUITIES = [i for i in UNIVERSE if i.exchange == "NSE"]

FAST = FeedConfig(
    heartbeat_timeout_factor=3.0,
    reconnect_delay_initial_secs=0.02,
    reconnect_delay_max_secs=0.2,
    healthy_after_secs=0.5,
    stale_after_secs=0.4,
    auth_retry_secs=0.1,
    rate_limit_cooldown_secs=0.1,
)


def sim_config(**kwargs: object) -> SimConfig:
    """A manually stepped simulator on a fixed clock (tests call :func:`step`)."""
    clock = SimClock("fixed", start_ns=START, monotonic_ns=lambda: 0)
    base: dict[str, object] = {
        "seed": 7, "autostep": False, "clock": clock, "heartbeat_s": 0.05,
        "emission_memory": 100_000,
    }  # fmt: skip
    base.update(kwargs)
    return SimConfig(**base)  # type: ignore[arg-type]


class Collector:
    """Reads a feed's events into lists in the background."""

    def __init__(self, feed: ShardedFeed) -> None:
        self.feed = feed
        self.ticks: list[Tick] = []
        self.gaps: list[GapEvent] = []
        self.order: list[str] = []
        self._task: asyncio.Task[None] | None = None
        self._steps = 0

    async def _run(self) -> None:
        async for event in self.feed.events():
            if isinstance(event, GapEvent):
                self.gaps.append(event)
                self.order.append("gap")
            else:
                self.ticks.extend(event)
                self.order.append("ticks")

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        await self.feed.stop()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._task, 5)


async def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Poll ``predicate`` until it holds (a bound so that a failing test ends, not a timing)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


class Stepper:
    """Steps a manually driven simulator forward in exchange time."""

    def __init__(self, sim: SimServer) -> None:
        self.sim = sim
        self.now = START

    def step(self, n: int = 1) -> int:
        sent = 0
        for _ in range(n):
            self.now += STEP_NS
            sent += len(self.sim.step_once(self.now))
        return sent

    async def until(self, predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
        """Step the market until ``predicate`` holds (e.g. data after a reconnect)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            if loop.time() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            self.step()
            await asyncio.sleep(0.01)

    async def run(self, n: int, pause: float = 0.005) -> None:
        for _ in range(n):
            self.step()
            await asyncio.sleep(pause)


@contextlib.asynccontextmanager
async def running(feed: ShardedFeed) -> AsyncIterator[Collector]:
    collector = Collector(feed)
    await feed.start()
    collector.start()
    try:
        yield collector
    finally:
        await collector.close()
