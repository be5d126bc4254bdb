"""Backfill: historical candles for many symbols into the store, chunk by chunk, resumable.

Work is (symbol, chunk) units, chunks cut at the primary source's maximum range per request.
After a unit's candles are written (an idempotent upsert) its id goes into a small JSON state
file; a rerun with the same parameters skips finished units, so an interrupted backfill resumes
where it stopped and never duplicates rows. A unit that neither source can serve is recorded as
failed (the symbol is excluded and logged by :class:`~tickstream.feeds.history.HistoryService`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from tickstream.feeds.history import HistoryService, chunk_range
from tickstream.model import Candle, Instrument, Interval

__all__ = ["BackfillPlan", "BackfillResult", "BackfillState", "CandleSink", "run_backfill"]

log = logging.getLogger(__name__)


class CandleSink(Protocol):
    async def write_candles(self, candles: Sequence[Candle]) -> int: ...


@dataclass(frozen=True)
class BackfillPlan:
    instruments: Sequence[Instrument]
    interval: Interval
    start_ns: int
    end_ns: int

    def key(self, source: str) -> str:
        """Identifies the parameters: a state file only resumes the same backfill."""
        text = "|".join(
            [
                source, self.interval.value, str(self.start_ns), str(self.end_ns),
                *sorted(i.key for i in self.instruments),
            ]
        )  # fmt: skip
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def units(self, max_days: int) -> list[tuple[Instrument, int, int]]:
        chunks = chunk_range(self.start_ns, self.end_ns, max_days)
        return [(inst, a, b) for inst in self.instruments for a, b in chunks]


@dataclass
class BackfillState:
    """Finished unit ids, persisted atomically after every unit."""

    path: Path | None
    key: str
    done: set[str] = field(default_factory=set)

    @classmethod
    def load(cls, path: Path | None, key: str) -> BackfillState:
        if path is None or not path.is_file():
            return cls(path, key)
        try:
            data = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError):
            log.warning("backfill: unreadable state file %s; starting over", path)
            return cls(path, key)
        if data.get("key") != key:
            log.info("backfill: state file %s is for other parameters; starting over", path)
            return cls(path, key)
        return cls(path, key, set(data.get("done", [])))

    def mark(self, unit: str) -> None:
        self.done.add(unit)
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        tmp.write_text(json.dumps({"key": self.key, "done": sorted(self.done)}), "utf-8")
        os.replace(tmp, self.path)


@dataclass
class BackfillResult:
    candles: int = 0
    units: int = 0
    skipped: int = 0
    failed: list[str] = field(default_factory=list)
    fell_back: list[str] = field(default_factory=list)


def unit_id(inst: Instrument, start_ns: int) -> str:
    return f"{inst.key}@{start_ns}"


async def run_backfill(
    plan: BackfillPlan,
    service: HistoryService,
    sink: CandleSink,
    *,
    state_path: Path | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> BackfillResult:
    """Fetch and store every unit of ``plan`` not already done; ``progress(done, total, what)``."""
    state = BackfillState.load(state_path, plan.key(service.primary.name))
    units = plan.units(service.primary.max_days(plan.interval))
    result = BackfillResult()
    for n, (inst, a, b) in enumerate(units, start=1):
        uid = unit_id(inst, a)
        if uid in state.done:
            result.skipped += 1
        elif inst.symbol in service.excluded:
            result.failed.append(uid)
        else:
            candles = await service.candles(inst, plan.interval, a, b)
            if candles is None:
                result.failed.append(uid)
            else:
                result.candles += await sink.write_candles(candles) if candles else 0
                result.units += 1
                state.mark(uid)
        if progress is not None:
            progress(n, len(units), inst.symbol)
    result.fell_back = sorted(set(service.fell_back))
    return result
