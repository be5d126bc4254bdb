"""Running the app under uvicorn as a runtime component (``name``, ``start()``, ``stop()``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Final

import uvicorn
from fastapi import FastAPI

__all__ = ["WS_MAX_FRAME_BYTES", "HttpServer"]

log = logging.getLogger(__name__)

WS_MAX_FRAME_BYTES: Final = 4 * 1024 * 1024  # transport cap; the app closes above 256 KiB (1009)


class HttpServer:
    """uvicorn serving ``app`` on ``host:port`` (port 0: an ephemeral port, see :attr:`port`)."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 8000) -> None:
        self.name = f"http:{host}:{port}"
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            ws="websockets-sansio",
            ws_per_message_deflate=False,  # compressing every batch costs the loop ~7% at 10k/s
            ws_max_size=WS_MAX_FRAME_BYTES,
            ws_ping_interval=20.0,
            ws_ping_timeout=20.0,
            lifespan="on",
            log_config=None,  # the process's logging setup applies
            access_log=False,
            server_header=False,
        )
        self.server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        servers = getattr(self.server, "servers", None) or []
        for srv in servers:
            for sock in srv.sockets:
                return int(sock.getsockname()[1])
        return int(self.server.config.port)

    async def start(self) -> None:
        self._task = asyncio.create_task(self.server.serve(), name=self.name)
        while not self.server.started:
            if self._task.done():
                self._task.result()  # re-raise why it could not start (port in use, ...)
                raise RuntimeError(f"{self.name} stopped before it started")
            await asyncio.sleep(0.02)
        log.info("serving on http://%s:%d", self.server.config.host, self.port)

    async def stop(self) -> None:
        if self._task is None:
            return
        self.server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
