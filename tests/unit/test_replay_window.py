"""Window reads (one DuckDB query per stretch of time for every replayed instrument) give exactly
the ticks and the order of per-instrument keyset pages merged by the heap."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import msgspec
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tickstream.calendar import ist_ns
from tickstream.model import Instrument, Tick
from tickstream.replay import Replay, ReplaySpec, day_range
from tickstream.replay.window import MAX_WIDTH_NS, MIN_WIDTH_NS, next_width, window_chunks
from tickstream.storage.base import TickKey, tick_id_of
from tickstream.storage.duckdb_store import DuckDBStore

DAY = dt.date(2024, 11, 21)
T0 = ist_ns(DAY, 9, 15)
NS = 1_000_000_000
_enc = msgspec.msgpack.Encoder()


def key(t: Tick) -> TickKey:
    return TickKey(t.ts_exchange, t.ts_recv, tick_id_of(_enc.encode(t)))


def make_tick(token: int, ts: int, recv: int, n: int, source: str) -> Tick:
    return Tick(
        exchange="NFO" if token % 2 else "NSE", token=token, symbol=f"S{token}", source=source,
        ts_exchange=ts, ts_recv=ts + recv, ltp=100.0 + n, volume=10 * n,
    )  # fmt: skip


def oracle(ticks: list[Tick], insts: list[Instrument], after: dict[str, TickKey]) -> list[Tick]:
    """The replay order, computed directly: (ts_exchange, rank, store key), after positions."""
    rank = {i.key: r for r, i in enumerate(insts)}
    keep = [
        t for t in ticks
        if t.key in rank and t.source != "replay"
        and (t.key not in after or key(t) > after[t.key])
    ]  # fmt: skip
    return sorted(keep, key=lambda t: (t.ts_exchange, rank[t.key], key(t)))


tick_rows = st.lists(
    st.tuples(
        st.integers(1, 5),  # token (odd: NFO, even: NSE)
        st.integers(0, 6),  # ts in 100 ms steps: many equal stamps across instruments
        st.integers(0, 3),  # ts_recv offset: equal stamps inside one instrument too
        st.sampled_from(["kite", "kite", "angel", "replay"]),
    ),
    min_size=0,
    max_size=120,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=tick_rows,
    tokens=st.sets(st.integers(1, 5), min_size=1),
    cuts=st.dictionaries(st.integers(1, 5), st.integers(0, 30)),
    target=st.integers(1, 8),
)
@example(  # five instruments on one stamp, a limit of 4: the window is cut inside the stamp
    rows=[(t, 0, 0, "kite") for t in range(1, 6)], tokens={1, 2, 3, 4, 5}, cuts={}, target=1
)
def test_windows_equal_the_merged_per_instrument_order(
    rows: list[tuple[int, int, int, str]], tokens: set[int], cuts: dict[int, int], target: int
) -> None:
    # Arrange: rows with ties everywhere; resume positions cut into some instruments' histories;
    # a tiny target so windows are truncated by the row limit (4 x target) and resized often
    ticks = [
        make_tick(tok, T0 + step * 100_000_000, recv, n, src)
        for n, (tok, step, recv, src) in enumerate(rows)
    ]
    insts = sorted(
        (Instrument(exchange="NFO" if t % 2 else "NSE", token=t, symbol=f"S{t}") for t in tokens),
        key=lambda i: (i.exchange, i.token),
    )
    after: dict[str, TickKey] = {}
    for inst in insts:
        own = sorted(key(t) for t in ticks if t.key == inst.key and t.source != "replay")
        if inst.token in cuts and own:
            after[inst.key] = own[min(cuts[inst.token], len(own) - 1)]
    lo, hi = day_range(DAY)

    async def run() -> list[Tick]:
        store = DuckDBStore()
        await store.open()
        try:
            await store.write_ticks(ticks)
            out: list[Tick] = []
            async for chunk in window_chunks(
                store.query_tick_window, insts, lo, hi, after, target=target
            ):
                out.extend(chunk)
            return out
        finally:
            await store.close()

    # Act
    got = asyncio.run(run())

    # Assert
    assert got == oracle(ticks, insts, after)


async def test_replay_reads_the_same_ticks_by_windows_and_by_pages(tmp_path: Path) -> None:
    # Arrange: 30 instruments on two exchanges, ticks every 250 ms with shared stamps
    ticks = [
        make_tick(tok, T0 + k * 250_000_000 + (tok % 3) * 1_000, tok % 2, k, "kite")
        for k in range(120)
        for tok in range(1, 31)
    ]
    store = DuckDBStore(tmp_path / "ts.duckdb")
    await store.open()
    await store.write_ticks(ticks)
    insts = tuple(
        sorted(
            (Instrument(exchange=t.exchange, token=t.token, symbol=t.symbol) for t in ticks[:30]),
            key=lambda i: (i.exchange, i.token),
        )
    )
    lo, hi = day_range(DAY)
    spec = ReplaySpec(insts, lo, hi, page_size=500, batch_size=64)

    async def collect(windows: bool) -> list[Tick]:
        got: list[Tick] = []

        async def deliver(batch: list[Tick]) -> None:
            got.extend(batch)

        await Replay(store, spec, read_windows=windows).run(deliver)
        return got

    # Act
    by_windows, by_pages = await collect(True), await collect(False)
    await store.close()

    # Assert
    assert len(by_windows) == 3600
    assert by_windows == by_pages
    assert {t.source for t in by_windows} == {"replay"}
    assert [t.ts_exchange for t in by_windows] == sorted(t.ts_exchange for t in ticks)


def test_next_width_follows_density_within_4x_and_bounds() -> None:
    assert next_width(60 * NS, 0, 10_000) == 240 * NS  # empty: widen 4x
    assert next_width(60 * NS, 5_000, 10_000) == 120 * NS  # half the target: twice as wide
    assert next_width(60 * NS, 10_000_000, 10_000) == 15 * NS  # far too dense: at most 4x less
    assert next_width(60 * NS, 1, 10_000) == 240 * NS  # far too sparse: at most 4x more
    assert next_width(MIN_WIDTH_NS, 10**9, 1) == MIN_WIDTH_NS
    assert next_width(MAX_WIDTH_NS, 0, 1) == MAX_WIDTH_NS
