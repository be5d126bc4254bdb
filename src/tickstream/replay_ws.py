"""WebSocket ``/ws/replay``: one client plays a stored day (the dashboard's "play a past day").

Connect with the replay in the query string::

    /ws/replay?date=2024-11-21&symbols=RELIANCE,NSE:1594&speed=10&from=09:15&to=15:30

The ticks go through a private :class:`~tickstream.pipeline.engine.PipelineEngine` (the live
stages: normalize, dedup, sequence, candles, indicators) that lives as long as the connection and
writes nothing, so a viewer never touches stored rows. Server messages (JSON objects):

* ``{"type": "start", "replay_id", "instruments": [{exchange, token, symbol}], "start_ns",
  "end_ns", "speed"}`` (speed null = max);
* ``{"type": "ticks", "data": [tick, ...]}`` accepted ticks (``source`` = ``"replay"``);
* ``{"type": "candles", "data": [candle, ...]}`` closed candles with indicators;
* ``{"type": "state", "paused", "speed", "position_ns", "emitted"}`` after every control;
* ``{"type": "end", "emitted"}`` then a normal close (1000);
* ``{"type": "error", "message"}``; bad query parameters close with 1008.

Client messages: ``{"action": "pause"}``, ``{"action": "resume"}``, ``{"action": "speed",
"speed": 10 | "max"}``, ``{"action": "seek", "ts": <epoch ns>}`` or ``{"action": "seek", "time":
"HH:MM"}`` (IST, on the replayed day; a seek restarts the private engine, since its candles would
otherwise see time run backwards).

Sending awaits the socket, so a slow client slows the replay down (back-pressure, no queue).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final

import msgspec
from fastapi import APIRouter
from starlette.websockets import WebSocket, WebSocketDisconnect

from tickstream.calendar import ist_date, ist_ns
from tickstream.model import Instrument, Tick
from tickstream.pipeline.engine import EngineConfig, EngineOutput, PipelineEngine
from tickstream.replay import Replay, ReplaySpec, day_range, parse_speed, resolve_instruments
from tickstream.replay.source import parse_hhmm
from tickstream.storage.base import TickStore

__all__ = ["replay_router", "replay_websocket"]

log = logging.getLogger(__name__)

CLOSE_POLICY: Final = 1008
_encode = msgspec.json.Encoder().encode
StoreGetter = Callable[[], TickStore | Awaitable[TickStore]]
Authorize = Callable[[WebSocket], Awaitable[bool]]


class _BadRequest(ValueError):
    pass


async def replay_websocket(
    websocket: WebSocket,
    store: TickStore,
    *,
    engine_config: EngineConfig | None = None,
    universe: Sequence[Instrument] = (),
    max_instruments: int = 50,
) -> None:
    """Serve one replay to ``websocket`` (accepts it); returns when the replay or client ends."""
    await websocket.accept()
    try:
        rep = await _replay_from_query(websocket.query_params, store, universe, max_instruments)
    except _BadRequest as exc:
        await websocket.send_text(_encode({"type": "error", "message": str(exc)}).decode())
        await websocket.close(CLOSE_POLICY)
        return
    session = _Session(websocket, rep, engine_config)
    await session.run()


async def _replay_from_query(
    query: Mapping[str, str], store: TickStore, universe: Sequence[Instrument], max_instruments: int
) -> Replay:
    try:
        day = dt.date.fromisoformat(query.get("date", ""))
        start_ns, end_ns = day_range(day, query.get("from"), query.get("to"))
        speed = parse_speed(query.get("speed", "1"))
        names = [s.strip() for s in query.get("symbols", "").split(",") if s.strip()]
        if not names or len(names) > max_instruments:
            raise ValueError(f"symbols: give 1 to {max_instruments} symbols or EXCHANGE:TOKEN")
        insts = await resolve_instruments(store, names, universe)
    except ValueError as exc:
        raise _BadRequest(str(exc)) from None
    spec = ReplaySpec(tuple(insts), start_ns, end_ns, speed=speed, batch_size=500)
    return Replay(store, spec, replay_id=f"ws-{day.isoformat()}")


class _Session:
    """One connection: the replay task, the control reader, and the private engine."""

    def __init__(self, ws: WebSocket, rep: Replay, config: EngineConfig | None) -> None:
        self.ws, self.rep, self.config = ws, rep, config
        self.engine = PipelineEngine(config)
        self._send_lock = asyncio.Lock()

    async def run(self) -> None:
        spec = self.rep.spec
        await self.send({
            "type": "start", "replay_id": self.rep.replay_id,
            "instruments": [
                {"exchange": i.exchange, "token": i.token, "symbol": i.symbol}
                for i in spec.instruments
            ],
            "start_ns": spec.start_ns, "end_ns": spec.end_ns, "speed": spec.speed,
        })  # fmt: skip
        play = asyncio.create_task(self._play(), name="replay-ws:play")
        read = asyncio.create_task(self._read(), name="replay-ws:read")
        done, pending = await asyncio.wait({play, read}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                await task
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                log.warning("replay websocket ended: %r", task.exception())

    async def send(self, message: dict[str, Any]) -> None:
        async with self._send_lock:
            await self.ws.send_text(_encode(message).decode())

    async def _play(self) -> None:
        await self.rep.run(self._deliver)
        await self._emit(self.engine.flush())
        await self.send({"type": "end", "emitted": self.rep.emitted})
        await self.ws.close(1000)

    async def _deliver(self, batch: list[Tick]) -> None:
        await self._emit(self.engine.process(batch, time.monotonic_ns()))

    async def _emit(self, out: EngineOutput) -> None:
        if out.ticks:
            await self.send({"type": "ticks", "data": out.ticks})
        candles = out.enriched or out.candles + out.revisions
        if candles:
            await self.send({"type": "candles", "data": candles})

    async def _read(self) -> None:
        while True:
            raw = await self.ws.receive_text()
            try:
                msg = msgspec.json.decode(raw)
                if not isinstance(msg, dict):
                    raise ValueError("expected a JSON object")
                self._control(msg)
            except (ValueError, msgspec.DecodeError) as exc:
                await self.send({"type": "error", "message": str(exc)})
                continue
            rep = self.rep
            await self.send({
                "type": "state", "paused": rep.paused, "speed": rep.speed,
                "position_ns": rep.position_ns, "emitted": rep.emitted,
            })  # fmt: skip

    def _control(self, msg: dict[str, Any]) -> None:
        action, rep = msg.get("action"), self.rep
        if action == "pause":
            rep.pause()
        elif action == "resume":
            rep.resume()
        elif action == "speed":
            rep.set_speed(parse_speed(msg.get("speed")))
        elif action == "seek":
            rep.seek(self._seek_target(msg))
            self.engine = PipelineEngine(self.config)
        else:
            raise ValueError(f"unknown action {action!r}; expected pause, resume, speed or seek")

    def _seek_target(self, msg: dict[str, Any]) -> int:
        if isinstance(msg.get("ts"), int):
            return int(msg["ts"])
        if isinstance(msg.get("time"), str):
            h, m = parse_hhmm(msg["time"])
            return ist_ns(ist_date(self.rep.spec.start_ns), h, m)
        raise ValueError("seek needs 'ts' (epoch ns) or 'time' (HH:MM IST)")


def replay_router(
    get_store: StoreGetter,
    *,
    path: str = "/ws/replay",
    authorize: Authorize | None = None,
    engine_config: EngineConfig | None = None,
    universe: Sequence[Instrument] = (),
) -> APIRouter:
    """An APIRouter with the replay WebSocket at ``path``; ``get_store`` returns the open store
    (or an awaitable of it); ``authorize`` may refuse a client before it is accepted."""
    router = APIRouter()

    @router.websocket(path)
    async def replay_ws(websocket: WebSocket) -> None:
        if authorize is not None and not await authorize(websocket):
            await websocket.close(CLOSE_POLICY)
            return
        got = get_store()
        store = await got if inspect.isawaitable(got) else got
        await replay_websocket(websocket, store, engine_config=engine_config, universe=universe)

    return router
