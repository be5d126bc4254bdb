from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickstream.storage.ringbuffer import MemoryRingBuffer, RingBuffer

from conformance.store_suite import make_tick


async def test_memory_ring_keeps_last_n_per_instrument_in_order() -> None:
    ring = MemoryRingBuffer(size=5)
    a = [make_tick(i) for i in range(8)]
    b = [make_tick(i, token=11536, symbol="TCS") for i in range(3)]
    assert await ring.push(a[:4] + b + a[4:]) == 11
    assert await ring.recent("NSE", 2885) == a[3:]
    assert await ring.recent("NSE", 11536) == b


async def test_memory_ring_recent_n_returns_newest_n() -> None:
    ring = MemoryRingBuffer(size=10)
    ticks = [make_tick(i) for i in range(6)]
    await ring.push(ticks)
    assert await ring.recent("NSE", 2885, 2) == ticks[4:]
    assert await ring.recent("NSE", 2885, 0) == []
    assert await ring.recent("NSE", 2885, 100) == ticks


async def test_memory_ring_unknown_instrument_is_empty() -> None:
    ring = MemoryRingBuffer()
    assert await ring.recent("NSE", 1) == []


async def test_memory_ring_keeps_ticks_encoded_and_returns_equal_values() -> None:
    ring = MemoryRingBuffer()
    t = make_tick(0)
    await ring.push([t])
    (back,) = await ring.recent("NSE", 2885)
    assert back == t and back is not t
    stored = ring._buffers[("NSE", 2885)][0]
    assert isinstance(stored, bytes) and len(stored) == len(msgspec.msgpack.encode(t))
    assert isinstance(ring, RingBuffer)


def test_memory_ring_rejects_zero_size() -> None:
    with pytest.raises(ValueError, match="size"):
        MemoryRingBuffer(size=0)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 20), st.lists(st.integers(0, 2), max_size=60))
async def test_memory_ring_equals_tail_of_each_instruments_stream(
    size: int, tokens: list[int]
) -> None:
    ring = MemoryRingBuffer(size=size)
    ticks = [make_tick(i, token=100 + tok) for i, tok in enumerate(tokens)]
    for chunk in (ticks[:7], ticks[7:]):
        await ring.push(chunk)
    for tok in range(3):
        stream = [t for t in ticks if t.token == 100 + tok]
        assert await ring.recent("NSE", 100 + tok) == stream[-size:]
