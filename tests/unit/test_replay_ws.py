"""``/ws/replay``: one client plays a stored day through a private engine, with controls.

Served by a real uvicorn on an ephemeral loopback port; the client is the websockets library.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tickstream.calendar import ist_ns
from tickstream.model import Instrument, Tick
from tickstream.replay_ws import replay_router
from tickstream.storage.duckdb_store import DuckDBStore

DAY = dt.date(2024, 11, 21)
NS = 1_000_000_000
REL = Instrument(exchange="NSE", token=2885, symbol="RELIANCE")
TIMEOUT = 10.0


def tick(ts: int, n: int) -> Tick:
    return Tick(
        exchange="NSE", token=2885, symbol="RELIANCE", source="kite",
        ts_exchange=ts, ts_recv=ts + 1000, ltp=1000.0 + n, volume=10 * n,
    )  # fmt: skip


def stored_ticks() -> list[Tick]:
    """09:15:00-09:15:05 and 09:20:00-09:20:04, one per second."""
    early = [tick(ist_ns(DAY, 9, 15, s), s) for s in range(6)]
    late = [tick(ist_ns(DAY, 9, 20, s), 100 + s) for s in range(5)]
    return early + late


@pytest.fixture
async def base_url(tmp_path: Path) -> AsyncIterator[str]:
    store = DuckDBStore(tmp_path / "ts.duckdb")
    await store.open()
    await store.write_ticks(stored_ticks())
    await store.upsert_instruments([REL])
    app = FastAPI()
    app.include_router(replay_router(lambda: store))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"ws://127.0.0.1:{port}/ws/replay"
    server.should_exit = True
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await store.close()


async def recv(ws: ClientConnection) -> dict[str, Any]:
    msg: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    return msg


async def send(ws: ClientConnection, msg: dict[str, Any]) -> None:
    await ws.send(json.dumps(msg))


async def messages_until_end(ws: ClientConnection) -> list[dict[str, Any]]:
    out = []
    while True:
        msg = await recv(ws)
        out.append(msg)
        if msg["type"] == "end":
            return out


async def test_replay_ws_max_speed_streams_ticks_candles_then_end(base_url: str) -> None:
    # Act
    async with connect(f"{base_url}?date={DAY}&symbols=RELIANCE&speed=max") as ws:
        start = await recv(ws)
        rest = await messages_until_end(ws)
    # Assert
    assert start["type"] == "start"
    assert start["instruments"] == [{"exchange": "NSE", "token": 2885, "symbol": "RELIANCE"}]
    assert start["speed"] is None
    ticks = [t for m in rest if m["type"] == "ticks" for t in m["data"]]
    assert [t["ltp"] for t in ticks] == [1000.0 + s for s in range(6)] + [
        1100.0 + s for s in range(5)
    ]
    assert {t["source"] for t in ticks} == {"replay"}
    one_minute = [
        c for m in rest if m["type"] == "candles" for c in m["data"] if c["interval"] == "1m"
    ]
    assert [(c["start"], c["open"], c["close"]) for c in one_minute] == [
        (ist_ns(DAY, 9, 15), 1000.0, 1005.0),
        (ist_ns(DAY, 9, 20), 1100.0, 1104.0),
    ]
    assert rest[-1] == {"type": "end", "emitted": 11}


async def test_replay_ws_pause_seek_speed_resume_skip_the_gap(base_url: str) -> None:
    # Arrange: real-time speed, so the replay is still at 09:15 when the controls arrive
    async with connect(f"{base_url}?date={DAY}&symbols=NSE:2885&speed=1") as ws:
        assert (await recv(ws))["type"] == "start"
        first = await recv(ws)
        # Act
        await send(ws, {"action": "pause"})
        paused = await recv(ws)
        await send(ws, {"action": "seek", "time": "09:20"})
        await recv(ws)
        await send(ws, {"action": "speed", "speed": "max"})
        await recv(ws)
        await send(ws, {"action": "resume"})
        rest = await messages_until_end(ws)
    # Assert
    assert [t["ltp"] for t in first["data"]] == [1000.0]
    assert paused["type"] == "state" and paused["paused"] is True
    ticks = [t["ltp"] for m in rest if m["type"] == "ticks" for t in m["data"]]
    assert ticks == [1100.0 + s for s in range(5)]


async def test_replay_ws_bad_query_sends_error_and_closes_1008(base_url: str) -> None:
    # Act
    async with connect(f"{base_url}?date=2024-13-40&symbols=RELIANCE") as ws:
        error = await recv(ws)
        with pytest.raises(ConnectionClosed) as closed:
            await recv(ws)
    # Assert
    assert error["type"] == "error"
    assert "month must be in 1..12" in error["message"]
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


async def test_replay_ws_unknown_action_is_an_error_message(base_url: str) -> None:
    # Arrange
    async with connect(f"{base_url}?date={DAY}&symbols=RELIANCE&speed=0.001") as ws:
        await recv(ws)
        await recv(ws)  # the first tick is due at once
        # Act
        await send(ws, {"action": "rewind"})
        reply = await recv(ws)
    # Assert
    assert reply["type"] == "error"
    assert "unknown action 'rewind'" in reply["message"]
