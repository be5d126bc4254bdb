"""Redis Streams publish rate: RedisBus.publish_stream_batch vs redis-benchmark, same run.

Baseline: ``redis-benchmark -P 100 -c 1 XADD bench:stream MAXLEN ~ 100000 * data <payload>``
with a payload as long as our tick JSON (FULL mode, 5-level depth), i.e. the server's own
single-connection pipelined XADD rate. Ours: realistic ticks for 50 symbols, JSON-encoded and
appended to their per-symbol streams, timed until every tick is in Redis. Also shown: the naive
redis-py pipeline (one ``pipe.xadd`` per tick) for reference. Target (issue): ours >= 40 % of
redis-benchmark. Best of N rounds, alternating, because the machine's cores are shared.

    .venv/bin/python bench/redis_bus.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

from tickstream.bus.envelope import encode_value
from tickstream.bus.redis_bus import RedisBus
from tickstream.model import Depth, DepthLevel, Mode, Tick

from _common import Result, emit

TARGET = 0.40
SYMBOLS = 50


def redis_url() -> str:
    env_file = Path(__file__).resolve().parent.parent / ".services" / "env"
    if "REDIS_URL" in os.environ:
        return os.environ["REDIS_URL"]
    for line in env_file.read_text().splitlines():
        if line.startswith("REDIS_URL="):
            return line.partition("=")[2].strip()
    return "redis://127.0.0.1:6379/0"


def make_ticks(n: int) -> list[Tick]:
    out = []
    for i in range(n):
        ltp = 1000 + (i % 997) * 0.05
        out.append(
            Tick(
                exchange="NSE",
                token=1000 + i % SYMBOLS,
                symbol=f"BENCH{i % SYMBOLS}",
                source="sim",
                ts_exchange=1_763_700_000_000_000_000 + i * 1000,
                ts_recv=1_763_700_000_000_000_000 + i * 1000 + 500,
                seq=i,
                ltp=ltp,
                ltq=5,
                atp=ltp,
                volume=100_000 + i,
                bid=ltp - 0.05,
                ask=ltp + 0.05,
                bid_qty=10,
                ask_qty=12,
                open=990.0,
                high=1050.0,
                low=985.0,
                close=1000.0,
                depth=Depth(
                    bids=tuple(DepthLevel(ltp - 0.05 * (k + 1), 10 + k, 1 + k) for k in range(5)),
                    asks=tuple(DepthLevel(ltp + 0.05 * (k + 1), 12 + k, 2 + k) for k in range(5)),
                ),
                mode=Mode.FULL,
            )
        )
    return out


def redis_benchmark(port: int, n: int, payload_len: int) -> float:
    exe = shutil.which("redis-benchmark")
    if exe is None:
        raise SystemExit("redis-benchmark not found (install redis-tools)")
    key = f"bench:stream:{uuid.uuid4().hex[:8]}"
    args = [exe, "-h", "127.0.0.1", "-p", str(port), "-P", "100", "-c", "1", "-n", str(n)]
    args += ["--csv", "XADD", key, "MAXLEN", "~", "100000", "*", "data", "x" * payload_len]
    try:
        out = subprocess.run(args, capture_output=True, text=True, check=True, timeout=120)
    finally:
        subprocess.run(
            [exe.replace("redis-benchmark", "redis-cli"), "-p", str(port), "DEL", key],
            capture_output=True,
            check=False,
        )
    rows = list(csv.reader(io.StringIO(out.stdout)))
    return float(rows[-1][1])


async def ours(bus: RedisBus, ticks: list[Tick]) -> float:
    chunk = 1000
    t0 = time.perf_counter()
    for i in range(0, len(ticks), chunk):
        await bus.publish_stream_batch(ticks[i : i + chunk])
    await bus.streams.flush(timeout=120)
    return len(ticks) / (time.perf_counter() - t0)


async def naive(bus: RedisBus, ticks: list[Tick]) -> float:
    t0 = time.perf_counter()
    for i in range(0, len(ticks), 1000):
        async with bus.client.pipeline(transaction=False) as pipe:
            for t in ticks[i : i + 1000]:
                key = f"{bus.stream_prefix}{t.symbol}"
                pipe.xadd(key, {"data": encode_value(t)}, maxlen=100_000, approximate=True)
            await pipe.execute()
    return len(ticks) / (time.perf_counter() - t0)


async def run(n: int, rounds: int) -> list[Result]:
    url = redis_url()
    port = urlparse(url).port or 6379
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    bus = RedisBus(url, stream_prefix=prefix)
    await bus.start()
    ticks = make_ticks(n)
    payload = sum(len(encode_value(t)) for t in ticks[:100]) // 100
    best_ours = best_base = best_naive = 0.0
    try:
        for _ in range(rounds):
            best_base = max(best_base, await asyncio.to_thread(redis_benchmark, port, n, payload))
            best_ours = max(best_ours, await ours(bus, ticks))
            best_naive = max(best_naive, await naive(bus, ticks[: n // 2]))
    finally:
        keys = [k async for k in bus.client.scan_iter(match=f"{prefix}*")]
        if keys:
            await bus.client.delete(*keys)
        await bus.close()
    ratio = best_ours / best_base
    return [
        Result(
            stage="redis streams publish (XADD, per-symbol, MAXLEN ~)",
            ours=round(best_ours),
            baseline=round(best_base),
            unit="ticks/s",
            target=f">= {TARGET:.0%} of redis-benchmark -P 100 -c 1 XADD",
            passed=ratio >= TARGET,
            notes="baseline: redis-benchmark, same payload length, same run",
            extra={
                "payload_bytes": payload,
                "ticks": n,
                "rounds": rounds,
                "naive_redis_py_pipeline": round(best_naive),
            },
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small run (< 10 s)")
    args = parser.parse_args()
    n, rounds = (30_000, 2) if args.quick else (150_000, 3)
    emit("redis_bus", asyncio.run(run(n, rounds)))


if __name__ == "__main__":
    main()
