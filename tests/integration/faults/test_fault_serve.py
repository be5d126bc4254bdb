"""The serving side under faults: a WebSocket client that never reads must cost nobody else a
tick; the accounting is exposed in /stats and /metrics."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from tickstream.serve.security import KeyStore, Scope

# The whole fault suite runs under TZ=UTC and TZ=Asia/Kolkata: verdicts must not depend on it.
pytestmark = pytest.mark.usefixtures("tz")


def _read_key(path: Path) -> str:
    store = KeyStore.load(path)
    key, _ = store.create([Scope.READ], name="fault-suite", rate_per_sec=100.0, burst=100)
    store.save()
    return key


async def test_fault_ws_client_never_reads_is_cut_off_and_nothing_else_lost(
    fault_run: Callable[..., Any], no_loss: Callable[..., None], tmp_path: Path
) -> None:
    # Arrange: a client subscribes to every tick, then stops reading its socket
    keys = tmp_path / "keys.json"
    key = _read_key(keys)
    run = await fault_run(serve=True, api_key_file=keys, ws_client_queue_max=50, symbols=())
    url = f"ws://127.0.0.1:{run.asm.server.port}/ws"
    async with connect(url, additional_headers={"X-API-Key": key}, max_queue=1) as ws:
        symbols = [i.symbol for i in run.asm.instruments]
        await ws.send(json.dumps({"action": "subscribe", "tokens": symbols, "channels": ["ticks"]}))
        await ws.recv()  # "subscribed"
        ws.transport.pause_reading()
        hub = run.asm.server.server.config.app.state.serve.hub
        # Act: the slow client's own queue overflows (counted) while the pipeline runs on
        await run.wait_for(  # bound generous: overflow time depends on machine load
            "the slow client's queue to overflow", lambda: hub.stats()["dropped"] > 0, timeout=45
        )
        await run.wait_more_ticks(1000, timeout=30)
        stats = hub.stats()
    verdict = await run.finish()
    # Assert: only that client lost messages; the hub kept up with the bus; the store lost none
    assert stats["bus_dropped"] == 0, stats
    no_loss(verdict)
    assert verdict.accounting["feed"]["dropped_batches"] == 0


async def test_fault_accounting_exposed_in_stats_and_metrics(
    fault_run: Callable[..., Any], tmp_path: Path
) -> None:
    # Arrange
    keys = tmp_path / "keys.json"
    key = _read_key(keys)
    run = await fault_run(serve=True, api_key_file=keys)
    run.sim.faults.set(None, unknown_every=3)
    await run.wait_more_ticks(200)
    base = f"http://127.0.0.1:{run.asm.server.port}"
    # Act
    async with httpx.AsyncClient(timeout=5.0, headers={"X-API-Key": key}) as client:
        stats = (await client.get(f"{base}/stats")).json()
        metrics = (await client.get(f"{base}/metrics")).text
    await run.asm.runtime.stop()
    # Assert
    doc = stats["runtime"]["accounting"]
    assert set(doc["invariants"]) >= {"packets", "pipeline", "published", "stored"}
    assert doc["invariants"]["packets"] is True
    assert doc["feed"]["rejected"]["unknown_length"] > 0
    assert doc["pipeline"]["accepted"] > 0
    assert 'tickstream_runtime_accounting_invariants{key="pipeline"} 1.0' in metrics
    assert 'tickstream_runtime_accounting_feed_rejected{key="unknown_length"}' in metrics
