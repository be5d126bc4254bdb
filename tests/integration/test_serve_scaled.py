"""``tickstream serve`` in the scaled mode against the real Redis and PostgreSQL: backfill from the
Redis ring buffer, live ticks over Redis pub/sub, history from PostgreSQL, all through the app."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tickstream.bus.redis_bus import RedisBus
from tickstream.config import Settings
from tickstream.model import NS_PER_SEC, Candle, Instrument, Interval, Tick
from tickstream.pipeline.engine import TOPIC_TICKS
from tickstream.serve.app import create_app
from tickstream.serve.scaled import build_scaled_context
from tickstream.serve.security import KeyStore, Scope
from tickstream.serve.server import HttpServer
from tickstream.storage import open_store
from tickstream.storage.ringbuffer import RedisRingBuffer

T0 = 1_733_111_100 * NS_PER_SEC  # 2024-12-02 09:15 IST


def _tick(token: int, i: int) -> Tick:
    return Tick(
        exchange="NSE",
        token=token,
        symbol=f"ITEST{token}",
        source="itest",
        ts_exchange=T0 + i * NS_PER_SEC,
        ts_recv=T0 + i * NS_PER_SEC,
        ltp=100.0 + i,
    )


class Served:
    def __init__(self, port: int, key: str, token: int) -> None:
        self.port, self.key, self.token = port, key, token


@pytest.fixture
async def served(services_env: dict[str, str], tmp_path: Path) -> AsyncIterator[Served]:
    token = random.randrange(800_000_000, 900_000_000)
    settings = Settings(data_dir=tmp_path, ring_buffer_ticks=20)
    store = await open_store(settings)
    await store.upsert_instruments(
        [Instrument(exchange="NSE", token=token, symbol=f"ITEST{token}")]
    )
    await store.write_candles(
        [
            Candle(
                exchange="NSE",
                token=token,
                symbol=f"ITEST{token}",
                interval=Interval.M1,
                start=T0 + m * 60 * NS_PER_SEC,
                open=1,
                high=2,
                low=0.5,
                close=1.0 + m,
            )
            for m in range(3)
        ]
    )
    await store.close()
    ring = RedisRingBuffer(services_env["REDIS_URL"], size=20)
    await ring.push([_tick(token, i) for i in range(5)])
    await ring.close()
    ctx, closers = await build_scaled_context(settings)
    keys = KeyStore()
    key, _ = keys.create([Scope.READ], save=False)
    server = HttpServer(create_app(ctx, keys=keys), "127.0.0.1", 0)
    await server.start()
    try:
        yield Served(server.port, key, token)
    finally:
        await server.stop()
        for _, close in reversed(closers):
            await close()


async def _recv(ws: ClientConnection, kind: str) -> dict[str, Any]:
    while True:
        msg: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if msg["type"] == kind:
            return msg


async def test_serve_scaled_backfill_from_redis_then_live_over_pubsub(
    served: Served, services_env: dict[str, str]
) -> None:
    url = f"ws://127.0.0.1:{served.port}/ws"
    publisher = RedisBus(services_env["REDIS_URL"])
    await publisher.start()
    try:
        async with connect(url, additional_headers={"X-API-Key": served.key}) as ws:
            await ws.send(json.dumps({"action": "subscribe", "tokens": [f"NSE:{served.token}"]}))
            reply = await _recv(ws, "subscribed")
            backfill = await _recv(ws, "backfill")
            await publisher.publish(TOPIC_TICKS, _tick(served.token, 99))
            live = await _recv(ws, "ticks")
    finally:
        await publisher.close()
    assert reply["accepted"] == [f"NSE:{served.token}"]
    assert [t["ltp"] for t in backfill["ticks"]] == [100.0, 101.0, 102.0, 103.0, 104.0]
    assert [t["ltp"] for t in live["data"]] == [199.0]


async def test_serve_scaled_candles_from_postgres(served: Served) -> None:
    params = {
        "instrument": f"NSE:{served.token}",
        "interval": "1m",
        "start": str(T0),
        "end": str(T0 + 3600 * NS_PER_SEC),
    }
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{served.port}") as client:
        r = await client.get(
            "/api/v1/historical/candles", params=params, headers={"X-API-Key": served.key}
        )
    assert r.status_code == 200
    assert [c["close"] for c in r.json()["candles"]] == [1.0, 2.0, 3.0]
    assert r.json()["symbol"] == f"ITEST{served.token}"
