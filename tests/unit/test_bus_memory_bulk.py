"""MemoryBus.publish_many's bulk path: same outcome as one publish per message, fewer awaits."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickstream.bus.base import Overflow
from tickstream.bus.memory import MemoryBus

from conformance.bus_suite import make_tick

_POLICIES = st.sampled_from([Overflow.DROP_OLDEST, Overflow.DROP_NEWEST, Overflow.BLOCK])


async def _contents(bulk: bool, maxsize: int, policy: Overflow, before: int, batch: int):
    bus = MemoryBus()
    await bus.start()
    sub = await bus.subscribe("t", maxsize=maxsize, overflow=policy)
    for i in range(before):
        await bus.publish("t", make_tick(i))
    values = [make_tick(before + i) for i in range(batch)]
    keys = [f"k{i}" for i in range(batch)]
    if bulk:
        await bus.publish_many("t", values, keys)
    else:
        for value, key in zip(values, keys, strict=True):
            await bus.publish("t", value, key)
    got = await sub.get_batch(10_000, timeout=0)
    return [(m.value.seq, m.key) for m in got], sub.dropped, sub.delivered


@settings(max_examples=60, deadline=None)
@given(
    maxsize=st.integers(1, 8),
    policy=_POLICIES,
    before=st.integers(0, 8),
    batch=st.integers(0, 12),
)
def test_memory_bus_publish_many_any_policy_equals_one_publish_each(
    maxsize: int, policy: Overflow, before: int, batch: int
) -> None:
    # Arrange: a BLOCK subscription never has more pending than it can hold without a reader
    if policy is Overflow.BLOCK:
        before, batch = min(before, maxsize), max(0, min(batch, maxsize - min(before, maxsize)))
    # Act
    bulk = asyncio.run(_contents(True, maxsize, policy, before, batch))
    one_by_one = asyncio.run(_contents(False, maxsize, policy, before, batch))
    # Assert
    assert bulk == one_by_one


async def test_memory_bus_publish_many_full_block_sub_other_subs_get_whole_batch_first() -> None:
    # Arrange
    bus = MemoryBus()
    await bus.start()
    slow = await bus.subscribe("t", maxsize=2, overflow=Overflow.BLOCK)
    fast = await bus.subscribe("t", maxsize=100, overflow=Overflow.DROP_OLDEST)
    # Act: 5 messages; the BLOCK subscription holds 2, so the publisher waits
    task = asyncio.create_task(bus.publish_many("t", [make_tick(i) for i in range(5)]))
    await asyncio.sleep(0.01)
    fast_got = [m.value.seq for m in await fast.get_batch(100, timeout=0)]
    blocked = not task.done()
    slow_got: list[int] = []
    while len(slow_got) < 5:
        slow_got += [m.value.seq for m in await slow.get_batch(1, timeout=1)]
    await asyncio.wait_for(task, 1)
    # Assert
    assert blocked
    assert fast_got == [0, 1, 2, 3, 4]
    assert slow_got == [0, 1, 2, 3, 4]
    assert (slow.dropped, fast.dropped) == (0, 0)


@pytest.mark.parametrize("max_items", [1, 3, 10])
async def test_memory_bus_get_batch_bulk_take_counts_and_reopens_writes(max_items: int) -> None:
    # Arrange
    bus = MemoryBus()
    await bus.start()
    sub = await bus.subscribe("t", maxsize=5, overflow=Overflow.BLOCK)
    await bus.publish_many("t", [make_tick(i) for i in range(5)])
    # Act
    got = await sub.get_batch(max_items, timeout=0)
    publish_more = asyncio.create_task(bus.publish("t", make_tick(5)))
    await asyncio.wait_for(publish_more, 1)
    rest = await sub.get_batch(100, timeout=0)
    # Assert
    assert [m.value.seq for m in got] == list(range(min(max_items, 5)))
    assert [m.value.seq for m in rest] == list(range(min(max_items, 5), 6))
    assert sub.delivered == 6
    assert sub.depth == 0
