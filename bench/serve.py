"""Serve benchmark: WebSocket tick-to-client latency under load, and historical candle latency.

Setup (one run): a server child process (this file with ``--child``) runs two instances of the real
app under uvicorn over one DuckDB store (memory bus and ring buffer each): "a" is ours, "b" the
baseline that sends one WebSocket message per tick (``batch_max=1``). Ticks (10k/s across 500
instruments, a batch every 10 ms, ``ts_recv`` stamped at publish) go only to the instance being
measured. A probe process (``bench/_wsprobe.py``) opens 100 WebSocket clients, each subscribed to
``--per-client`` (default 5) instruments so that together they cover all 500, and records, per
tick, ``receive time - ts_recv`` (one host, one clock) twice: at the client's socket (the kernel's
receive time of the data, ``SO_TIMESTAMPNS``), which is what the server delivers, and after the
probe decoded the message, which adds the probe's own queueing: one interpreter reads all 100
connections, so a batch's last message waits for the other 99 to be parsed (``*_parsed``).

Rows (each with its latency histogram in ``extra``):
* ``ws tick-to-client p99`` — ours (batched fan-out) beside the one-message-per-tick baseline;
* ``ws p99 with a stalled client`` — the same clients while one extra client subscribed to all
  500 instruments never reads (it only loses its own oldest messages), beside the p99 without it;
* ``historical candles p99`` — ``GET /api/v1/historical/candles`` (one day of 1m bars with
  indicators, one keep-alive ``http.client`` connection) while ticks flow in (no WebSocket client
  connected), beside the bare ``store.query_candles`` call in the server. ``extra.idle``: the
  same with no ticks; ``extra.with_ws_clients``: the same requests while the probe's 100 clients
  receive their ticks (the issue's condition), with the clients' tick latency meanwhile in
  ``extra.ws_during``.

Targets: p99 tick-to-client < 5 ms; historical candles p99 < 20 ms. Both are latencies on a shared
machine: the host load average is recorded with the results.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Result, emit

N_INSTRUMENTS = 500
RATE = 10_000  # ticks per second in
BATCH_EVERY_S = 0.010
BUCKETS_MS = (0.5, 1, 2, 5, 10, 20, 50, 100)
CANDLE_INSTRUMENTS = 5


# ------------------------------------------------------------------------------------ child
async def child_main(data_dir: Path, quick: bool) -> None:
    """Two servers on one store: "a" batches (ours), "b" sends one message per tick (baseline).
    Each has its own bus; ticks are published only to the one being measured (stdin commands
    ``go a``, ``go b``, ``stop``)."""
    from tickstream.bus.memory import MemoryBus
    from tickstream.config import Settings
    from tickstream.serve.app import create_app
    from tickstream.serve.context import ServeContext
    from tickstream.serve.fanout import WsLimits
    from tickstream.serve.security import KeyStore, Scope
    from tickstream.serve.server import HttpServer
    from tickstream.storage.duckdb_store import DuckDBStore
    from tickstream.storage.ringbuffer import MemoryRingBuffer

    insts, ticks = _universe()
    store = DuckDBStore(data_dir / "bench.duckdb")
    await store.open()
    await store.upsert_instruments(insts)
    await store.write_candles(_day_of_candles(insts[:CANDLE_INSTRUMENTS]))
    settings = Settings(data_dir=data_dir, port=0)
    keys = KeyStore()
    key, _ = keys.create([Scope.READ], rate_per_sec=1e6, burst=1_000_000, save=False)
    servers: dict[str, tuple[Any, Any, Any]] = {}
    for name, batch_max in (("a", 2000), ("b", 1)):
        bus = MemoryBus()
        await bus.start()
        ctx = ServeContext(settings, bus, store, MemoryRingBuffer(100), None, insts)
        app = create_app(ctx, keys=keys, limits=WsLimits(queue_max=5000, batch_max=batch_max))
        server = HttpServer(app, "127.0.0.1", 0)
        await server.start()
        servers[name] = (bus, app, server)
    direct = await _direct_candles(store, insts[:CANDLE_INSTRUMENTS], 30 if quick else 300)
    if not os.environ.get("BENCH_NO_GC_FREEZE"):  # as Runtime.run does in tickstream serve/run
        from tickstream.runtime import freeze_startup_heap

        freeze_startup_heap()
    ports = {name: srv.port for name, (_, _, srv) in servers.items()}
    print(json.dumps({"ports": ports, "key": key, "direct_ms": direct}), flush=True)
    report = await _serve_commands(servers, ticks)
    print(json.dumps(report), flush=True)
    gc.unfreeze()  # before the objects go: nanobind (DuckDB) reports frozen ones as leaks
    for _, _, server in servers.values():
        await server.stop()
    await store.close()


async def _serve_commands(servers: dict[str, tuple[Any, Any, Any]], ticks: list[Any]) -> Any:
    from tickstream.pipeline.engine import TOPIC_TICKS

    loop = asyncio.get_running_loop()
    cpu: dict[str, float] = {}
    publisher: asyncio.Task[None] | None = None
    current, cpu0, t0 = "", 0.0, 0.0
    while True:
        cmd = (await loop.run_in_executor(None, sys.stdin.readline)).split()
        if publisher is not None:
            publisher.cancel()
            cpu[current] = (time.process_time() - cpu0) / (time.monotonic() - t0)
            publisher = None
        if not cmd or cmd[0] == "stop":
            stats = {name: app.state.serve.hub.stats() for name, (_, app, _) in servers.items()}
            return {"cpu_per_s": cpu, "ws": stats}
        current, cpu0, t0 = cmd[1], time.process_time(), time.monotonic()
        publisher = asyncio.create_task(_publish(servers[current][0], TOPIC_TICKS, ticks))


def _universe() -> tuple[list[Any], list[Any]]:
    from tickstream.model import Instrument, Mode, Tick

    insts = [
        Instrument(exchange="NSE", token=10_000 + i, symbol=f"SYM{i:03d}", tick_size=0.05)
        for i in range(N_INSTRUMENTS)
    ]
    ticks = [
        Tick(
            exchange="NSE",
            token=i.token,
            symbol=i.symbol,
            source="bench",
            ts_exchange=0,
            ts_recv=0,
            ltp=1000.0,
            ltq=10,
            volume=100_000,
            bid=999.95,
            ask=1000.05,
            bid_qty=50,
            ask_qty=40,
            open=990.0,
            high=1010.0,
            low=985.0,
            close=995.0,
            mode=Mode.QUOTE,
        )
        for i in insts
    ]
    return insts, ticks


def _day_of_candles(insts: list[Any]) -> list[Any]:
    import datetime as dt

    from tickstream.calendar import ist_ns
    from tickstream.model import Candle, Indicators, Interval

    start = ist_ns(dt.date(2024, 12, 2), 9, 15)
    ind = Indicators(ema_9=1.0, ema_21=1.0, rsi_14=50.0, bb_upper=2.0, bb_middle=1.0, bb_lower=0.5)
    return [
        Candle(
            exchange=i.exchange,
            token=i.token,
            symbol=i.symbol,
            interval=Interval.M1,
            start=start + m * 60_000_000_000,
            open=1.0,
            high=2.0,
            low=0.5,
            close=1.5,
            volume=100,
            ticks=10,
            indicators=ind,
        )
        for i in insts
        for m in range(375)
    ]


async def _direct_candles(store: Any, insts: list[Any], n: int) -> list[float]:
    import datetime as dt

    from tickstream.calendar import ist_ns
    from tickstream.model import Interval

    start = ist_ns(dt.date(2024, 12, 2), 9, 0)
    out = []
    for k in range(n):
        i = insts[k % len(insts)]
        t0 = time.perf_counter_ns()
        await store.query_candles(i.exchange, i.token, Interval.M1, start, start + 86_400 * 10**9)
        out.append((time.perf_counter_ns() - t0) / 1e6)
    return out


async def _publish(bus: Any, topic: str, templates: list[Any]) -> None:
    per_batch = int(RATE * BATCH_EVERY_S)
    replace = msgspec.structs.replace
    n = 0
    next_at = time.monotonic()
    while True:
        now = time.time_ns()
        batch = []
        for _ in range(per_batch):
            t = templates[n % len(templates)]
            batch.append(replace(t, ts_exchange=now, ts_recv=now, ltp=1000.0 + (n % 97) * 0.05))
            n += 1
        await bus.publish_many(topic, batch)
        next_at += BATCH_EVERY_S
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))


# ------------------------------------------------------------------------------------ parent
def start_child(data_dir: Path, quick: bool) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    data_dir.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, __file__, "--child", "--dir", str(data_dir)]
    proc = subprocess.Popen(  # this very script
        [*args, *(["--quick"] if quick else [])],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError("server child failed to start")
    info: dict[str, Any] = json.loads(line)
    return proc, info


def command(proc: subprocess.Popen[str], text: str) -> None:
    assert proc.stdin is not None
    proc.stdin.write(text + "\n")
    proc.stdin.flush()


def stop_child(proc: subprocess.Popen[str]) -> dict[str, Any]:
    assert proc.stdout is not None
    command(proc, "stop")
    out: dict[str, Any] = json.loads(proc.stdout.readline())
    proc.wait(30)
    return out


def _stalled_client(port: int, key: str) -> socket.socket:
    """Subscribes to every instrument over a raw socket, then never reads again."""
    from websockets.client import ClientProtocol
    from websockets.uri import parse_uri

    proto = ClientProtocol(parse_uri(f"ws://127.0.0.1:{port}/ws"))
    sock = socket.create_connection(("127.0.0.1", port))
    req = proto.connect()
    req.headers["X-API-Key"] = key
    proto.send_request(req)
    sock.sendall(b"".join(proto.data_to_send()))
    proto.receive_data(sock.recv(65536))
    tokens = [10_000 + i for i in range(N_INSTRUMENTS)]
    proto.send_text(json.dumps({"action": "subscribe", "tokens": tokens, "backfill": 0}).encode())
    sock.sendall(b"".join(proto.data_to_send()))
    return sock


async def measure_ws(
    port: int, key: str, clients: int, per: int, secs: float, stall: bool
) -> dict[str, list[float]]:
    """Tick latencies seen by ``clients`` connections in a probe process (bench/_wsprobe.py):
    ``socket`` (kernel receive time) and ``parsed`` (after that process decoded the message)."""
    stalled = _stalled_client(port, key) if stall else None
    warm = min(1.5, secs / 2)  # connect, subscribe, warm up
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(Path(__file__).with_name("_wsprobe.py")), str(port), key,
        str(clients), str(per), str(warm), str(secs),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await proc.communicate()
    if stalled is not None:
        stalled.close()
    if proc.returncode != 0:
        raise RuntimeError(f"WebSocket probe failed with exit code {proc.returncode}")
    lat: dict[str, list[float]] = json.loads(out)
    return lat


async def candles_with_ws(
    port: int, key: str, clients: int, per: int, secs: float, n: int
) -> tuple[list[float], dict[str, list[float]]]:
    """Candle requests while the probe's clients receive ticks; returns (candle latencies, tick
    latencies)."""
    ws = asyncio.create_task(measure_ws(port, key, clients, per, secs, stall=False))
    await asyncio.sleep(min(1.5, secs / 2) + 0.5)  # the clients are connected and receiving
    candles = await measure_candles(port, key, n)
    return candles, await ws


async def measure_candles(port: int, key: str, n: int) -> list[float]:
    """``n`` candle requests on one keep-alive connection (a thread, so the loop runs on)."""
    return await asyncio.to_thread(_candles_client, port, key, n)


def _candles_client(port: int, key: str, n: int) -> list[float]:
    """A lean client (``http.client``: C-level body reads): with httpx, its pure-Python parsing of
    the ~114 KB response added ~4 ms per request on this machine (p50 10.5 vs 6.4 ms)."""
    params = {"interval": "1m", "start": "2024-12-02T09:00:00", "end": "2024-12-02T16:00:00"}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def get(i: int) -> bytes:
        query = urllib.parse.urlencode(
            {**params, "instrument": f"NSE:{10_000 + i % CANDLE_INSTRUMENTS}"}
        )
        conn.request("GET", f"/api/v1/historical/candles?{query}", headers={"X-API-Key": key})
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"candles: HTTP {response.status}: {body[:200]!r}")
        return body

    try:
        for i in range(5):  # warm-up: connection, first key verification (scrypt), caches
            get(i)
        out = []
        for i in range(n):
            t0 = time.perf_counter_ns()
            body = get(i)
            out.append((time.perf_counter_ns() - t0) / 1e6)
            count = json.loads(body)["count"]
            if count != 375:
                raise RuntimeError(f"candles: {count} bars, expected 375")
        return out
    finally:
        conn.close()


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def histogram(values: list[float]) -> dict[str, Any]:
    counts: dict[str, int] = {}
    lo = 0.0
    for hi in (*BUCKETS_MS, float("inf")):
        label = f"{lo:g}-{hi:g}ms" if hi != float("inf") else f">{lo:g}ms"
        counts[label] = sum(1 for v in values if lo <= v < hi)
        lo = hi
    return {
        "n": len(values),
        "p50_ms": round(pct(values, 0.50), 3),
        "p90_ms": round(pct(values, 0.90), 3),
        "p99_ms": round(pct(values, 0.99), 3),
        "max_ms": round(max(values), 3) if values else None,
        "buckets": counts,
    }


def build_results(
    ours: dict[str, list[float]],
    stalled: dict[str, list[float]],
    base: dict[str, list[float]],
    candles: list[float],
    direct: list[float],
    report: dict[str, Any],
) -> list[Result]:
    h_ours, h_stall = histogram(ours["socket"]), histogram(stalled["socket"])
    h_base = histogram(base["socket"])
    h_c, h_direct = histogram(candles), histogram(direct)
    load = f"{RATE} ticks/s in; host load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    results = [
        Result(
            "serve: ws tick-to-client p99",
            h_ours["p99_ms"],
            h_base["p99_ms"],
            "ms",
            higher_is_better=False,
            target="< 5 ms",
            passed=h_ours["p99_ms"] < 5,
            notes=(
                f"{load}; at the client's socket (kernel receive time); baseline = one message "
                "per tick (batch_max=1); extra.*_parsed = after the probe process decoded it"
            ),
            extra={
                "ours": h_ours,
                "baseline": h_base,
                "ours_parsed": histogram(ours["parsed"]),
                "baseline_parsed": histogram(base["parsed"]),
                "server_cpu_s_per_s": report["cpu_per_s"],
                "ws": report["ws"],
            },
        ),
        Result(
            "serve: ws p99 with a stalled client",
            h_stall["p99_ms"],
            h_ours["p99_ms"],
            "ms",
            higher_is_better=False,
            target="~ unchanged",
            notes="one extra client on all 500 instruments never reads; baseline = without it",
            extra={"with_stalled": h_stall, "with_stalled_parsed": histogram(stalled["parsed"])},
        ),
        Result(
            "serve: historical candles p99",
            h_c["p99_ms"],
            h_direct["p99_ms"],
            "ms",
            higher_is_better=False,
            target="< 20 ms",
            passed=h_c["p99_ms"] < 20,
            notes=(
                "375 1m bars with indicators over HTTP while 10k ticks/s flow; baseline = "
                "store.query_candles direct; extra.idle = the same requests with no ticks"
            ),
            extra={"ours": h_c, "baseline": h_direct},
        ),
    ]
    return results


async def parent_main(quick: bool, clients: int, per: int) -> None:
    secs = 1.0 if quick else 5.0
    if quick:
        clients = min(clients, 20)
    proc, info = start_child(Path(tempfile.mkdtemp(prefix="bench-serve-")), quick)
    try:
        idle = await measure_candles(info["ports"]["a"], info["key"], 30 if quick else 100)
        command(proc, "go a")
        ours = await measure_ws(info["ports"]["a"], info["key"], clients, per, secs, stall=False)
        stalled = await measure_ws(info["ports"]["a"], info["key"], clients, per, secs, stall=True)
        candles = await measure_candles(info["ports"]["a"], info["key"], 30 if quick else 300)
        with_ws: tuple[list[float], dict[str, list[float]]] | None = None
        if not quick:  # (a process start and 8 s more: not within --quick's budget)
            with_ws = await candles_with_ws(info["ports"]["a"], info["key"], clients, per, 8.0, 200)
        command(proc, "go b")
        base = await measure_ws(info["ports"]["b"], info["key"], clients, per, secs, stall=False)
    finally:
        report = stop_child(proc)
    results = build_results(ours, stalled, base, candles, info["direct_ms"], report)
    results[2].extra["idle"] = histogram(idle)  # the same requests with no ticks flowing
    if with_ws is not None:
        results[2].extra["with_ws_clients"] = histogram(with_ws[0])
        results[2].extra["ws_during"] = histogram(with_ws[1]["socket"])
        results[2].extra["ws_during_parsed"] = histogram(with_ws[1]["parsed"])
    results[0].notes = (
        f"{clients} clients x {per} of {N_INSTRUMENTS} instruments; " + results[0].notes
    )
    emit("serve", results)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--clients", type=int, default=100)
    p.add_argument("--per-client", type=int, default=5, help="instruments per client")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--dir", type=Path, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        os.environ.pop("TICKSTREAM_PORT", None)
        asyncio.run(child_main(args.dir, args.quick))
        return
    asyncio.run(parent_main(args.quick, args.clients, args.per_client))


if __name__ == "__main__":
    main()
