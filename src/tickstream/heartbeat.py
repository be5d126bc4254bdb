"""Liveness for processes without an HTTP port (ingest, process workers).

``HeartbeatFile`` is a runtime component that rewrites a small JSON file every few seconds with the
wall time and a status callback's verdict; ``tickstream healthcheck --heartbeat-file`` reads it for
container health checks. The write is atomic (temp file + rename), so a reader never sees half a
file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["HeartbeatFile", "read_heartbeat"]

log = logging.getLogger(__name__)


class HeartbeatFile:
    def __init__(
        self,
        path: Path,
        component: str,
        status: Callable[[], dict[str, Any]] | None = None,
        interval_secs: float = 5.0,
    ) -> None:
        self.name = f"heartbeat:{component}"
        self.path = path
        self.component = component
        self._status = status
        self._interval = interval_secs
        self._task: asyncio.Task[None] | None = None

    def write(self) -> None:
        status = self._status() if self._status else {"ok": True}
        doc = {"component": self.component, "ts": time.time(), "pid": os.getpid(), **status}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc))
        tmp.replace(self.path)

    async def _loop(self) -> None:
        while True:
            try:
                self.write()
            except OSError as exc:
                log.warning("cannot write heartbeat %s: %s", self.path, exc)
            await asyncio.sleep(self._interval)

    async def start(self) -> None:
        self.write()
        self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(OSError):
            self.path.unlink()


def read_heartbeat(path: Path, max_age_secs: float, now: float | None = None) -> tuple[bool, str]:
    """(healthy, reason) from a heartbeat file."""
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return False, f"no heartbeat file at {path}"
    except (OSError, ValueError) as exc:
        return False, f"unreadable heartbeat file {path}: {exc}"
    age = (time.time() if now is None else now) - float(doc.get("ts", 0))
    if age > max_age_secs:
        return False, f"heartbeat is {age:.0f}s old (limit {max_age_secs:.0f}s)"
    if not doc.get("ok", True):
        return False, str(doc.get("reason", "component reports not ok"))
    return True, f"{doc.get('component', '?')} ok, heartbeat {age:.1f}s old"
