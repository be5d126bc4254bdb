"""The simulator's REST servers: Kite and Angel One, each on its own loopback port.

Two uvicorn servers run inside the caller's event loop. They are separate (not one server with
``/kite`` and ``/angel`` prefixes) because both official SDKs build URLs with
``urljoin(root, "/absolute/route")``, which drops any path in the root URL: each broker's API must
sit at the root of its own origin, as it does in production. Use::

    async with SimRestServer(authority, default_universe(), prices=reference_prices()) as rest:
        kite = KiteConnect(api_key, root=rest.kite_root)
        smart = SmartConnect(api_key, root=rest.angel_root)

The official SDKs are synchronous; call them through ``asyncio.to_thread`` while the servers run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Final, Self

import uvicorn

from tickstream.model import Instrument
from tickstream.sim.angel_rest import create_angel_app
from tickstream.sim.kite_rest import create_kite_app
from tickstream.sim.rest_auth import TokenAuthority

__all__ = ["SimRestServer"]

log = logging.getLogger(__name__)

_START_POLL_S: Final = 0.01
_START_TIMEOUT_S: Final = 10.0


class _Served:
    """One uvicorn server running as a task in the current loop."""

    def __init__(self, app: Any, host: str, port: int) -> None:
        config = uvicorn.Config(
            app, host=host, port=port, lifespan="off", access_log=False, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.task: asyncio.Task[None] | None = None
        self.port = 0

    async def start(self) -> None:
        self.task = asyncio.create_task(self.server.serve())
        async with asyncio.timeout(_START_TIMEOUT_S):
            while not self.server.started:
                if self.task.done():
                    self.task.result()  # re-raise the start-up failure
                    raise RuntimeError("uvicorn stopped during start-up")
                await asyncio.sleep(_START_POLL_S)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.task is None:
            return
        self.server.should_exit = True
        await self.task
        self.task = None


class SimRestServer:
    """Async context manager serving the Kite and Angel REST apps on loopback.

    ``port``/``angel_port`` 0 pick free ports; read the URLs from :attr:`kite_root` and
    :attr:`angel_root`. ``redirect_url`` is where Kite's ``/connect/login`` sends the browser.
    """

    def __init__(
        self,
        authority: TokenAuthority,
        universe: Sequence[Instrument],
        *,
        prices: Mapping[str, float] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        angel_port: int = 0,
        redirect_url: str = "http://127.0.0.1/kite/redirect",
    ) -> None:
        self.host = host
        kite_app = create_kite_app(authority, universe, prices=prices, redirect_url=redirect_url)
        angel_app = create_angel_app(authority, universe, prices=prices)
        self._kite = _Served(kite_app, host, port)
        self._angel = _Served(angel_app, host, angel_port)

    @property
    def kite_root(self) -> str:
        return self._root(self._kite)

    @property
    def angel_root(self) -> str:
        return self._root(self._angel)

    def _root(self, served: _Served) -> str:
        if not served.port:
            raise RuntimeError("SimRestServer is not running")
        return f"http://{self.host}:{served.port}"

    async def start(self) -> None:
        try:
            await self._kite.start()
            await self._angel.start()
        except BaseException:
            await self.stop()
            raise
        log.info("sim REST: kite %s, angel %s", self.kite_root, self.angel_root)

    async def stop(self) -> None:
        await asyncio.gather(self._angel.stop(), self._kite.stop())

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
