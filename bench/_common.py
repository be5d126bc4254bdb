"""Shared shape for every benchmark: one JSON document on stdout, ours beside a baseline.

Each bench script builds ``Result`` rows and calls :func:`emit`. ``ratio`` is always
"how many times better than the baseline" (higher is better) so the table reads one way:
for throughputs it is ours / baseline, for latencies and times baseline / ours.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

OUT_DIR = Path(__file__).resolve().parent.parent / ".bench"


@dataclass
class Result:
    stage: str
    ours: float
    baseline: float | None
    unit: str
    higher_is_better: bool = True
    target: str = ""
    passed: bool | None = None
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0) or self.ours == 0:
            return None
        assert self.baseline is not None
        return self.ours / self.baseline if self.higher_is_better else self.baseline / self.ours


def machine() -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
    }


def best_rate(fn: Callable[[], int], repeat: int = 5) -> float:
    """Items per second of the best of ``repeat`` runs; ``fn`` returns how many items it did."""
    best = 0.0
    for _ in range(repeat):
        t0 = time.perf_counter()
        n = fn()
        dt = time.perf_counter() - t0
        best = max(best, n / dt)
    return best


def emit(bench: str, results: list[Result]) -> dict[str, Any]:
    doc = {
        "bench": bench,
        "machine": machine(),
        "results": [asdict(r) | {"ratio": r.ratio} for r in results],
    }
    OUT_DIR.mkdir(exist_ok=True)
    (OUT_DIR / f"{bench}.json").write_text(json.dumps(doc, indent=2))
    print(json.dumps(doc, indent=2))
    return doc
