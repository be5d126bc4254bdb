"""SimConfig.on_send: the send-time hook the end-to-end benchmark stamps with."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence

import pytest
from websockets.asyncio.client import ClientConnection, connect

from tickstream.calendar import ist_ns
from tickstream.feeds.kite import wire
from tickstream.model import Tick
from tickstream.sim.clock import SimClock
from tickstream.sim.server import SimConfig, SimServer

pytestmark = pytest.mark.timeout(60)

START = ist_ns(dt.date(2025, 11, 21), 10)
RELIANCE_ITOK = 738561  # NSE 2885


def _config(sent: list[tuple[str, Tick, str]], *, memory: int) -> SimConfig:
    def on_send(conn_id: str, pairs: Sequence[tuple[Tick, str]]) -> None:
        sent.extend((conn_id, tick, mode) for tick, mode in pairs)

    clock = SimClock("fixed", start_ns=START, monotonic_ns=lambda: 0)
    return SimConfig(
        seed=3, autostep=False, clock=clock, heartbeat_s=0.2, on_send=on_send,
        emission_memory=memory,
    )  # fmt: skip


async def _next_ticks(ws: ClientConnection) -> list[Tick]:
    while True:
        msg = await asyncio.wait_for(ws.recv(), 5)
        if isinstance(msg, bytes) and msg != wire.HEARTBEAT:
            return wire.decode_frame(msg, ts_recv=0, source="sim").ticks


async def _subscribe_and_step(sim: SimServer) -> tuple[list[Tick], list[Tick]]:
    """(ticks the client decoded after one step, the step's ticks for RELIANCE)."""
    c = sim.credentials
    url = f"{sim.kite_ws_url}?api_key={c.kite_api_key}&access_token={c.kite_access_token}"
    async with connect(url) as ws:
        await ws.send(f'{{"a":"mode","v":["full",[{RELIANCE_ITOK}]]}}')
        await _next_ticks(ws)  # the snapshot sent on subscription
        stepped: list[Tick] = []
        n = 0
        while not stepped:  # a step in which RELIANCE traded
            n += 1
            ticks = sim.step_once(START + n * 10**9)
            stepped = [t for t in ticks if t.token == 2885]
        return await _next_ticks(ws), stepped


@pytest.mark.parametrize("memory", [0, 100])
async def test_sim_on_send_data_frame_written_reports_its_ticks(memory: int) -> None:
    # Arrange
    sent: list[tuple[str, Tick, str]] = []
    # Act
    async with SimServer(_config(sent, memory=memory)) as sim:
        received, stepped = await _subscribe_and_step(sim)
        kept = len(sim.emissions)
    # Assert: the snapshot frame, then the step's tick, both in full mode on that connection
    assert [(t.token, t.volume) for t in received] == [(2885, stepped[0].volume)]
    assert [mode for _, _, mode in sent] == ["full", "full"]
    assert sent[-1][1] is stepped[0]
    assert len({conn_id for conn_id, _, _ in sent}) == 1
    assert kept == min(memory, 2)
