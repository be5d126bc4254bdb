"""Burst replay throughput in the scaled mode (Kafka), beside the pipeline's own throughput.

Setup: a stored session (N instruments x M ticks, bench/replay.py's ``make_ticks``) in a DuckDB
file; ONE ``tickstream process`` worker subprocess (default pipeline: 1s/1m/5m candles and
indicators, batch 2000; fresh group, unique topics of the project's 6 partitions, no Redis, no
database); the replay runs in its own process (``tickstream replay --kafka --speed max``). Per
repeat, interleaved:

1. produce alone: the replay into topic A, nobody consuming; rate = N / the replay's own wall
   time as the CLI prints it (store pages to the last broker ack).
2. baseline, the pipeline's own throughput: a worker on topic A, where the same N records wait.
   Clock from the first commit the group shows (start-up, imports and group join are outside
   it) until the committed offsets sum to N; rate = (N - committed at the start) / window.
3. replay: a fresh worker on an empty topic B, started first and idle until its group is stable
   with every partition assigned; then the replay into B. Clock from the CreateTime of B's first
   record (the replay's first produce, read back afterwards) until the committed offsets sum to
   N; rate = N / window.

Committed offsets and CPU time (/proc/<pid>/stat: worker, replay, the Kafka broker, this process)
are sampled every 20 ms; CPU is given as cores (CPU s / wall s). Best of 3 (1 with --quick).
Target (issue "Replay"): replay >= 90 % of the pipeline's own throughput. Kafka from
$KAFKA_BOOTSTRAP or .services/env, else the bench fails (``bash scripts/services.sh start``).

    .venv/bin/python bench/replay_kafka.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from confluent_kafka import Consumer, ConsumerGroupState, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from replay import NS, T0, instruments, make_ticks
from tickstream.bus.kafka_bus import SCALEOUT_PARTITIONS, ensure_topics
from tickstream.calendar import ist_date
from tickstream.storage.duckdb_store import DuckDBStore

from _common import Result, emit

ROOT = Path(__file__).resolve().parent.parent
PARTS = SCALEOUT_PARTITIONS
POLL_S = 0.02
CLK_TCK = os.sysconf("SC_CLK_TCK")
TARGET = 0.90
DATE = ist_date(T0)  # the ticks span well under a day from there
Probe = Callable[[], float | None]


def bootstrap() -> str:
    env_file = ROOT / ".services" / "env"
    lines = env_file.read_text().splitlines() if env_file.exists() else []
    found = [ln.partition("=")[2].strip() for ln in lines if ln.startswith("KAFKA_BOOTSTRAP=")]
    return os.environ.get("KAFKA_BOOTSTRAP") or (found or ["127.0.0.1:9092"])[0]


def check_kafka(servers: str) -> None:
    try:
        AdminClient({"bootstrap.servers": servers}).list_topics(timeout=5)
    except KafkaException as exc:
        raise SystemExit(
            f"replay_kafka: Kafka not reachable at {servers} ({exc.args[0]}); "
            "start it with `bash scripts/services.sh start` or set KAFKA_BOOTSTRAP"
        ) from None


def cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a process (all its threads), None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def broker_pid() -> int:
    """The local broker's pid (scripts/services.sh); 0 (no /proc entry) when there is none."""
    pidfile = ROOT / ".services" / "kafka" / "kafka.pid"
    text = pidfile.read_text().strip() if pidfile.exists() else ""
    return int(text) if text.isdigit() else 0


class Child:
    """A subprocess reaped with wait4, so its total CPU time survives its exit."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log, self.name = log, " ".join(args[3:5])
        with log.open("wb") as out:
            self.proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=out, stderr=out)
        self.cpu_total: float | None = None

    def cpu(self) -> float | None:
        return self.cpu_total if self.cpu_total is not None else cpu_s(self.proc.pid)

    def reap(self, block: bool = False) -> bool:
        """True once it has exited; raises if it failed."""
        if self.cpu_total is None:
            pid, status, usage = os.wait4(self.proc.pid, 0 if block else os.WNOHANG)
            if pid == 0:
                return False
            self.cpu_total = usage.ru_utime + usage.ru_stime
            self.proc.returncode = os.waitstatus_to_exitcode(status)
        if self.proc.returncode not in (0, -signal.SIGTERM):
            raise RuntimeError(f"{self.name} exited {self.proc.returncode}:\n{self.text()}")
        return True

    def stop(self) -> None:
        if self.cpu_total is None:
            self.proc.send_signal(signal.SIGTERM)
            end = time.monotonic() + 30
            while not self.reap() and time.monotonic() < end:
                time.sleep(0.1)
            if self.cpu_total is None:
                self.proc.kill()
                self.reap(block=True)

    def text(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


@dataclass
class Sample:
    t: float  # epoch seconds (time.time), the clock Kafka's CreateTime stamps use
    committed: int
    cpu: dict[str, float | None]


class Watch:
    """Samples the group's committed offsets and the processes' CPU seconds."""

    def __init__(self, servers: str, group: str | None, topic: str, probes: dict[str, Probe]):
        conf = {"bootstrap.servers": servers, "group.id": group or "unused"}
        self.consumer = Consumer(conf | {"enable.auto.commit": False}) if group else None
        self.tps = [TopicPartition(topic, p) for p in range(PARTS)]
        broker = broker_pid()
        self.probes = probes | {"broker": lambda: cpu_s(broker), "bench": time.process_time}
        self.samples: list[Sample] = []

    def sample(self) -> Sample:
        done = 0
        if self.consumer is not None:
            done = sum(max(tp.offset, 0) for tp in self.consumer.committed(self.tps, timeout=10))
        s = Sample(time.time(), done, {k: probe() for k, probe in self.probes.items()})
        self.samples.append(s)
        return s

    def follow(self, n: int, worker: Child | None, replay: Child | None) -> Sample:
        """Sample until ``n`` are committed (or, without a worker, until the replay exits)."""
        end = time.monotonic() + 600
        while time.monotonic() < end:
            s = self.sample()
            replay_done = replay is None or replay.reap()
            if (s.committed >= n) if worker else replay_done:
                return s
            if worker is not None and worker.proc.poll() is not None:
                raise RuntimeError(f"worker exited {worker.proc.returncode}:\n{worker.text()}")
            time.sleep(POLL_S)
        raise TimeoutError(f"{self.samples[-1].committed} of {n} committed after 600 s")

    def cores(self, t0: float, t1: float) -> dict[str, float]:
        """CPU seconds / wall seconds of each process between the samples bracketing t0..t1."""
        a = ([s for s in self.samples if s.t <= t0] or self.samples[:1])[-1]
        b = next((s for s in self.samples if s.t >= t1), self.samples[-1])
        out = {}
        for k, v0 in a.cpu.items():
            v1 = b.cpu.get(k)
            v1 = v1 if v1 is not None else self.probes[k]()
            if v0 is not None and v1 is not None and b.t > a.t:
                out[k] = round((v1 - v0) / (b.t - a.t), 2)
        return out

    def close(self) -> None:
        if self.consumer is not None:
            self.consumer.close()


@dataclass
class Ctx:
    servers: str
    store: Path
    n_inst: int
    n: int
    tmp: Path
    run: str
    topics: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
        return env | {"TICKSTREAM_DATA_DIR": str(self.tmp / "data")}

    async def new_topics(self, *names: str) -> list[str]:
        """Input topics (each also its group's name), with their outputs ``<topic>_t/_c``."""
        inputs = [f"bench_rk_{self.run}_{name}" for name in names]
        made = [t + suffix for t in inputs for suffix in ("", "_t", "_c")]
        admin = AdminClient({"bootstrap.servers": self.servers})
        await ensure_topics(admin, dict.fromkeys(made, PARTS))
        self.topics += made
        self.groups += inputs
        return inputs


def spawn_worker(ctx: Ctx, topic: str) -> Child:
    args = [
        sys.executable, "-m", "tickstream.cli", "process", "--kafka", ctx.servers,
        "--group", topic, "--source-topic", topic, "--ticks-topic", f"{topic}_t",
        "--candles-topic", f"{topic}_c", "--redis", "", "--database", "",
    ]  # fmt: skip
    return Child(args, ctx.env(), ctx.tmp / f"{topic}.worker.log")


def spawn_replay(ctx: Ctx, topic: str) -> Child:
    args = [
        sys.executable, "-m", "tickstream.cli", "replay", "--kafka", ctx.servers,
        "--topic", topic, "--speed", "max", "--store", str(ctx.store),
        "--date", DATE.isoformat(), "--id", topic, "--fresh",
        "--symbols", ",".join(i.key for i in instruments(ctx.n_inst)),
    ]  # fmt: skip
    return Child(args, ctx.env(), ctx.tmp / f"{topic}.replay.log")


def wait_joined(servers: str, group: str, timeout: float = 60.0) -> None:
    """Until the group is stable with every partition of the topic assigned."""
    admin = AdminClient({"bootstrap.servers": servers})
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            desc = admin.describe_consumer_groups([group])[group].result()
        except KafkaException:
            desc = None
        stable = desc is not None and desc.state == ConsumerGroupState.STABLE
        if stable and sum(len(m.assignment.topic_partitions) for m in desc.members) == PARTS:
            return
        time.sleep(0.2)
    raise TimeoutError(f"worker group {group} not stable after {timeout} s")


def record_span(servers: str, topic: str) -> tuple[float, float, int]:
    """(first, last) CreateTime in epoch seconds over the topic's records, and their count."""
    conf = {"bootstrap.servers": servers, "group.id": f"{topic}-span"}
    consumer = Consumer(conf | {"enable.auto.commit": False})
    first, last, total = float("inf"), 0.0, 0
    try:
        for p in range(PARTS):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            total += high - low
            for offset in sorted({low, high - 1}) if high > low else []:
                consumer.assign([TopicPartition(topic, p, offset)])
                m = consumer.poll(10)
                if m is None or m.error() is not None:
                    raise RuntimeError(f"cannot read {topic}[{p}]@{offset}: {m and m.error()}")
                ts = m.timestamp()[1] / 1000
                first, last = min(first, ts), max(last, ts)
    finally:
        consumer.close()
    return first, last, total


def produce_alone(ctx: Ctx, topic: str) -> dict[str, Any]:
    replay = spawn_replay(ctx, topic)
    watch = Watch(ctx.servers, None, topic, {"replay": replay.cpu})
    watch.follow(ctx.n, None, replay)
    first, last, total = record_span(ctx.servers, topic)
    m = re.search(r": (\d+) ticks, .*, ([0-9.]+) s", replay.text())
    if m is None or int(m[1]) != ctx.n or total != ctx.n:
        raise RuntimeError(f"replay produced {total} records of {ctx.n}:\n{replay.text()}")
    wall = float(m[2])
    return {
        "rate": ctx.n / wall, "replay_wall_s": wall, "create_time_span_s": round(last - first, 3),
        "cores": watch.cores(first, last), "replay_cpu_total_s": replay.cpu_total,
    }  # fmt: skip


def baseline(ctx: Ctx, topic: str) -> dict[str, Any]:
    worker = spawn_worker(ctx, topic)
    watch = Watch(ctx.servers, topic, topic, {"worker": worker.cpu})
    try:
        end = watch.follow(ctx.n, worker, None)
    finally:
        worker.stop()
        watch.close()
    start = next(s for s in watch.samples if s.committed > 0)
    window = end.t - start.t
    return {
        "rate": (ctx.n - start.committed) / window, "window_s": round(window, 3),
        "committed_at_start": start.committed, "cores": watch.cores(start.t, end.t),
    }  # fmt: skip


def replay_run(ctx: Ctx, topic: str) -> dict[str, Any]:
    worker = spawn_worker(ctx, topic)
    watch = Watch(ctx.servers, topic, topic, {"worker": worker.cpu})
    try:
        wait_joined(ctx.servers, topic)
        time.sleep(1.0)  # let the joined worker settle into its idle poll loop
        replay = spawn_replay(ctx, topic)
        watch.probes["replay"] = replay.cpu
        end = watch.follow(ctx.n, worker, replay)
        replay.reap(block=True)
    finally:
        worker.stop()
        watch.close()
    first, last, _ = record_span(ctx.servers, topic)
    first_commit = next(s for s in watch.samples if s.committed > 0)
    at_last = [s for s in watch.samples if s.t <= last][-1]
    return {
        "rate": ctx.n / (end.t - first), "window_s": round(end.t - first, 3),
        "rate_from_first_commit": (ctx.n - first_commit.committed) / (end.t - first_commit.t),
        "cores": watch.cores(first, end.t),
        "while_producing": {"s": round(last - first, 3), "committed": at_last.committed,
                            "cores": watch.cores(first, last)},
        "after": {"s": round(end.t - last, 3), "cores": watch.cores(last, end.t),
                  "rate": round((ctx.n - at_last.committed) / (end.t - at_last.t))},
    }  # fmt: skip


async def build_store(path: Path, n_inst: int, per: int) -> int:
    ticks = make_ticks(n_inst, per, NS // 4)
    store = DuckDBStore(path)
    await store.open()
    await store.write_ticks(ticks)
    await store.close()
    return len(ticks)


def cleanup(ctx: Ctx) -> None:
    admin = AdminClient({"bootstrap.servers": ctx.servers})
    futures = list(admin.delete_topics(ctx.topics, operation_timeout=30).values())
    if ctx.groups:
        futures += admin.delete_consumer_groups(ctx.groups).values()
    for fut in futures:
        try:
            fut.result(30)
        except KafkaException as exc:
            print(f"replay_kafka: cleanup: {exc.args[0]}", file=sys.stderr)


def measure(ctx: Ctx, repeat: int) -> list[dict[str, dict[str, Any]]]:
    rounds = []
    for r in range(repeat):  # interleaved, so neighbours' load hits all three alike
        topic_a, topic_b = asyncio.run(ctx.new_topics(f"{r}a", f"{r}b"))
        one = {"produce": produce_alone(ctx, topic_a)}
        one["baseline"] = baseline(ctx, topic_a)
        one["replay"] = replay_run(ctx, topic_b)
        got = ", ".join(f"{k} {v['rate']:,.0f}/s" for k, v in one.items())
        print(f"replay_kafka round {r}: {got}", file=sys.stderr)
        rounds.append(one)
    return rounds


def results(ctx: Ctx, per: int, rounds: list[dict[str, dict[str, Any]]]) -> list[Result]:
    best = {k: max(rounds, key=lambda r: r[k]["rate"])[k] for k in rounds[0]}
    rates = {k: [round(r[k]["rate"]) for r in rounds] for k in rounds[0]}
    base, rep, prod = best["baseline"]["rate"], best["replay"]["rate"], best["produce"]["rate"]
    shape = f"{ctx.n_inst} instr x {per} ticks"
    windows = (
        "baseline: worker on a topic already holding the N records, clock from the first commit "
        "seen to all N committed, (N - first commit) / window; replay: worker joined and idle, "
        "clock from the first replayed record's CreateTime to all N committed; 20 ms sampling. "
        "cores = CPU s / wall s per process; while_producing (the replay's produce span) vs "
        "after: with ~2 cores busy while producing, the 2-core machine is the limit, not replay"
    )
    per_round = [round(r["replay"]["rate"] / r["baseline"]["rate"], 3) for r in rounds]
    busy = [round(sum(r["replay"]["while_producing"]["cores"].values()), 2) for r in rounds]
    return [
        Result(
            stage=f"burst replay -> Kafka -> 1 process worker (scaled mode), {shape}",
            ours=round(rep), baseline=round(base), unit="ticks/s (wall)",
            target=">= 90% of the pipeline's own throughput (scaled mode)",
            passed=rep >= TARGET * base, notes=windows,
            extra={"ticks": ctx.n, "rounds": rates, "ratio_per_round": per_round,
                   "cores_busy_while_producing": busy, "best_replay": best["replay"],
                   "best_baseline": best["baseline"], "replay_vs_pipeline": round(rep / base, 3)},
        ),
        Result(
            stage=f"replay produce alone (DuckDB -> Kafka, nobody consuming), {shape}",
            ours=round(prod), baseline=round(base), unit="ticks/s (wall)",
            target="reported: above the pipeline's rate means the worker is the bottleneck",
            notes="N / the replay's own wall time (store pages to the last ack), as the CLI prints",
            extra={"best_produce": best["produce"]},
        ),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small run (< 60 s)")
    args = parser.parse_args()
    n_inst, per, repeat = (20, 2500, 1) if args.quick else (20, 5000, 3)
    servers = bootstrap()
    check_kafka(servers)
    with tempfile.TemporaryDirectory() as tmp:
        ctx = Ctx(servers, Path(tmp) / "session.duckdb", n_inst, 0, Path(tmp), uuid.uuid4().hex[:8])
        ctx.n = asyncio.run(build_store(ctx.store, n_inst, per))
        try:
            rounds = measure(ctx, repeat)
        finally:
            cleanup(ctx)
    emit("replay_kafka", results(ctx, per, rounds))


if __name__ == "__main__":
    main()
