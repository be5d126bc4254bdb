"""Runtime.run freezes the start-up heap for the collector while running and thaws it after."""

from __future__ import annotations

import asyncio
import gc

from tickstream.runtime import FunctionComponent, Runtime


async def test_runtime_run_startup_objects_frozen_while_running_thawed_after() -> None:
    seen: dict[str, int] = {}
    state: list[dict[str, int]] = []

    async def start() -> None:
        state.append({"built at start-up": 1})  # a long-lived container, as components make
        seen["during start"] = gc.get_freeze_count()

    async def until() -> None:
        seen["while running"] = gc.get_freeze_count()
        seen["state tracked by the collector"] = int(any(obj is state for obj in gc.get_objects()))
        await asyncio.sleep(0)

    runtime = Runtime()
    runtime.add(FunctionComponent("probe", start))

    clean = await runtime.run(until=until())

    assert clean is True
    assert seen["during start"] == 0
    assert seen["while running"] > 0
    assert seen["state tracked by the collector"] == 0  # frozen: no collection walks it
    assert gc.get_freeze_count() == 0
    assert any(obj is state for obj in gc.get_objects())
