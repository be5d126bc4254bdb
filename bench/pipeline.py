"""Pipeline throughput and memory: normalize -> dedup -> sequence -> state -> candles -> indicators.

Ticks are generated up front (realistic in-session timestamps, random-walk prices on the 0.05
grid, growing cumulative volumes, best bid/ask), then timed through ``PipelineEngine.process`` in
batches of 1,000 on one core, with candles at 1s, 1m and 5m and indicators on every closed candle.
Baseline: a bare Python loop over the same ticks doing the minimal per-tick dict update
(latest tick per instrument) -- the floor any pipeline pays.

Memory: 9,000 instruments through a full day of 1m candles (one tick per instrument per minute,
09:15-15:30), RSS (``resource.getrusage`` maxrss) measured in a fresh subprocess.

    .venv/bin/python bench/pipeline.py [--quick]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Result, emit

from tickstream.calendar import ist_ns
from tickstream.model import Interval, Tick
from tickstream.pipeline.candles import CandleConfig
from tickstream.pipeline.engine import EngineConfig, PipelineEngine

DAY = dt.date(2025, 3, 3)  # a Monday, trading day
NS = 1_000_000_000
BATCH = 1_000


def make_ticks(instruments: int, per_instrument: int, step_ns: int, seed: int = 7) -> list[Tick]:
    """Ticks of ``instruments`` instruments round-robin, ``step_ns`` apart per instrument."""
    rng = random.Random(seed)
    t0 = ist_ns(DAY, 9, 15)
    prices = [rng.randrange(2_000, 400_000) for _ in range(instruments)]  # in 0.05 ticks
    volumes = [rng.randrange(0, 10_000) for _ in range(instruments)]
    ticks: list[Tick] = []
    spacing = max(step_ns // max(instruments, 1), 1)
    for k in range(per_instrument):
        for i in range(instruments):
            prices[i] = max(prices[i] + rng.randrange(-3, 4), 20)
            qty = rng.randrange(1, 50)
            volumes[i] += qty
            p = prices[i] / 20
            ts = t0 + k * step_ns + i * spacing
            ticks.append(
                Tick(
                    exchange="NSE",
                    token=1_000 + i,
                    symbol=f"SYM{i}",
                    source="kite",
                    ts_exchange=ts,
                    ts_recv=ts + 2_000_000,
                    ltp=p,
                    ltq=qty,
                    volume=volumes[i],
                    bid=p - 0.05,
                    ask=p + 0.05,
                )
            )
    return ticks


def run_engine(ticks: list[Tick]) -> int:
    engine = PipelineEngine(
        EngineConfig(candles=CandleConfig(intervals=(Interval.S1, Interval.M1, Interval.M5)))
    )
    for i in range(0, len(ticks), BATCH):
        engine.process(ticks[i : i + BATCH], i)
    engine.flush()
    return len(ticks)


def run_baseline(ticks: list[Tick]) -> int:
    latest: dict[tuple[str, int], Tick] = {}
    for t in ticks:
        latest[(t.exchange, t.token)] = t
    return len(ticks)


def best_rate(fn: object, ticks: list[Tick], repeat: int) -> float:
    best = 0.0
    for _ in range(repeat):
        t0 = time.perf_counter()
        n = fn(ticks)  # type: ignore[operator]
        best = max(best, n / (time.perf_counter() - t0))
    return best


def memory_child(instruments: int, minutes: int) -> None:
    """Runs in a subprocess: a day of 1m candles for ``instruments``; prints RSS in MB."""
    engine = PipelineEngine(EngineConfig(candles=CandleConfig(intervals=(Interval.M1,))))
    emitted = 0
    for k in range(minutes):
        batch = make_ticks(instruments, 1, 60 * NS, seed=k)
        shifted = [t.__copy__() for t in batch] if False else batch
        base = k * 60 * NS
        moved = [
            Tick(
                exchange=t.exchange,
                token=t.token,
                symbol=t.symbol,
                source=t.source,
                ts_exchange=t.ts_exchange + base,
                ts_recv=t.ts_recv + base,
                ltp=t.ltp,
                volume=(t.volume or 0) + k * 100_000,
            )
            for t in shifted
        ]
        out = engine.process(moved, k)
        emitted += len(out.candles)
    emitted += len(engine.flush().candles)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{rss_mb:.1f} {emitted}")


def measure_memory(instruments: int, minutes: int) -> tuple[float, int]:
    code = (
        "import sys; sys.argv=['x']; "
        f"sys.path.insert(0, {str(Path(__file__).resolve().parent)!r}); "
        f"import pipeline; pipeline.memory_child({instruments}, {minutes})"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    rss, emitted = done.stdout.split()
    return float(rss), int(emitted)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller run (< 10 s)")
    args = parser.parse_args()
    repeat = 2 if args.quick else 3
    results: list[Result] = []
    shapes = [(500, 40 if args.quick else 200, NS // 2)]
    if not args.quick:
        shapes.append((9_000, 12, 5 * NS))
    for instruments, per, step in shapes:
        ticks = make_ticks(instruments, per, step)
        ours = best_rate(run_engine, ticks, repeat)
        base = best_rate(run_baseline, ticks, repeat)
        results.append(
            Result(
                stage=f"pipeline {instruments} instr x {per} ticks (1s,1m,5m + indicators)",
                ours=round(ours),
                baseline=round(base),
                unit="ticks/s",
                target=">= 300k ticks/s",
                passed=ours >= 300_000,
                notes="baseline: bare loop, latest tick per instrument in a dict",
                extra={"ticks": len(ticks)},
            )
        )
    minutes = 30 if args.quick else 375
    rss, emitted = measure_memory(9_000, minutes)
    results.append(
        Result(
            stage=f"RSS 9000 instr, {minutes} min of 1m candles",
            ours=rss,
            baseline=None,
            unit="MB",
            higher_is_better=False,
            target="< 150 MB",
            passed=rss < 150,
            notes="maxrss of a fresh process incl. interpreter and tick generation",
            extra={"candles_emitted": emitted},
        )
    )
    emit("pipeline", results)


if __name__ == "__main__":
    main()
