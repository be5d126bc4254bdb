"""Pacing on a virtual clock: due times from exchange-time differences / speed, no drift.

Real-time pacing accuracy is measured in bench/replay.py; here the clock and sleep are injected,
so every assertion is exact and nothing waits.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickstream.model import Instrument, Tick
from tickstream.replay import Pacer, Replay, ReplaySpec, checkpoint_path, parse_speed
from tickstream.storage.duckdb_store import DuckDBStore

T0 = 1_732_160_700_000_000_000  # 2024-11-21 09:15 IST
NS = 1_000_000_000


class VirtualClock:
    """``sleep`` advances ``now`` instantly (and yields to the loop)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept = 0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, secs: float) -> None:
        self.now += secs
        self.slept += 1
        await asyncio.sleep(0)


def tick(token: int, ts: int, n: int = 0) -> Tick:
    return Tick(
        exchange="NSE", token=token, symbol=f"S{token}", source="sim",
        ts_exchange=ts, ts_recv=ts + 1000, ltp=100.0 + n, volume=n,
    )  # fmt: skip


async def store_with(ticks: list[Tick]) -> DuckDBStore:
    store = DuckDBStore(":memory:")
    await store.open()
    await store.write_ticks(ticks)
    return store


def spec(tokens: list[int], speed: float | None, batch_size: int = 1000) -> ReplaySpec:
    insts = tuple(Instrument(exchange="NSE", token=t, symbol=f"S{t}") for t in tokens)
    return ReplaySpec(insts, T0 - NS, T0 + 3600 * NS, speed=speed, batch_size=batch_size)


async def test_replay_60s_at_10x_takes_6s_each_tick_at_its_due_time() -> None:
    # Arrange: two instruments, 61 ticks each over 60 s (one every second, offset by 0.3 s)
    ticks = [tick(1, T0 + k * NS, k) for k in range(61)]
    ticks += [tick(2, T0 + k * NS + 300_000_000, k) for k in range(60)]
    store = await store_with(ticks)
    clock = VirtualClock()
    rep = Replay(store, spec([1, 2], 10.0), clock=clock, sleep=clock.sleep)
    emitted: list[tuple[float, Tick]] = []

    async def deliver(batch: list[Tick]) -> None:
        emitted.extend((clock.now, t) for t in batch)

    # Act
    await rep.run(deliver)
    # Assert
    start = emitted[0][0]
    assert len(emitted) == 121
    assert emitted[-1][0] - start == pytest.approx(6.0, abs=1e-9)
    for at, t in emitted:
        assert at - start == pytest.approx((t.ts_exchange - T0) / (10 * NS), abs=1e-9)
    await store.close()


async def test_replay_max_speed_never_sleeps() -> None:
    # Arrange
    store = await store_with([tick(1, T0 + k * NS, k) for k in range(500)])
    clock = VirtualClock()
    rep = Replay(store, spec([1], None, batch_size=100), clock=clock, sleep=clock.sleep)
    got: list[Tick] = []

    async def deliver(batch: list[Tick]) -> None:
        got.extend(batch)

    # Act
    summary = await rep.run(deliver)
    # Assert
    assert clock.slept == 0
    assert clock.now == 1000.0
    assert summary.emitted == 500
    assert [t.ts_exchange for t in got] == [T0 + k * NS for k in range(500)]
    await store.close()


async def test_replay_pause_resume_does_not_catch_up_the_paused_time() -> None:
    # Arrange: 1 tick per second for 20 s at 2x
    store = await store_with([tick(1, T0 + k * NS, k) for k in range(21)])
    clock = VirtualClock()
    rep = Replay(store, spec([1], 2.0, batch_size=5), clock=clock, sleep=clock.sleep)
    times: list[float] = []

    async def deliver(batch: list[Tick]) -> None:
        times.extend(clock.now for _ in batch)
        if len(times) == 5:  # after the tick at +4 s (2 s of replay time): pause for 100 s
            rep.pause()
            clock.now += 100.0
            asyncio.get_running_loop().call_soon(rep.resume)

    # Act
    await rep.run(deliver)
    # Assert: ticks 0..4 at 0.5 s steps; tick 5 right after resuming; then 0.5 s steps again
    start = times[0]
    rel = [round(t - start, 6) for t in times]
    assert rel[:5] == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert rel[5] == 102.0
    assert rel[6:] == [102.0 + 0.5 * i for i in range(1, 16)]
    await store.close()


async def test_replay_set_speed_midway_reanchors_at_current_position() -> None:
    # Arrange
    store = await store_with([tick(1, T0 + k * NS, k) for k in range(11)])
    clock = VirtualClock()
    rep = Replay(store, spec([1], 1.0, batch_size=100), clock=clock, sleep=clock.sleep)
    times: list[float] = []

    async def deliver(batch: list[Tick]) -> None:
        times.extend(clock.now for _ in batch)
        if len(times) == 3:
            rep.set_speed(4.0)

    # Act
    await rep.run(deliver)
    # Assert: 1 s apart up to the third tick, then 0.25 s apart
    rel = [round(t - times[0], 6) for t in times]
    assert rel == [0.0, 1.0, 2.0] + [2.0 + 0.25 * i for i in range(1, 9)]
    await store.close()


def test_pacer_horizon_includes_tick_exactly_at_its_due_time() -> None:
    # Arrange
    pacer = Pacer(3.0)
    pacer.anchor(T0, 10.0)
    ticks = [tick(1, T0 + k * 333_333_333) for k in range(10)]
    # Act
    ends = [pacer.split_due(ticks, 0, pacer.due(t.ts_exchange)) for t in ticks]
    # Assert
    assert ends == list(range(1, 11))


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1", 1.0), ("10x", 10.0), ("2.5", 2.5), (0.5, 0.5), ("max", None), ("inf", None),
     ("0", None), (math.inf, None), (None, None)],
)  # fmt: skip
def test_parse_speed_valid_inputs_give_rate_or_none(
    text: str | float | None, expected: float | None
) -> None:
    assert parse_speed(text) == expected


@pytest.mark.parametrize("text", ["fast", "-1", "nan"])
def test_parse_speed_invalid_input_raises(text: str) -> None:
    with pytest.raises(ValueError, match="speed"):
        parse_speed(text)


@settings(max_examples=50, deadline=None)
@given(
    gaps=st.lists(st.integers(0, 5 * NS), min_size=1, max_size=40),
    speed=st.sampled_from([0.5, 1.0, 3.0, 10.0, 60.0]),
)
def test_pacer_releases_each_tick_exactly_at_first_tick_plus_offset_over_speed(
    gaps: list[int], speed: float
) -> None:
    # Arrange: ticks at cumulative gaps; a clock that jumps to each next due time
    stamps = [T0 + sum(gaps[: i + 1]) for i in range(len(gaps))]
    ticks = [tick(1, ts) for ts in stamps]
    pacer = Pacer(speed)
    clock, start, released = 50.0, 0, []
    # Act
    while start < len(ticks):
        end = pacer.split_due(ticks, start, clock)
        released += [clock] * (end - start)
        start = end
        if start < len(ticks):
            clock = max(clock, pacer.due(ticks[start].ts_exchange))
    # Assert: no drift, whatever the gaps
    for at, ts in zip(released, stamps, strict=True):
        assert at - 50.0 == pytest.approx((ts - stamps[0]) / (speed * NS), abs=1e-9)


def test_checkpoint_path_rejects_names_that_are_paths(tmp_path: Path) -> None:
    # Act / Assert
    assert checkpoint_path(tmp_path, "day-1.a_b") == tmp_path / "replay" / "day-1.a_b.json"
    for bad in ("../x", "a/b", "", ".hidden"):
        with pytest.raises(ValueError, match="invalid replay id"):
            checkpoint_path(tmp_path, bad)
