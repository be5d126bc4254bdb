"""Simulator history and REST: how fast candles are made and served.

Rows:

* ``history minute bars/s``: :func:`tickstream.sim.history.bars` making minute bars for whole
  trading days (cold cache each run). Baseline: the simplest generator one would write, a plain
  Python per-minute random walk with random wicks and volumes (no tick grid, no sessions, no
  day-level model) making the same number of bars.
* ``kite historical 60d minute`` / ``kite historical 2000d day``: one maximum-range request through
  the Kite app (ASGI in-process via httpx: routing, auth, rate limiter, JSON encoding included),
  cold cache, body received but not parsed. Baseline: :func:`bars` alone for the same range, the
  floor the endpoint pays. Target (minute only): under a second, like the real endpoint.

    .venv/bin/python bench/sim_rest.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx

from tickstream.calendar import ist_ns
from tickstream.sim.history import bars, day_arrays
from tickstream.sim.kite_rest import create_kite_app
from tickstream.sim.rest_auth import LocalAuthority
from tickstream.sim.universe import default_universe, reference_prices

from _common import Result, emit

UNIVERSE = default_universe()
PRICES = reference_prices()
RELIANCE = next(i for i in UNIVERSE if i.symbol == "RELIANCE")
START = dt.date(2025, 6, 2)


def _time(fn: Callable[[], object], repeat: int) -> float:
    """Best wall time of ``repeat`` cold runs, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        day_arrays.cache_clear()
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _naive_walk(n: int, seed: int = 1) -> list[tuple[float, ...]]:
    rng = random.Random(seed)
    price, out = 2400.0, []
    for _ in range(n):
        o = price
        price *= 1 + rng.gauss(0, 0.0006)
        hi, lo = max(o, price) * (1 + abs(rng.gauss(0, 0.0002))), min(o, price) * 0.9998
        out.append((o, hi, lo, price, float(rng.randrange(1_000, 50_000))))
    return out


def _history_row(days: int, repeat: int) -> Result:
    end = START + dt.timedelta(days=days)
    start_ns, end_ns = ist_ns(START, 0), ist_ns(end, 0)
    ref = PRICES[RELIANCE.key]
    n = len(bars(RELIANCE, 60, start_ns, end_ns, ref))
    ours = n / _time(lambda: bars(RELIANCE, 60, start_ns, end_ns, ref), repeat)
    baseline = n / _time(lambda: _naive_walk(n), repeat)
    return Result(
        stage="history minute bars/s",
        ours=round(ours),
        baseline=round(baseline),
        unit="bars/s",
        notes=f"{n} minute bars over {days} calendar days; baseline: plain-Python random walk",
    )


def _request_row(interval: str, days: int, seconds: int, repeat: int) -> Result:
    authority = LocalAuthority.generate()
    token = authority.issue_kite_token()
    headers = {"Authorization": f"token {authority.kite.api_key}:{token}"}
    app = create_kite_app(
        authority, UNIVERSE, prices=PRICES, clock=iter(range(0, 10**9, 5)).__next__
    )
    end = START
    begin = end - dt.timedelta(days=days)
    params = {"from": f"{begin} 00:00:00", "to": f"{end} 00:00:00"}
    path = f"/instruments/historical/{RELIANCE.kite_token}/{interval}"

    async def request() -> int:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sim") as client:
            resp = await client.get(path, params=params, headers=headers)
        resp.raise_for_status()
        return len(resp.content)

    asyncio.run(request())
    candles = len(bars(RELIANCE, seconds, ist_ns(begin, 0), ist_ns(end, 0), PRICES[RELIANCE.key]))
    ours = _time(lambda: asyncio.run(request()), repeat) * 1000
    start_ns, end_ns = ist_ns(begin, 0), ist_ns(end, 0)
    ref = PRICES[RELIANCE.key]
    baseline = _time(lambda: bars(RELIANCE, seconds, start_ns, end_ns, ref), repeat) * 1000
    return Result(
        stage=f"kite historical {days}d {interval}",
        ours=round(ours, 1),
        baseline=round(baseline, 1),
        unit="ms",
        higher_is_better=False,
        target="< 1000 ms" if interval == "minute" else "",
        passed=ours < 1000 if interval == "minute" else None,
        notes=f"{candles} candles in one maximum-range request; baseline: history.bars alone",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer days and repeats (<10 s)")
    args = parser.parse_args()
    repeat = 1 if args.quick else 3
    results = [
        _history_row(10 if args.quick else 60, repeat),
        _request_row("minute", 60, 60, repeat),
    ]
    if not args.quick:
        results.append(_request_row("day", 2000, 86_400, repeat))
    emit("sim_rest", results)


if __name__ == "__main__":
    main()
