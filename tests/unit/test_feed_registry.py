"""The subscription registry: placement within limits, stable shards, atomic refusals."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickstream.feeds.base import CapacityError
from tickstream.feeds.registry import Limits, SubscriptionRegistry
from tickstream.model import Instrument


def inst(n: int) -> Instrument:
    return Instrument(exchange="NSE", token=n, symbol=f"S{n}")


def items(tokens: range | list[int]) -> list[tuple[int, Instrument]]:
    return [(t, inst(t)) for t in tokens]


def test_registry_5000_kite_instruments_fill_shard0_then_shard1() -> None:
    reg = SubscriptionRegistry(Limits(3000, 3), broker="kite")

    changed = reg.add(items(range(5000)), "ltp")

    assert {s: len(k) for s, k in changed.items()} == {0: 3000, 1: 2000}
    assert [reg.shard_count(s) for s in range(3)] == [3000, 2000, 0]
    assert reg.used_shards() == [0, 1]


def test_registry_beyond_capacity_refused_atomically_with_numbers() -> None:
    reg = SubscriptionRegistry(Limits(1000, 3), broker="angelone")
    reg.add(items(range(2500)), "quote")

    with pytest.raises(CapacityError) as refused:
        reg.add(items(range(2500, 3001)), "quote")

    assert str(refused.value) == (
        "angelone: 2500 subscribed + 501 requested = 3001 exceeds the limit of 3000 "
        "(3 connections x 1000 instruments)"
    )
    assert len(reg) == 2500
    assert [reg.shard_count(s) for s in range(3)] == [1000, 1000, 500]


def test_registry_depth_cap_per_connection_spills_to_next_shard() -> None:
    reg = SubscriptionRegistry(Limits(1000, 3, {"depth": 50}), broker="angelone")

    changed = reg.add(items(range(120)), "depth")

    assert {s: len(k) for s, k in changed.items()} == {0: 50, 1: 50, 2: 20}
    with pytest.raises(CapacityError, match=r"mode depth allows at most 50 .* = 150\)"):
        reg.add(items(range(120, 151)), "depth")
    assert len(reg) == 120


def test_registry_mode_change_keeps_shard_and_count() -> None:
    reg = SubscriptionRegistry(Limits(2, 2))
    reg.add(items([1, 2, 3]), "ltp")

    changed = reg.add(items([3]), "full")

    assert changed == {1: [3]}
    entry = reg.get(3)
    assert entry is not None and (entry.mode, entry.shard) == ("full", 1)
    assert len(reg) == 3


def test_registry_remove_frees_room_on_its_shard() -> None:
    reg = SubscriptionRegistry(Limits(2, 2))
    reg.add(items([1, 2, 3, 4]), "quote")

    removed = reg.remove([2, 99])
    changed = reg.add(items([5]), "quote")

    assert [k for k, _ in removed[0]] == [2]
    assert changed == {0: [5]}
    assert set(reg.shard_entries(0)) == {1, 5}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.lists(st.integers(0, 40), max_size=15)), max_size=12))
def test_registry_random_operations_keep_invariants(ops: list[tuple[bool, list[int]]]) -> None:
    reg = SubscriptionRegistry(Limits(7, 3, {"depth": 2}))
    model: dict[object, int] = {}  # key -> shard, as placed
    for is_add, keys in ops:
        if is_add:
            with contextlib.suppress(CapacityError):
                reg.add(items(keys), "quote")
        else:
            reg.remove(keys)
        for key in list(model):
            if key not in reg:
                del model[key]
        for shard in range(3):
            entries = reg.shard_entries(shard)
            assert len(entries) == reg.shard_count(shard) <= 7
            for key in entries:
                assert model.setdefault(key, shard) == shard  # an entry never moves
    assert len(reg) == sum(reg.shard_count(s) for s in range(3)) <= 21
