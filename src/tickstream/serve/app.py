"""The FastAPI application: ``create_app(ctx)`` wires REST, WebSocket, metrics and the dashboard.

Routes: ``/`` (service info; browsers are redirected to ``/dashboard/``), ``/health``, ``/stats``,
``/symbols``, ``POST /subscribe``, ``/api/v1/...``, ``/metrics``, ``/ws``, ``/dashboard/`` and
``/static/...``; OpenAPI at ``/docs``. Public: ``/``, ``/health``, ``/metrics``, the dashboard
files and the docs; everything else needs an API key (``read``; ``admin`` for ``/subscribe``).

The charting library is not part of the repository: ``npm ci --prefix web`` installs it under
``web/node_modules`` and ``/static/vendor/lightweight-charts.js`` serves it from there. When it is
missing the dashboard says how to install it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import metadata
from pathlib import Path
from typing import Final

from fastapi import FastAPI, Request, WebSocket
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from tickstream.serve.context import ServeContext
from tickstream.serve.fanout import Hub, WsLimits
from tickstream.serve.metrics import Metrics, StatsCollector
from tickstream.serve.resolve import Resolver
from tickstream.serve.rest import router, v1
from tickstream.serve.security import Authenticator, KeyStore, bootstrap_keys
from tickstream.serve.state import ServeState
from tickstream.serve.ws import WsEndpoint
from tickstream.storage.base import StoreUnavailableError

__all__ = ["STATIC_DIR", "create_app", "default_key_file", "vendor_script"]

log = logging.getLogger(__name__)

STATIC_DIR: Final = Path(__file__).resolve().parent / "static"
_REPO_ROOT: Final = Path(__file__).resolve().parents[3]
_VENDOR: Final = Path(
    "node_modules/lightweight-charts/dist/lightweight-charts.standalone.production.js"
)
_LOOPBACK: Final = frozenset({"127.0.0.1", "localhost", "::1"})
_MISSING_VENDOR_JS: Final = (
    "window.__tickstreamVendorMissing = 'The chart library is not installed: run "
    "`npm ci --prefix web` (the install step of `make run`) and reload.';\n"
)


def vendor_script(web_dir: Path | None = None) -> Path | None:
    """The lightweight-charts bundle under ``web_dir`` (default: the repo's ``web/``, then cwd)."""
    candidates = [web_dir] if web_dir is not None else [_REPO_ROOT / "web", Path.cwd() / "web"]
    for base in candidates:
        path = base / _VENDOR
        if path.is_file():
            return path
    return None


def default_key_file(ctx: ServeContext) -> Path:
    return ctx.settings.api_key_file or ctx.settings.data_dir / "api_keys.json"


def _announce(key: str, url: str) -> None:
    # Shown exactly once, on the terminal, never through logging (logs are kept and shipped).
    sys.stderr.write(
        f"\n  New admin API key (shown once, stored hashed): {key}\n"
        f"  Dashboard: {url}/dashboard/#key={key}\n\n"
    )
    sys.stderr.flush()


def _version() -> str:
    try:
        return metadata.version("tickstream")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def _build_state(ctx: ServeContext, keys: KeyStore | None, limits: WsLimits | None) -> ServeState:
    settings = ctx.settings
    if keys is None:
        loopback = settings.host in _LOOPBACK
        keys, plaintext = bootstrap_keys(default_key_file(ctx), loopback=loopback)
        if plaintext is not None:
            _announce(plaintext, f"http://{settings.host}:{settings.port}")
    resolver = Resolver(ctx.instruments)
    hub = Hub(
        ctx.bus, ctx.ring, resolver, limits or WsLimits(queue_max=settings.ws_client_queue_max)
    )
    metrics = Metrics(StatsCollector(ctx.stats, ctx.feed_health, hub.stats, lambda: hub.lag_ns))
    return ServeState(ctx, resolver, Authenticator(keys), hub, metrics, _version())


def create_app(
    ctx: ServeContext,
    *,
    keys: KeyStore | None = None,
    limits: WsLimits | None = None,
    web_dir: Path | None = None,
) -> FastAPI:
    """The app for ``ctx``. ``keys`` defaults to the key file (bootstrapped on loopback)."""
    state = _build_state(ctx, keys, limits)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await state.hub.start()
        try:
            yield
        finally:
            await state.hub.stop()

    app = FastAPI(
        title="tickstream",
        version=state.version,
        summary="Indian market data: live ticks, candles and indicators",
        lifespan=lifespan,
    )
    app.state.serve = state
    origins = list(ctx.settings.cors_origins)
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_credentials=False,  # keys travel in a header, never in cookies
            allow_methods=["GET", "POST"],
            allow_headers=["X-API-Key", "Authorization", "Content-Type"],
        )
    app.include_router(router)
    app.include_router(v1)
    _ws_route(app, WsEndpoint(state.hub, state.auth, frozenset(origins)))
    _mount_replay(app, ctx, state, frozenset(origins))
    _static_routes(app, vendor_script(web_dir))
    app.add_exception_handler(StoreUnavailableError, _store_unavailable)
    return app


def _ws_route(app: FastAPI, endpoint: WsEndpoint) -> None:
    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await endpoint(websocket)


def _mount_replay(
    app: FastAPI, ctx: ServeContext, state: ServeState, origins: frozenset[str]
) -> None:
    """``/ws/replay``: one client plays a stored day; same Origin and key checks as ``/ws``."""
    store = ctx.store
    if store is None:
        return
    from tickstream.replay_ws import replay_router
    from tickstream.serve.security import AuthError, Scope
    from tickstream.serve.ws import _origin_allowed, _presented_key

    async def authorize(ws: WebSocket) -> bool:
        if not _origin_allowed(ws, origins):
            return False
        key, _ = _presented_key(ws)
        try:
            state.auth.authenticate(key, Scope.READ, ws.client.host if ws.client else "?")
        except AuthError:
            return False
        return True

    app.include_router(replay_router(lambda: store, authorize=authorize, universe=ctx.instruments))


def _static_routes(app: FastAPI, vendor: Path | None) -> None:
    index = STATIC_DIR / "index.html"

    @app.get("/static/vendor/lightweight-charts.js", include_in_schema=False, response_model=None)
    async def vendor_js() -> Response:
        if vendor is None:
            return Response(_MISSING_VENDOR_JS, media_type="text/javascript")
        return FileResponse(vendor, media_type="text/javascript")

    @app.get("/dashboard", include_in_schema=False)
    async def dashboard_redirect() -> RedirectResponse:
        return RedirectResponse("/dashboard/", status_code=307)

    @app.get("/dashboard/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(index, media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


async def _store_unavailable(_: Request, exc: Exception) -> Response:
    del exc
    return JSONResponse({"detail": "store unavailable; retry shortly"}, status_code=503)
