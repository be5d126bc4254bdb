"""REST routes: service info, health, stats, symbols, feed subscription and historical queries.

Every query parameter is validated here (types by FastAPI, meaning by :mod:`tickstream.serve.query`)
so bad input is a 4xx with a message, never a 500; stores take parameters, never built SQL.
Times go out as epoch ns plus an ISO-8601 IST string.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Annotated, Any, Final

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request, Security
from fastapi.responses import RedirectResponse, Response
from fastapi.security import APIKeyHeader

from tickstream.model import Exchange, Instrument, Interval, Mode
from tickstream.serve import query as q
from tickstream.serve.health import health_report, stats_report
from tickstream.serve.security import ApiKey, AuthError, Scope
from tickstream.serve.state import ServeState
from tickstream.serve.wire import (
    candles_rest_array,
    encode,
    envelope_array,
    instrument_dict,
    split_tick_blob,
    tick_rest_json,
    ticks_rest_array,
)
from tickstream.storage.base import StoreUnavailableError, TickBlob, TickStore

__all__ = ["router", "tick_page", "v1"]

log = logging.getLogger(__name__)
router = APIRouter()
_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="tickstream API key")
# Ticks encoded per event-loop turn (~3 ms with full depth): a 10k-tick page must not hold up the
# WebSocket fan-out for the ~40 ms it takes to encode.
_TICKS_PER_TURN: Final = 1000


def _state(request: Request) -> ServeState:
    state: ServeState = request.app.state.serve
    return state


def _json(obj: Any, status: int = 200) -> Response:
    return Response(encode(obj), status_code=status, media_type="application/json")


def _require(scope: Scope) -> Any:
    # async: FastAPI runs a plain-def dependency on its thread pool, and that hop (a worker thread
    # taking the GIL, then a wake-up of the loop) was most of a small request's overhead while the
    # WebSocket fan-out is busy. Only a key's first use (scrypt) still goes to a thread.
    async def check(request: Request, key: str | None = Security(_key_header)) -> ApiKey:
        if key is None:
            auth = request.headers.get("authorization", "")
            key = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        address = request.client.host if request.client else "?"
        authenticator = _state(request).auth
        try:
            if not key or authenticator.keys.lookup(key) is not None:  # no scrypt to run
                return authenticator.authenticate(key, scope, address)
            return await asyncio.to_thread(authenticator.authenticate, key, scope, address)
        except AuthError as exc:
            headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
            raise HTTPException(exc.status, exc.message, headers=headers) from None

    return Depends(check)


READ = _require(Scope.READ)
ADMIN = _require(Scope.ADMIN)


def _store(state: ServeState) -> TickStore:
    if state.ctx.store is None:
        raise HTTPException(503, "no store is configured in this process")
    return state.ctx.store


@router.get("/", summary="Service info (browsers are sent to the dashboard)", response_model=None)
async def root(request: Request) -> Response:
    if "text/html" in request.headers.get("accept", ""):
        return RedirectResponse("/dashboard/", status_code=307)
    s = _state(request)
    return _json(
        {
            "service": "tickstream",
            "version": s.version,
            "feed": s.ctx.settings.resolved_feed(),
            "instruments": len(s.resolver),
            "time_ns": time.time_ns(),
            "links": {"dashboard": "/dashboard/", "docs": "/docs", "health": "/health"},
        }
    )


@router.get("/health", summary="Feeds connected, bus and store reachable, ticks flowing")
async def health(request: Request) -> Response:
    report = await health_report(_state(request))
    return _json(report, 200 if report["status"] == "ok" else 503)


@router.get("/stats", summary="Per-stage counters, per-feed health, stream lag")
async def stats(request: Request, _: ApiKey = READ) -> Response:
    return _json(stats_report(_state(request)))


@router.get("/symbols", summary="The subscribed universe with the latest tick of each")
async def symbols(request: Request, _: ApiKey = READ) -> Response:
    s = _state(request)
    latest = s.ctx.state
    out = []
    for inst in s.resolver.all():
        row = instrument_dict(inst)
        tick = latest.get_tick(inst.exchange, inst.token) if latest is not None else None
        row["ltp"] = tick.ltp if tick else None
        row["status"] = tick.status.value if tick else None
        row["ts_exchange"] = tick.ts_exchange if tick else None
        out.append(row)
    return _json({"count": len(out), "symbols": out})


@router.post("/subscribe", summary="Add instruments to the running feeds (admin)")
async def subscribe(
    request: Request,
    instruments: Annotated[list[int | str], Body(min_length=1, max_length=1000)],
    mode: Annotated[Mode, Body()] = Mode.QUOTE,
    _: ApiKey = ADMIN,
) -> Response:
    s = _state(request)
    if s.ctx.subscribe is None:
        raise HTTPException(503, "this process runs no feeds (subscribe on the ingest process)")
    found: list[Instrument] = []
    refused: list[dict[str, Any]] = []
    for ref in instruments:
        inst = await _lookup(s, ref)
        if isinstance(inst, str):
            refused.append({"ref": ref, "reason": inst})
        else:
            found.append(inst)
    result: dict[str, Any] = {}
    if found:
        result = await s.ctx.subscribe(found, mode)
        s.resolver.add(found)
    status = 200 if found else 422
    accepted = [i.key for i in found]
    return _json({"accepted": accepted, "refused": refused, "mode": mode, "result": result}, status)


async def _lookup(s: ServeState, ref: int | str) -> Instrument | str:
    found = s.resolver.resolve(ref)
    if not isinstance(found, str) or s.ctx.store is None or isinstance(ref, int):
        return found
    exchange, _, symbol = ref.rpartition(":")
    try:
        hits = await s.ctx.store.search_instruments(symbol, exchange=exchange or None, limit=5)
    except StoreUnavailableError:
        return found
    exact = [h for h in hits if h.symbol.upper() == symbol.upper()]
    return exact[0] if len(exact) == 1 else found


v1 = APIRouter(prefix="/api/v1")


@v1.get("/instruments/search", summary="Instruments by symbol or name (substring)")
async def search_instruments(
    request: Request,
    query: Annotated[str, Query(min_length=1, max_length=64)],
    exchange: Exchange | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    _: ApiKey = READ,
) -> Response:
    s = _state(request)
    ex = None if exchange is None else exchange.value
    if s.ctx.store is None:
        hits = q.search_universe(s.resolver.all(), query, ex, limit)
    else:
        try:
            hits = await s.ctx.store.search_instruments(query, exchange=ex, limit=limit)
        except StoreUnavailableError:
            raise HTTPException(503, "store unavailable; retry shortly") from None
        if not hits:
            hits = q.search_universe(s.resolver.all(), query, ex, limit)
    return _json({"query": query, "results": [instrument_dict(i) for i in hits]})


@v1.get("/historical/ticks", summary="One instrument's ticks in [start, end), keyset paginated")
async def historical_ticks(
    request: Request,
    instrument: Annotated[str, Query(min_length=1, max_length=64)],
    start: Annotated[str | None, Query(max_length=40)] = None,
    end: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=q.MAX_TICKS_LIMIT)] = 1000,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    _: ApiKey = READ,
) -> Response:
    s = _state(request)
    store = _store(s)
    ex, token, symbol = _instrument(s, instrument)
    start_ns, end_ns = _range(start, end, q.MAX_TICK_RANGE_NS)
    try:
        count, next_cursor, ticks = await tick_page(
            store, ex, token, start_ns, end_ns, limit=limit, after=cursor
        )
    except StoreUnavailableError:
        raise HTTPException(503, "store unavailable; retry shortly") from None
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    meta = {
        "instrument": f"{ex}:{token}",
        "symbol": symbol,
        "start": start_ns,
        "end": end_ns,
        "count": count,
        "next_cursor": next_cursor,
    }
    return Response(envelope_array(meta, "ticks", ticks), media_type="application/json")


async def tick_page(
    store: TickStore,
    exchange: str,
    token: int,
    start_ns: int,
    end_ns: int,
    *,
    limit: int,
    after: str | None,
) -> tuple[int, str | None, bytes]:
    """One page of ticks as (count, next cursor, JSON array of REST ticks).

    From the store's undecoded page (``query_tick_blob``) when it has one: no Tick objects, and
    the encoding yields to the event loop every ``_TICKS_PER_TURN`` ticks. Otherwise from
    ``query_ticks``; both give the same bytes."""
    query_blob = getattr(store, "query_tick_blob", None)
    if query_blob is None:
        page = await store.query_ticks(exchange, token, start_ns, end_ns, limit=limit, after=after)
        items = b",".join([tick_rest_json(t) for t in page.ticks])
        return len(page.ticks), page.next_cursor, b"[" + items + b"]"
    blob: TickBlob = await query_blob(exchange, token, start_ns, end_ns, limit=limit, after=after)
    if blob.n <= _TICKS_PER_TURN:
        return blob.n, blob.next_cursor, ticks_rest_array(blob.blob)
    parts: list[bytes | memoryview] = [b"["]
    for chunk in split_tick_blob(blob.blob, _TICKS_PER_TURN):
        await asyncio.sleep(0)  # the fan-out runs between chunks
        parts += (memoryview(ticks_rest_array(chunk))[1:-1], b",")
    parts[-1] = b"]"
    return blob.n, blob.next_cursor, b"".join(parts)  # the one copy of the page


@v1.get("/historical/candles", summary="One instrument's candles in [start, end)")
async def historical_candles(
    request: Request,
    instrument: Annotated[str, Query(min_length=1, max_length=64)],
    interval: Annotated[str, Query(max_length=10)] = "1m",
    start: Annotated[str | None, Query(max_length=40)] = None,
    end: Annotated[str | None, Query(max_length=40)] = None,
    indicators: bool = True,
    _: ApiKey = READ,
) -> Response:
    s = _state(request)
    store = _store(s)
    try:
        iv = Interval.parse(interval)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    ex, token, symbol = _instrument(s, instrument)
    start_ns, end_ns = _range(start, end, iv.nanos * q.MAX_CANDLES)
    try:
        candles = await store.query_candles(ex, token, iv, start_ns, end_ns)
    except StoreUnavailableError:
        raise HTTPException(503, "store unavailable; retry shortly") from None
    meta = {
        "instrument": f"{ex}:{token}",
        "symbol": symbol,
        "interval": iv.value,
        "start": start_ns,
        "end": end_ns,
        "count": len(candles),
    }
    body = envelope_array(meta, "candles", candles_rest_array(candles, indicators=indicators))
    return Response(body, media_type="application/json")


def _instrument(s: ServeState, ref: str) -> tuple[str, int, str | None]:
    found = s.resolver.resolve(ref)
    if isinstance(found, Instrument):
        return found.exchange, found.token, found.symbol
    parsed = q.parse_key(ref)
    if parsed is None:
        raise HTTPException(404, found)
    return parsed[0], parsed[1], None


def _range(start: str | None, end: str | None, max_span_ns: int) -> tuple[int, int]:
    try:
        return q.time_range(start, end, max_span_ns, now_ns=time.time_ns())
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=True)
async def metrics(request: Request) -> Response:
    body, content_type = _state(request).metrics.render()
    return Response(body, media_type=content_type)
