"""Kite fan-out of a market step: the all-FULL fast path sends exactly what the general path does.

Two clients of one step: one in FULL mode on equities (the batch-encoded frame), one in QUOTE and
FULL mixed (the per-packet path); both frames must be ``encode_frame`` of ``encode_packet``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.client import ClientConnection, connect

from tickstream.calendar import NS, ist_ns
from tickstream.feeds.kite import wire
from tickstream.model import Instrument, Mode
from tickstream.sim.clock import SimClock
from tickstream.sim.faults import FaultPlan
from tickstream.sim.server import SimConfig, SimServer

pytestmark = pytest.mark.timeout(60)

START = ist_ns(dt.date(2025, 11, 21), 10)


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    clock = SimClock("fixed", start_ns=START, monotonic_ns=lambda: 0)
    config = SimConfig(
        seed=5, autostep=False, clock=clock, heartbeat_s=5.0, emission_memory=10_000,
        faults=FaultPlan(burst_factor=1000.0, burst_seconds=3600.0),
    )  # fmt: skip
    async with SimServer(config) as server:
        yield server


def _url(sim: SimServer) -> str:
    c = sim.credentials
    return f"{sim.kite_ws_url}?api_key={c.kite_api_key}&access_token={c.kite_access_token}"


async def _frame(ws: ClientConnection) -> bytes:
    while True:
        msg = await asyncio.wait_for(ws.recv(), 5)
        if isinstance(msg, bytes) and msg != wire.HEARTBEAT:
            return msg


async def _subscribed(ws: ClientConnection, modes: dict[Mode, list[int]]) -> None:
    for mode, tokens in modes.items():
        await ws.send(wire.encode_mode(mode, tokens))
        await _frame(ws)  # the current state of the newly moded tokens


async def test_kite_fanout_full_fast_path_and_mixed_modes_send_encode_packet_frames(
    sim: SimServer,
) -> None:
    equities = [wire.instrument_token(i.exchange, i.token)
                for i in sim.market.instruments if i.exchange == "NSE"]  # fmt: skip
    nifty = wire.instrument_token("INDICES", 1001)
    async with connect(_url(sim)) as full_ws, connect(_url(sim)) as mixed_ws:
        await _subscribed(full_ws, {Mode.FULL: equities})
        await _subscribed(
            mixed_ws, {Mode.QUOTE: equities[:10], Mode.FULL: [*equities[10:20], nifty]}
        )
        ticks = sim.step_once(START + 10 * NS)
        full_frame, mixed_frame = await _frame(full_ws), await _frame(mixed_ws)

    by_itok = {wire.instrument_token(t.exchange, t.token): t for t in ticks}
    assert set(equities) <= set(by_itok)  # x1000 burst: every equity traded
    want_full = wire.encode_frame([wire.encode_packet(by_itok[i], Mode.FULL)
                                   for i in by_itok if i in set(equities)])  # fmt: skip
    mixed = {i: Mode.QUOTE for i in equities[:10]} | dict.fromkeys(
        [*equities[10:20], nifty], Mode.FULL
    )
    want_mixed = wire.encode_frame([wire.encode_packet(t, mixed[i])
                                    for i, t in by_itok.items() if i in mixed])  # fmt: skip
    assert full_frame == want_full
    assert mixed_frame == want_mixed
    full_emitted = [e for e in sim.emissions if e.conn_id == "kite-1"][-len(equities) :]
    assert [(e.mode, e.tick) for e in full_emitted] == [
        ("full", by_itok[i]) for i in by_itok if i in set(equities)
    ]


async def test_kite_fanout_client_on_every_instrument_gets_every_packet_in_step_order() -> None:
    insts = [
        Instrument(exchange="NSE", token=500 + k, symbol=f"S{k}", instrument_type="EQ",
                   tick_size=0.05, lot_size=1)
        for k in range(40)
    ]  # fmt: skip
    clock = SimClock("fixed", start_ns=START, monotonic_ns=lambda: 0)
    config = SimConfig(
        instruments=insts, reference_prices={i.key: 250.0 for i in insts}, seed=2,
        autostep=False, clock=clock, heartbeat_s=5.0, emission_memory=1000,
        faults=FaultPlan(burst_factor=1000.0, burst_seconds=3600.0),
    )  # fmt: skip
    async with SimServer(config) as sim, connect(_url(sim)) as ws:
        await _subscribed(ws, {Mode.FULL: [wire.instrument_token("NSE", i.token) for i in insts]})
        ticks = sim.step_once(START + 10 * NS)
        frame = await _frame(ws)
        emitted = list(sim.emissions)[-len(ticks) :]

    assert len(ticks) == len(insts)
    assert frame == wire.encode_frame([wire.encode_packet(t, Mode.FULL) for t in ticks])
    assert [(e.mode, e.tick) for e in emitted] == [("full", t) for t in ticks]
