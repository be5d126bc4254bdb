"""The simulator fed by a recorded day: the real per-second NIFTY 50 of 2022-11-21 (SOURCES.md
§4b), stored as Kite-token ticks, drives the simulator's NIFTY 50, and a Kite WebSocket client
receives the recorded values in the Kite binary protocol."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect

from tickstream.calendar import ist_ns
from tickstream.feeds.kite import wire
from tickstream.model import Instrument, Mode, Tick
from tickstream.replay import day_range
from tickstream.sim.clock import SimClock
from tickstream.sim.replay_source import recorded_price_source, recorded_sim_config, sim_key
from tickstream.sim.server import SimServer
from tickstream.sim.universe import default_universe
from tickstream.storage.duckdb_store import DuckDBStore

FILE = Path("/work/shared/data/ticks_nifty50_per_second/NIFTY50_index_per_second_2022-11-21.csv")
DAY = dt.date(2022, 11, 21)
RECORDED = Instrument(exchange="INDICES", token=256265, symbol="NIFTY 50")
NIFTY_KITE = 256265  # the simulator's INDICES:1001 (1001 << 8 | 9)

pytestmark = pytest.mark.skipif(not FILE.exists(), reason="shared NIFTY data not present")


def recorded_values() -> dict[int, float]:
    out = {}
    for line in FILE.read_text().splitlines():
        stamp, value = line.split(",")
        h, m, s = (int(x) for x in stamp[11:].split(":"))
        out[ist_ns(DAY, h, m, s)] = float(value)
    return out


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[DuckDBStore]:
    s = DuckDBStore(tmp_path / "ts.duckdb")
    await s.open()
    await s.write_ticks(
        [
            Tick(
                exchange="INDICES", token=256265, symbol="NIFTY 50", source="kite",
                ts_exchange=ts, ts_recv=ts, ltp=v,
            )
            for ts, v in recorded_values().items()
        ]
    )  # fmt: skip
    yield s
    await s.close()


def test_sim_key_matches_by_key_then_symbol() -> None:
    universe = default_universe()
    assert sim_key(RECORDED, universe) == "INDICES:1001"
    assert sim_key(Instrument(exchange="NSE", token=2885, symbol="X"), universe) == "NSE:2885"
    with pytest.raises(KeyError, match="not in the simulator's universe"):
        sim_key(Instrument(exchange="NSE", token=1, symbol="NOSUCH"), universe)


async def test_recorded_price_source_is_the_stored_series(store: DuckDBStore) -> None:
    # Act
    source = await recorded_price_source(
        store, [RECORDED], *day_range(DAY), universe=default_universe()
    )
    # Assert
    assert list(source) == ["INDICES:1001"]
    assert source["INDICES:1001"] == sorted(recorded_values().items())


async def test_sim_fed_by_recorded_day_serves_recorded_values_over_kite_wire(
    store: DuckDBStore,
) -> None:
    # Arrange: the simulator's clock at 11:00 IST of the recorded day, stepped by hand
    start = ist_ns(DAY, 11)
    clock = SimClock("fixed", start_ns=start, monotonic_ns=lambda: 0)
    config = await recorded_sim_config(
        store, [RECORDED], *day_range(DAY), clock=clock, autostep=False, seed=3
    )
    values = recorded_values()
    at = [ist_ns(DAY, 11, 0, 30), ist_ns(DAY, 13, 45, 7), ist_ns(DAY, 15, 29, 59)]
    got: list[float | None] = []
    async with SimServer(config) as sim:
        c = sim.credentials
        url = f"{sim.kite_ws_url}?api_key={c.kite_api_key}&access_token={c.kite_access_token}"
        async with connect(url) as ws:
            await ws.send(wire.encode_subscribe([NIFTY_KITE]))
            await ws.send(wire.encode_mode(Mode.FULL, [NIFTY_KITE]))
            # Act
            for ts in at:
                sim.step_once(ts)
                got.append(await next_nifty_ltp(ws, ts))
    # Assert: the value recorded at (or last before) each step, on the 0.05 grid
    want = [round(values[max(t for t in values if t <= ts)] * 20) / 20 for ts in at]
    assert got == want


async def next_nifty_ltp(ws: ClientConnection, ts: int) -> float | None:
    """The NIFTY ltp in the first data frame stamped ``ts`` (in Kite's whole seconds)."""
    while True:
        msg = await asyncio.wait_for(ws.recv(), 5)
        if not isinstance(msg, bytes) or msg == wire.HEARTBEAT:
            continue
        for t in wire.decode_frame(msg, ts_recv=0, source="sim").ticks:
            if t.token == 1001 and t.ts_exchange == ts // 10**9 * 10**9:
                return t.ltp
