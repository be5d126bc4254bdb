"""Pipeline throughput and memory: normalize -> dedup -> sequence -> state -> candles -> indicators.

Ticks are generated up front (in-session timestamps, random-walk prices on the 0.05 grid, growing
cumulative volumes, best bid/ask), then run through ``PipelineEngine.process`` in batches of
1,000, with candles at 1s, 1m and 5m, with and without indicators on every closed candle.

Shapes: 500 liquid instruments ticking 4 times a second each, and 9,000 instruments ticking once
every 5 seconds (every tick then opens and later closes a 1s candle, and feeds it to the
indicators). Baseline: a bare Python loop over the same ticks doing the minimal per-tick work,
the latest tick per instrument in a dict.

GC: the 9,000-instrument shape again, under CPython's default collector thresholds and under the
ones `tickstream run/serve/process/replay` set (``tickstream.runtime.GC_THRESHOLDS``), side by
side; the other rows keep the defaults (the engine as a library).

Rates are CPU time of this process (``time.process_time``), because the machine is shared and
wall time measures the neighbours; best of N runs.

Memory: 9,000 instruments, one tick each per minute, 1m candles with indicators, in a fresh
subprocess; the peak RSS (VmHWM, MB) after 40 minutes of session, and after 10 minutes to show
the state does not grow with the day.

    .venv/bin/python bench/pipeline.py [--quick]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import random
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tickstream.calendar import ist_ns
from tickstream.model import Interval, Tick
from tickstream.pipeline.candles import CandleConfig
from tickstream.pipeline.engine import EngineConfig, PipelineEngine, default_indicator_factory
from tickstream.runtime import GC_THRESHOLDS

from _common import Result, emit

DAY = dt.date(2025, 3, 3)  # a Monday, trading day
NS = 1_000_000_000
BATCH = 1_000
THREE = CandleConfig(intervals=(Interval.S1, Interval.M1, Interval.M5))


def make_ticks(
    instruments: int, per_instrument: int, step_ns: int, seed: int = 7, start_ns: int = 0
) -> list[Tick]:
    """Ticks of ``instruments`` instruments round-robin, ``step_ns`` apart per instrument."""
    rng = random.Random(seed)
    t0 = start_ns or ist_ns(DAY, 9, 15)
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


def engine_runner(indicators: bool) -> Callable[[list[Tick]], int]:
    def run(ticks: list[Tick]) -> int:
        factory = default_indicator_factory if indicators else None
        engine = PipelineEngine(EngineConfig(candles=THREE), indicator_factory=factory)
        for i in range(0, len(ticks), BATCH):
            engine.process(ticks[i : i + BATCH], i)
        engine.flush()
        return len(ticks)

    return run


def run_baseline(ticks: list[Tick]) -> int:
    latest: dict[tuple[str, int], Tick] = {}
    for t in ticks:
        latest[(t.exchange, t.token)] = t
    return len(ticks)


def cpu_rate(fn: Callable[[list[Tick]], int], ticks: list[Tick], repeat: int) -> float:
    best = 0.0
    for _ in range(repeat):
        t0 = time.process_time()
        n = fn(ticks)
        best = max(best, n / max(time.process_time() - t0, 1e-9))
    return best


def memory_child(instruments: int, minutes: int) -> None:
    """In a subprocess: ``minutes`` of 1m candles for ``instruments``; prints RSS MB and candles."""
    engine = PipelineEngine(EngineConfig(candles=CandleConfig(intervals=(Interval.M1,))))
    emitted = 0
    t0 = ist_ns(DAY, 9, 15)
    for k in range(minutes):
        batch = make_ticks(instruments, 1, 60 * NS, seed=k, start_ns=t0 + k * 60 * NS)
        # the generator restarts volumes per call; keep them cumulative over the day
        batch = [_with_volume(t, (t.volume or 0) + k * 10_000) for t in batch]
        emitted += len(engine.process(batch, k).candles)
    emitted += len(engine.flush().candles)
    print(f"{peak_rss_mb():.1f} {emitted}")


def peak_rss_mb() -> float:
    """Peak RSS of this process image. ``ru_maxrss`` survives fork+exec on Linux (a child would
    report its parent's peak), so VmHWM from /proc is preferred where it exists."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _with_volume(t: Tick, volume: int) -> Tick:
    import msgspec

    return msgspec.structs.replace(t, volume=volume)


def measure_memory(instruments: int, minutes: int) -> tuple[float, int]:
    code = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parent)!r}); "
        f"import pipeline; pipeline.memory_child({instruments}, {minutes})"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    rss, emitted = done.stdout.split()
    return float(rss), int(emitted)


def throughput(results: list[Result], shape: tuple[int, int, int], repeat: int) -> None:
    instruments, per, step = shape
    ticks = make_ticks(instruments, per, step)
    base = cpu_rate(run_baseline, ticks, repeat)
    for indicators in (True, False):
        ours = cpu_rate(engine_runner(indicators), ticks, repeat)
        what = "candles 1s/1m/5m + indicators" if indicators else "candles 1s/1m/5m, no indicators"
        results.append(
            Result(
                stage=f"{instruments} instr x {per} ticks every {step / NS:g}s: {what}",
                ours=round(ours),
                baseline=round(base),
                unit="ticks/s (CPU)",
                target=">= 300k ticks/s",
                passed=ours >= 300_000,
                notes="baseline: bare loop keeping the latest tick per instrument in a dict",
                extra={"ticks": len(ticks)},
            )
        )


def gc_effect(results: list[Result], shape: tuple[int, int, int], repeat: int) -> None:
    """The same engine run under CPython's default collector thresholds and under the ones the
    processes set (``tickstream.runtime.GC_THRESHOLDS``), interleaved."""
    instruments, per, step = shape
    ticks = make_ticks(instruments, per, step)
    run = engine_runner(True)
    default = gc.get_threshold()
    tuned_best = default_best = 0.0
    try:
        for _ in range(repeat):
            gc.set_threshold(*default)
            default_best = max(default_best, cpu_rate(run, ticks, 1))
            gc.set_threshold(*GC_THRESHOLDS)
            tuned_best = max(tuned_best, cpu_rate(run, ticks, 1))
    finally:
        gc.set_threshold(*default)
    results.append(
        Result(
            stage=f"{instruments} instr x {per} ticks every {step / NS:g}s, with indicators:"
            f" GC thresholds {GC_THRESHOLDS} (as the processes run) vs default {default}",
            ours=round(tuned_best), baseline=round(default_best), unit="ticks/s (CPU)",
            target="reported", notes="baseline: the same engine under the default thresholds",
            extra={"ticks": len(ticks)},
        )
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description="pipeline throughput and memory")
    parser.add_argument("--quick", action="store_true", help="smaller run (< 10 s)")
    args = parser.parse_args()
    results: list[Result] = []
    minutes = (2, 5) if args.quick else (10, 40)
    (rss_short, _), (rss, emitted) = (measure_memory(9_000, m) for m in minutes)
    if args.quick:
        throughput(results, (500, 20, NS // 4), repeat=1)
        gc_effect(results, (2_000, 3, 5 * NS), repeat=1)
    else:
        throughput(results, (500, 120, NS // 4), repeat=3)
        throughput(results, (9_000, 6, 5 * NS), repeat=2)
        gc_effect(results, (9_000, 6, 5 * NS), repeat=3)
    results.append(
        Result(
            stage=f"RSS, 9000 instruments, {minutes[1]} min of 1m candles",
            ours=rss,
            baseline=None,
            unit="MB",
            higher_is_better=False,
            target="< 150 MB",
            passed=rss < 150,
            notes="peak RSS of a fresh process, incl. interpreter, imports and tick generation",
            extra={"candles_emitted": emitted, f"rss_after_{minutes[0]}_min_mb": rss_short},
        )
    )
    emit("pipeline", results)


if __name__ == "__main__":
    main()
