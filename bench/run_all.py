"""Run every benchmark in bench/ and print one table (ours, baseline, ratio, target, pass).

Each bench script prints one JSON document (see _common.py) and writes .bench/<name>.json; this
runner runs them one after the other (never in parallel: they would measure each other), then
writes .bench/summary.json and prints the table. ``--quick`` passes --quick to every script.
A script that fails is reported in the table, and the run exits non-zero.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / ".bench"


def scripts(only: list[str]) -> list[Path]:
    found = sorted(HERE.glob("*.py"))
    found = [p for p in found if not p.name.startswith("_") and p.name != "run_all.py"]
    return [p for p in found if not only or p.stem in only]


def _last_line(text: str, default: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else default


def run(script: Path, quick: bool, timeout_s: float) -> tuple[dict[str, Any] | None, str, float]:
    cmd = [sys.executable, str(script)] + (["--quick"] if quick else [])
    t0 = time.monotonic()
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout_s:.0f}s", time.monotonic() - t0
    elapsed = time.monotonic() - t0
    if res.returncode != 0:
        return None, _last_line(res.stderr or res.stdout, f"exit {res.returncode}"), elapsed
    try:
        return json.loads(res.stdout[res.stdout.index("{") :]), "", elapsed
    except ValueError as exc:
        return None, f"no JSON on stdout: {exc}", elapsed


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "PASS" if value else "FAIL"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"
    return str(value)


HEADS = ["bench", "stage", "ours", "baseline", "unit", "ratio", "target", "passed"]


def table(rows: list[dict[str, Any]]) -> str:
    data = [[fmt(r.get(h)) for h in HEADS] for r in rows]
    widths = [max([len(h)] + [len(d[i]) for d in data]) for i, h in enumerate(HEADS)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))

    return "\n".join([line(HEADS), line(["-" * w for w in widths]), *(line(d) for d in data)])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="short runs (smoke)")
    ap.add_argument("--only", nargs="*", default=[], help="bench names (file stems) to run")
    ap.add_argument("--timeout-secs", type=float, default=240)
    args = ap.parse_args()
    rows: list[dict[str, Any]] = []
    failures = 0
    for script in scripts(args.only):
        print(f"running {script.name} ...", file=sys.stderr, flush=True)
        doc, error, elapsed = run(script, args.quick, args.timeout_secs)
        if doc is None:
            failures += 1
            rows.append({"bench": script.stem, "stage": f"ERROR: {error}", "passed": False})
            continue
        for r in doc.get("results", []):
            rows.append({"bench": doc.get("bench", script.stem), **r})
        print(f"  done in {elapsed:.0f}s", file=sys.stderr)
    OUT.mkdir(exist_ok=True)
    machine = {}
    if rows:
        from _common import machine as _machine

        machine = _machine()
    (OUT / "summary.json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=2))
    print(table(rows))
    print(f"\nmachine: {machine}")
    print(f"JSON: {OUT / 'summary.json'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
