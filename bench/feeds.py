"""Feed decode and client throughput: ticks/s and CPU per 10k ticks, ours beside a baseline.

Decode (pure CPU, best of N): one Kite frame of 50 full-mode packets through
``kite.wire.decode_frame`` vs the official SDK's ``KiteTicker._parse_binary`` (dicts); one
Angel SNAP_QUOTE packet through ``angelone.wire.decode_packet`` vs the SDK's
``SmartWebSocketV2._parse_binary_data``.

Client (end to end through one connection): a loopback server in a *separate process* blasts
pre-encoded Kite frames (50 full packets each) as fast as the socket takes them; in this
process our ``KiteTicker`` (supervisor, liveness watchdog, registry, bounded queue, symbol
resolution) delivers them to a consumer of ``events()``. Baseline: a bare ``websockets`` loop
that receives and decodes the same frames (with the same symbol resolution) and nothing else.
CPU per 10k ticks is this process's CPU time (the server's is not counted), so the shared
machine's load does not skew it.

    .venv/bin/python bench/feeds.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import logging
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tickstream.feeds.adapter import FeedConfig
from tickstream.feeds.angelone import wire as angel_wire
from tickstream.feeds.kite import wire as kite_wire
from tickstream.feeds.kite.auth import KiteAuth
from tickstream.feeds.kite.ticker import KiteTicker
from tickstream.model import Depth, DepthLevel, Instrument, Mode, Tick

from _common import Result, best_rate, emit

PACKETS = 50
T0 = 1_732_000_000


def sample_tick(token: int) -> Tick:
    levels = tuple(DepthLevel(2456.75 - i * 0.05, 100 + i, 3) for i in range(5))
    asks = tuple(DepthLevel(2456.80 + i * 0.05, 90 + i, 2) for i in range(5))
    return Tick(
        exchange="NSE", token=token, symbol=f"S{token}", source="kite", ts_exchange=T0 * 10**9,
        ts_recv=T0 * 10**9, ltp=2456.75, ltq=10, atp=2450.5, volume=1_234_567,
        total_buy_qty=5000, total_sell_qty=4000, open=2440.0, high=2460.0, low=2430.0,
        close=2445.0, oi=0, oi_day_high=0, oi_day_low=0, ts_last_trade=T0 * 10**9,
        depth=Depth(levels, asks), bid=levels[0].price, ask=asks[0].price, mode=Mode.FULL,
        upper_circuit=2700.0, lower_circuit=2200.0, high_52w=3000.0, low_52w=2000.0,
    )  # fmt: skip


def kite_frame() -> bytes:
    return kite_wire.encode_frame(
        [kite_wire.encode_packet(sample_tick(1000 + i), Mode.FULL) for i in range(PACKETS)]
    )


def _smart_websocket_v2() -> Any:
    # SmartApi's package __init__ makes a network request at import time: load the module alone.
    spec = importlib.util.find_spec("SmartApi")
    assert spec is not None and spec.submodule_search_locations
    path = f"{next(iter(spec.submodule_search_locations))}/smartWebSocketV2.py"
    file_spec = importlib.util.spec_from_file_location("_bench_smart_ws_v2", path)
    assert file_spec is not None and file_spec.loader is not None
    module = importlib.util.module_from_spec(file_spec)
    file_spec.loader.exec_module(module)
    return module.SmartWebSocketV2


def decode_results(repeat: int, loops: int) -> list[Result]:
    frame = kite_frame()
    angel = angel_wire.encode_packet(
        sample_tick(2885), angel_wire.AngelMode.SNAP_QUOTE, exchange_type=1, token="2885"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from kiteconnect import KiteTicker as SdkTicker

        sdk_kite: Any = object.__new__(SdkTicker)  # no __init__: no reactor, no connection
        sdk_angel: Any = object.__new__(_smart_websocket_v2())  # no log folder, no socket

    def ours_kite() -> int:
        return sum(len(kite_wire.decode_frame(frame, ts_recv=0).ticks) for _ in range(loops))

    def sdk_kite_parse() -> int:
        return sum(len(sdk_kite._parse_binary(frame)) for _ in range(loops))

    def ours_angel() -> int:
        return sum(len(angel_wire.decode_packet(angel, ts_recv=0).ticks) for _ in range(loops * 20))

    def sdk_angel_parse() -> int:
        for _ in range(loops * 20):
            sdk_angel._parse_binary_data(angel)
        return loops * 20

    return [
        Result("decode kite full (50/frame)", best_rate(ours_kite, repeat),
               best_rate(sdk_kite_parse, repeat), "ticks/s",
               notes="baseline: kiteconnect KiteTicker._parse_binary"),
        Result("decode angel snap_quote", best_rate(ours_angel, repeat),
               best_rate(sdk_angel_parse, repeat), "ticks/s",
               notes="baseline: SmartWebSocketV2._parse_binary_data"),
    ]  # fmt: skip


SERVER = r"""
import asyncio, sys
from websockets.asyncio.server import serve
frame = sys.stdin.buffer.read()
frames = int(sys.argv[1])
async def handler(ws):
    await ws.recv()  # the client's subscribe
    for _ in range(frames):
        await ws.send(frame)
    await ws.close()
async def main():
    async with serve(handler, "127.0.0.1", 0, compression=None, max_size=2**22) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()
asyncio.run(main())
"""


@contextlib.contextmanager
def blaster(frames: int):  # type: ignore[no-untyped-def]
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(frames)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(kite_frame())
    proc.stdin.close()
    port = int(proc.stdout.readline())
    try:
        yield f"ws://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        proc.wait()


async def ours_client(url: str, total: int) -> tuple[float, float]:
    auth = KiteAuth("key", access_token="token")
    feed = KiteTicker(auth, FeedConfig(queue_max_batches=100_000), url=url, heartbeat_secs=5.0)
    await feed.subscribe(
        [Instrument(exchange="NSE", token=1000 + i, symbol=f"S{i}") for i in range(PACKETS)],
        Mode.FULL,
    )
    got = 0
    wall, cpu = time.perf_counter(), time.process_time()
    await feed.start()
    async for event in feed.events():
        if isinstance(event, list):
            got += len(event)
            if got >= total:
                break
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    await feed.stop()
    return got / wall, cpu / got * 10_000


async def bare_client(url: str, total: int) -> tuple[float, float]:
    from websockets.asyncio.client import connect

    symbols = {("NSE", 1000 + i): f"S{i}" for i in range(PACKETS)}

    def resolve(exchange: str, token: int) -> str | None:
        return symbols.get((exchange, token))

    got = 0
    wall, cpu = time.perf_counter(), time.process_time()
    async with connect(url, compression=None, max_size=2**22, ping_interval=None) as ws:
        await ws.send("[]")
        while got < total:
            msg = await ws.recv()
            if isinstance(msg, bytes):
                ticks = kite_wire.decode_frame(msg, ts_recv=time.time_ns(), resolve=resolve).ticks
                got += len(ticks)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return got / wall, cpu / got * 10_000


def client_results(frames: int, repeat: int) -> list[Result]:
    total = frames * PACKETS
    best: dict[str, tuple[float, float]] = {}
    for name, fn in (("ours", ours_client), ("bare", bare_client)):
        for _ in range(repeat):
            with blaster(frames) as url:
                rate, cpu10k = asyncio.run(fn(url, total))
            old = best.get(name)
            best[name] = (max(rate, old[0]), min(cpu10k, old[1])) if old else (rate, cpu10k)
    (o_rate, o_cpu), (b_rate, b_cpu) = best["ours"], best["bare"]
    note = "baseline: bare websockets recv + decode_frame (+symbols), no supervisor/queue"
    return [
        Result("kite client, one connection", o_rate, b_rate, "ticks/s", notes=note),
        Result("kite client CPU per 10k ticks", o_cpu * 1000, b_cpu * 1000, "ms",
               higher_is_better=False, notes=note),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    repeat, loops, frames = (2, 300, 400) if args.quick else (3, 1000, 3000)
    results = decode_results(repeat, loops) + client_results(frames, 2 if args.quick else 3)
    emit("feeds", results)


if __name__ == "__main__":
    main()
