"""The simulator's batch paths: Kite packets in one numpy pass, snapshots in one build.

Both must be indistinguishable from the per-tick paths they replace (``kite.wire.encode_packet``,
``Market.snapshot``).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tickstream.calendar import ist_ns
from tickstream.feeds.kite import wire
from tickstream.model import Mode, Tick
from tickstream.sim._ticks import Columns, build_depths, build_ticks
from tickstream.sim.market import Market
from tickstream.sim.universe import default_universe, reference_prices

START = ist_ns(dt.date(2025, 11, 21), 10)
STEP = 50_000_000  # 50 ms


def _market(seed: int) -> Market:
    return Market(
        default_universe(), seed=seed, start_ns=START, reference_prices=reference_prices()
    )


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**16), scale=st.sampled_from([1.0, 20.0, 1000.0]))
def test_kite_full_packets_equal_encode_packet_byte_for_byte(seed: int, scale: float) -> None:
    market = _market(seed)
    checked = 0

    for k in range(1, 6):
        ticks = market.step(START + k * STEP, tick_rate_scale=scale)
        if not ticks:
            continue
        packets = market.kite_full_packets(ticks)

        assert packets is not None and len(packets) == len(ticks)
        for tick, packet in zip(ticks, packets, strict=True):
            if tick.exchange == "INDICES":
                assert packet is None  # index packets take encode_packet
            else:
                assert packet == wire.encode_packet(tick, Mode.FULL)
                checked += 1
    assert checked > 0


def test_kite_full_packets_cover_options_with_open_interest() -> None:
    market = _market(3)

    ticks = market.step(START + STEP, tick_rate_scale=1000.0)
    packets = market.kite_full_packets(ticks)

    assert packets is not None
    options = [(t, p) for t, p in zip(ticks, packets, strict=True) if t.exchange == "NFO"]
    assert options and all(t.oi is not None for t, _ in options)
    assert [p for _, p in options] == [wire.encode_packet(t, Mode.FULL) for t, _ in options]


def test_kite_full_packets_of_another_list_is_none() -> None:
    market = _market(5)
    ticks = market.step(START + STEP, tick_rate_scale=1000.0)

    stale = market.kite_full_packets(list(ticks))  # equal, but not the step's own list
    market.step(START + 2 * STEP, tick_rate_scale=1000.0)
    previous = market.kite_full_packets(ticks)

    assert (stale, previous) == (None, None)


def _batch_columns(n: int) -> dict[str, np.ndarray]:
    cols: dict[str, np.ndarray] = {
        name: np.zeros(n, dtype=np.int64) for name in wire.FULL_BATCH_FIELDS
    }
    cols["itok"] = np.array([(100 + k) << 8 | 1 for k in range(n)], dtype=np.int64)
    cols["div"] = np.full(n, 100.0)
    for name in ("ltp", "atp", "open", "high", "low", "close"):
        cols[name] = np.full(n, 12.5)
    for side in ("bid", "ask"):
        cols[f"{side}_price"] = np.full((n, 5), 12.45)
        cols[f"{side}_qty"] = np.full((n, 5), 10, dtype=np.int64)
        cols[f"{side}_orders"] = np.full((n, 5), 2, dtype=np.int64)
    cols["ts"] = np.full(n, 1_763_699_400, dtype=np.int64)
    return cols


def test_encode_full_batch_out_of_range_row_is_none_others_encoded() -> None:
    cols = _batch_columns(3)
    cols["volume"][1] = 1 << 32  # beyond uint32
    cols["ask_orders"][2, 4] = 1 << 16  # beyond uint16

    packets = wire.encode_full_batch(cols)

    assert packets[1:] == [None, None]
    assert packets[0] is not None and len(packets[0]) == 184
    values = wire._FULL.unpack(packets[0])  # type: ignore[attr-defined]
    assert values[:2] == (100 << 8 | 1, 1250)
    assert values[16:19] == (10, 1245, 2)  # first bid level: qty, price, orders


def test_snapshot_many_equals_snapshot_none_for_unknown() -> None:
    market = _market(9)
    market.step(START + STEP, tick_rate_scale=50.0)
    keys = [("NSE", 2885), ("NSE", 999_999), ("INDICES", 1001), ("NSE", 2885)]

    many = market.snapshot_many(keys)

    expected: list[Tick | None] = [
        market.snapshot("NSE", 2885), None, market.snapshot("INDICES", 1001),
        market.snapshot("NSE", 2885),
    ]  # fmt: skip
    assert many == expected


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**16), scale=st.sampled_from([2.0, 50.0, 1000.0]))
def test_packed_ticks_equal_per_field_build_for_steps_and_snapshots(
    seed: int, scale: float
) -> None:
    market = _market(seed)

    for k in range(1, 4):
        ticks = market.step(START + k * STEP, tick_rate_scale=scale)
        step = market._last_step
        snapshots = market.snapshots()
        every = np.arange(len(market.instruments), dtype=np.int64)

        cols = Columns(**market._columns())
        if step is not None:
            _, idx, ts = step
            assert ticks == build_ticks(market.instruments, cols, idx, ts, build_depths(cols, idx))
        expected = build_ticks(market.instruments, cols, every, None, build_depths(cols, every))
        assert snapshots == expected
        assert {t.exchange for t in snapshots} == {"INDICES", "NSE", "NFO"}
