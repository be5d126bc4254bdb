"""Composition root: which components a process runs, chosen from Settings.

``tickstream run`` = feed (simulator or broker) → pipeline → bus → storage sinks → HTTP server, all
in one process. Each piece is built by a small factory here so the scaled-out commands (ingest,
process, serve) reuse exactly the same factories.
"""

from __future__ import annotations

import logging

from tickstream.bus.memory import MemoryBus
from tickstream.config import Settings
from tickstream.runtime import FunctionComponent, Runtime

__all__ = ["build_runtime"]

log = logging.getLogger(__name__)


async def build_runtime(settings: Settings) -> Runtime:
    runtime = Runtime()
    bus = MemoryBus()
    runtime.add(FunctionComponent("bus:memory", bus.start, bus.close))
    return runtime
