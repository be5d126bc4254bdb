"""Bus conformance: subclass ``BusConformance`` and provide an async ``bus`` fixture.

Network backends deliver asynchronously, so assertions wait (bounded) for delivery instead of
assuming it is immediate; the values delivered must be exactly the values published.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest

from tickstream.bus.base import Bus, BusClosedError, Overflow, Subscription
from tickstream.model import Candle, Depth, DepthLevel, Indicators, Interval, Mode, Tick

DEADLINE_S = 30.0  # only a failing test waits this long


def make_tick(i: int, token: int = 2885) -> Tick:
    return Tick(
        exchange="NSE",
        token=token,
        symbol="RELIANCE",
        source="sim",
        ts_exchange=1_763_700_000_000_000_000 + i * 1_000_000,
        ts_recv=1_763_700_000_000_500_000 + i * 1_000_000,
        seq=i,
        ltp=2456.75 + i / 20,
        ltq=5,
        volume=1000 + i,
        bid=2456.7,
        ask=2456.8,
        depth=Depth(bids=(DepthLevel(2456.7, 10, 2),), asks=(DepthLevel(2456.8, 7, 1),)),
        mode=Mode.FULL,
    )


def make_candle(i: int) -> Candle:
    return Candle(
        exchange="NSE",
        token=2885,
        symbol="RELIANCE",
        interval=Interval.M1,
        start=1_763_700_000_000_000_000 + i * 60_000_000_000,
        open=100.05,
        high=101.5,
        low=99.95,
        close=100.1,
        volume=1234,
        ticks=17,
        indicators=Indicators(ema_9=100.25, rsi_14=55.5, supertrend_direction=1),
    )


def topic_name() -> str:
    return f"test:{uuid.uuid4().hex[:12]}"


async def drain(sub: Subscription, n: int) -> list[Any]:
    """Collect ``n`` messages' values, waiting at most DEADLINE_S in total."""
    out: list[Any] = []
    end = time.monotonic() + DEADLINE_S
    while len(out) < n and time.monotonic() < end:
        batch = await sub.get_batch(n - len(out), timeout=max(0.01, end - time.monotonic()))
        out.extend(m.value for m in batch)
    return out


class BusConformance:
    """Behaviour every Bus backend must have."""

    async def test_bus_publish_then_subscriber_receives_equal_ticks_in_order(
        self, bus: Bus
    ) -> None:
        topic = topic_name()
        sub = await bus.subscribe(topic, type_=Tick)
        ticks = [make_tick(i) for i in range(50)]
        for t in ticks:
            await bus.publish(topic, t, key=t.key)
        assert await drain(sub, 50) == ticks
        await sub.close()

    async def test_bus_publish_many_delivers_values_and_keys(self, bus: Bus) -> None:
        topic = topic_name()
        sub = await bus.subscribe(topic, type_=Tick)
        ticks = [make_tick(i, token=100 + i % 3) for i in range(30)]
        await bus.publish_many(topic, ticks, [t.key for t in ticks])
        got: list[Any] = []
        keys: list[str | None] = []
        end = time.monotonic() + DEADLINE_S
        while len(got) < 30 and time.monotonic() < end:
            for m in await sub.get_batch(30, timeout=0.5):
                got.append(m.value)
                keys.append(m.key)
        assert got == ticks
        assert keys == [t.key for t in ticks]
        await sub.close()

    async def test_bus_two_subscribers_each_receive_everything(self, bus: Bus) -> None:
        topic = topic_name()
        a = await bus.subscribe(topic, type_=Candle)
        b = await bus.subscribe(topic, type_=Candle)
        candles = [make_candle(i) for i in range(10)]
        await bus.publish_many(topic, candles)
        assert await drain(a, 10) == candles
        assert await drain(b, 10) == candles
        await a.close()
        await b.close()

    async def test_bus_topics_are_isolated(self, bus: Bus) -> None:
        t1, t2 = topic_name(), topic_name()
        s1 = await bus.subscribe(t1, type_=Tick)
        s2 = await bus.subscribe(t2, type_=Tick)
        await bus.publish(t1, make_tick(1))
        await bus.publish(t2, make_tick(2))
        assert await drain(s1, 1) == [make_tick(1)]
        assert await drain(s2, 1) == [make_tick(2)]
        assert await s1.get(timeout=0.2) is None
        await s1.close()
        await s2.close()

    async def test_bus_drop_oldest_overflow_keeps_newest_and_counts_dropped(self, bus: Bus) -> None:
        topic = topic_name()
        sub = await bus.subscribe(topic, type_=Tick, maxsize=5, overflow=Overflow.DROP_OLDEST)
        ticks = [make_tick(i) for i in range(20)]
        await bus.publish_many(topic, ticks)
        end = time.monotonic() + DEADLINE_S
        while sub.dropped < 15 and time.monotonic() < end:
            await asyncio.sleep(0.02)
        assert sub.dropped == 15
        assert await drain(sub, 5) == ticks[15:]
        await sub.close()

    async def test_bus_get_on_empty_subscription_times_out_with_none(self, bus: Bus) -> None:
        sub = await bus.subscribe(topic_name(), type_=Tick)
        assert await sub.get(timeout=0.05) is None
        assert await sub.get_batch(10, timeout=0.05) == []
        await sub.close()

    async def test_bus_closed_subscription_iteration_ends(self, bus: Bus) -> None:
        sub = await bus.subscribe(topic_name(), type_=Tick)
        await sub.close()
        seen = [m async for m in sub]
        assert seen == []

    async def test_bus_publish_after_close_raises(self, bus: Bus) -> None:
        await bus.close()
        with pytest.raises(BusClosedError):
            await bus.publish(topic_name(), make_tick(0))

    async def test_bus_stats_names_backend(self, bus: Bus) -> None:
        stats = bus.stats()
        assert stats["backend"] == bus.name
