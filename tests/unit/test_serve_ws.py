"""WebSocket tests against a real uvicorn on an ephemeral loopback port."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from serve_support import make_context, make_keys
from websockets.asyncio.client import ClientConnection, connect
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from tickstream.model import NS_PER_SEC, Tick
from tickstream.pipeline.engine import TOPIC_ENRICHED, TOPIC_TICKS
from tickstream.serve.app import create_app
from tickstream.serve.context import ServeContext
from tickstream.serve.fanout import WsLimits
from tickstream.serve.server import HttpServer
from tickstream.serve.simfeed import SimFeeder
from tickstream.serve.state import ServeState

RECV_TIMEOUT = 10.0


class Env:
    def __init__(self, ctx: ServeContext, feeder: SimFeeder, server: HttpServer, key: str):
        self.ctx, self.feeder, self.server, self.key = ctx, feeder, server, key

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.port}/ws"

    @property
    def state(self) -> ServeState:
        app: Any = self.server.server.config.app
        state: ServeState = app.state.serve
        return state

    def open(self, **kw: Any) -> Any:
        headers = {"X-API-Key": self.key, **kw.pop("headers", {})}
        return connect(self.url, additional_headers=headers, **kw)


async def _env(tmp_path: Path, limits: WsLimits) -> AsyncIterator[Env]:
    ctx, feeder, _ = await make_context(tmp_path, steps=3)
    keys, read, _ = make_keys()
    app = create_app(ctx, keys=keys, limits=limits)
    server = HttpServer(app, "127.0.0.1", 0)
    await server.start()
    try:
        yield Env(ctx, feeder, server, read)
    finally:
        await server.stop()
        assert ctx.store is not None
        await ctx.store.close()


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async for e in _env(tmp_path, WsLimits(max_subscriptions=4, max_errors=3)):
        yield e


async def recv(ws: ClientConnection, kind: str | None = None) -> dict[str, Any]:
    """The next message (of ``kind``; pings skipped)."""
    while True:
        msg: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), RECV_TIMEOUT))
        if msg["type"] == "ping" or (kind is not None and msg["type"] != kind):
            continue
        return msg


def ticks_for(feeder: SimFeeder, key: str, n: int, start_ns: int) -> list[Tick]:
    """``n`` distinct ticks of one instrument, built from its current snapshot."""
    exchange, token = key.split(":")
    base = feeder.market.snapshot(exchange, int(token))
    return [
        msgspec.structs.replace(
            base, ts_exchange=start_ns + i * 1000, ts_recv=start_ns + i * 1000, ltp=100.0 + i
        )
        for i in range(n)
    ]


async def test_subscribe_gets_reply_then_backfill_then_live_ticks(env: Env) -> None:
    recent = await env.ctx.ring.recent("NSE", 2885)
    assert recent
    async with env.open() as ws:
        await ws.send(json.dumps({"action": "subscribe", "tokens": ["RELIANCE"]}))
        reply = await recv(ws)
        backfill = await recv(ws)
        live = ticks_for(env.feeder, "NSE:2885", 3, recent[-1].ts_exchange + NS_PER_SEC)
        await env.ctx.bus.publish_many(TOPIC_TICKS, live)
        got = await recv(ws, "ticks")
    assert reply["type"] == "subscribed"
    assert reply["accepted"] == ["NSE:2885"]
    assert backfill["type"] == "backfill"
    assert [t["ts_exchange"] for t in backfill["ticks"]] == [t.ts_exchange for t in recent]
    assert [t["ltp"] for t in got["data"]] == [100.0, 101.0, 102.0]
    assert {t["status"] for t in got["data"]} == {"LIVE"}


async def test_subscribe_refs_token_key_symbol_and_unknown(env: Env) -> None:
    async with env.open() as ws:
        await ws.send(
            json.dumps({"action": "subscribe", "tokens": [1594, "NSE:11536", "infy", "NOPE"]})
        )
        reply = await recv(ws, "subscribed")
    assert reply["accepted"] == ["NSE:1594", "NSE:11536"]
    assert reply["refused"] == [{"ref": "NOPE", "reason": "unknown instrument 'NOPE'"}]


async def test_unsubscribe_stops_ticks_for_that_instrument(env: Env) -> None:
    async with env.open() as ws:
        await ws.send(json.dumps({"action": "subscribe", "tokens": ["INFY", "TCS"], "backfill": 0}))
        await recv(ws, "subscribed")
        await ws.send(json.dumps({"action": "unsubscribe", "tokens": ["INFY"]}))
        gone = await recv(ws, "unsubscribed")
        await env.ctx.bus.publish_many(
            TOPIC_TICKS,
            ticks_for(env.feeder, "NSE:1594", 1, 1) + ticks_for(env.feeder, "NSE:11536", 1, 2),
        )
        got = await recv(ws, "ticks")
    assert gone["removed"] == ["NSE:1594"]
    assert [t["token"] for t in got["data"]] == [11536]


async def test_candles_channel_delivers_enriched_candles_of_interval(env: Env) -> None:
    async with env.open() as ws:
        await ws.send(
            json.dumps(
                {
                    "action": "subscribe",
                    "tokens": ["RELIANCE"],
                    "channels": ["candles"],
                    "intervals": ["1s"],
                }
            )
        )
        await recv(ws, "subscribed")
        candles = []
        for _ in range(6):
            env.feeder.clock._mono.t += NS_PER_SEC  # type: ignore[attr-defined]
            out = await env.feeder.step()
            candles += [c for c in out.enriched if c.token == 2885 and c.interval.value == "1s"]
            if candles:
                break
        got = await recv(ws, "candles")
    assert candles
    assert [(c["start"], c["close"]) for c in got["data"]] == [(c.start, c.close) for c in candles]


async def test_bad_json_and_unknown_action_get_errors_then_1008(env: Env) -> None:
    async with env.open() as ws:
        await ws.send("{not json")
        first = await recv(ws, "error")
        await ws.send(json.dumps({"action": "dance"}))
        second = await recv(ws, "error")
        await ws.send(json.dumps([1, 2]))
        third = await recv(ws, "error")
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await recv(ws)
    assert first["message"] == "malformed JSON"
    assert third["message"] == "expected a JSON object with an 'action'"
    assert "unknown action 'dance'" in second["message"]
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1008


async def test_one_mib_frame_closes_with_1009(env: Env) -> None:
    async with env.open() as ws:
        await ws.send("x" * (1 << 20))
        with pytest.raises(ConnectionClosed) as closed:
            await recv(ws)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009


async def test_ten_thousand_tokens_accepts_up_to_cap_and_refuses_rest(env: Env) -> None:
    tokens: list[object] = [
        "NIFTY 50",
        "NIFTY BANK",
        "RELIANCE",
        "INFY",
        "TCS",
        *range(100_000, 109_995),
    ]
    async with env.open() as ws:
        await ws.send(json.dumps({"action": "subscribe", "tokens": tokens, "backfill": 0}))
        reply = await recv(ws, "subscribed")
    assert reply["accepted"] == ["INDICES:1001", "INDICES:1016", "NSE:2885", "NSE:1594"]
    assert reply["refused"][0] == {"ref": "TCS", "reason": "subscription cap of 4 reached"}
    assert reply["refused_count"] == 9996
    assert reply["subscriptions"] == 4


async def test_handshake_without_key_is_refused(env: Env) -> None:
    with pytest.raises(InvalidStatus) as exc:
        async with connect(env.url):
            pass
    assert exc.value.response.status_code == 403


async def test_handshake_wrong_origin_is_refused(env: Env) -> None:
    with pytest.raises(InvalidStatus) as exc:
        async with env.open(origin="http://evil.example"):
            pass
    assert exc.value.response.status_code == 403
    assert env.state.hub.counts["rejected"] == 1


async def test_handshake_same_origin_with_key_subprotocol_is_accepted(env: Env) -> None:
    origin = f"http://127.0.0.1:{env.server.port}"
    protocols = ["tickstream.v1", f"key.{env.key}"]
    async with connect(env.url, origin=origin, subprotocols=protocols) as ws:  # type: ignore[arg-type]
        await ws.send(json.dumps({"action": "ping"}))
        pong = await recv(ws, "pong")
        assert ws.subprotocol == "tickstream.v1"
    assert pong["ts"] > 0


class RawClient:
    """A WebSocket client that reads only when told to (sans-I/O protocol over a raw socket
    with a tiny receive buffer), to play a client that stops reading."""

    def __init__(self, url: str, port: int, key: str) -> None:
        self.url, self.port, self.key = url, port, key
        self.proto = ClientProtocol(parse_uri(url))
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.setblocking(False)
        self.loop = asyncio.get_running_loop()
        self._pending: list[dict[str, Any]] = []

    async def _flush(self) -> None:
        for data in self.proto.data_to_send():
            if data:
                await self.loop.sock_sendall(self.sock, data)

    async def open(self) -> None:
        await self.loop.sock_connect(self.sock, ("127.0.0.1", self.port))
        request = self.proto.connect()
        request.headers["X-API-Key"] = self.key
        self.proto.send_request(request)
        await self._flush()
        while self.proto.state is not State.OPEN:
            self.proto.receive_data(await self.loop.sock_recv(self.sock, 65536))

    async def send(self, obj: dict[str, Any]) -> None:
        self.proto.send_text(json.dumps(obj).encode())
        await self._flush()

    async def recv(self) -> dict[str, Any]:
        while True:
            for event in self.proto.events_received():
                if isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                    self._pending.append(json.loads(bytes(event.data)))
            if self._pending:
                return self._pending.pop(0)
            data = await asyncio.wait_for(self.loop.sock_recv(self.sock, 65536), RECV_TIMEOUT)
            self.proto.receive_data(data)

    def close(self) -> None:
        self.sock.close()


async def _read_all(client: RawClient, total: int) -> list[dict[str, Any]]:
    """Read until ``total`` ticks are accounted for (received, or reported dropped)."""
    msgs: list[dict[str, Any]] = []
    accounted = 0
    while accounted < total:
        msg = await client.recv()
        msgs.append(msg)
        accounted += msg["count"] if msg["type"] == "dropped" else len(msg.get("data", ()))
    return msgs


async def test_slow_client_gets_dropped_marker_fast_client_gets_everything(
    tmp_path: Path,
) -> None:
    async for env in _env(tmp_path, WsLimits(queue_max=500, batch_max=500)):
        sub = {"action": "subscribe", "tokens": ["RELIANCE"], "backfill": 0}
        slow = RawClient(env.url, env.server.port, env.key)
        await slow.open()
        await slow.send(sub)
        fast = await env.open()
        await fast.send(json.dumps(sub))
        await recv(fast, "subscribed")
        slow_client = min(env.state.hub.clients, key=lambda c: c.id)  # connected first
        fast_got: list[float] = []
        published: list[float] = []
        n = 0
        while slow_client.queue.dropped_total == 0 and n < 1000:
            batch = ticks_for(env.feeder, "NSE:2885", 200, (n + 1) * NS_PER_SEC)
            await env.ctx.bus.publish_many(TOPIC_TICKS, batch)
            published += [t.ltp or 0.0 for t in batch]
            while len(fast_got) < len(published):  # the fast client reads everything
                fast_got += [t["ltp"] for t in (await recv(fast, "ticks"))["data"]]
            n += 1
        dropped = slow_client.queue.dropped_total
        slow_msgs = await _read_all(slow, len(published))
        slow.close()
        await fast.close()
    assert dropped > 0
    assert sum(m["count"] for m in slow_msgs if m["type"] == "dropped") == dropped
    assert fast_got == published
    assert slow_msgs[0]["type"] == "subscribed"
    pos = 0  # every tick message continues exactly where the data (or a marker) left off
    for m in slow_msgs[1:]:
        if m["type"] == "dropped":
            pos += m["count"]
        else:
            assert [t["ltp"] for t in m["data"]] == published[pos : pos + len(m["data"])]
            pos += len(m["data"])
    assert pos == len(published)
    first_marker = next(i for i, m in enumerate(slow_msgs) if m["type"] == "dropped")
    assert slow_msgs[first_marker + 1]["type"] == "ticks"


async def test_ping_sent_when_idle(tmp_path: Path) -> None:
    async for env in _env(tmp_path, WsLimits(ping_interval_s=0.05)):
        async with env.open() as ws:
            msg = json.loads(await asyncio.wait_for(ws.recv(), RECV_TIMEOUT))
    assert msg["type"] == "ping"
    assert msg["ts"] > 0


async def test_enriched_topic_is_what_the_hub_reads(env: Env) -> None:
    assert env.state.hub.topics == (TOPIC_TICKS, TOPIC_ENRICHED)


async def test_replay_ws_mounted_on_app_plays_stored_day_with_key(env: Env) -> None:
    url = f"ws://127.0.0.1:{env.server.port}/ws/replay?date=2024-12-02&symbols=RELIANCE&speed=max"
    ticks: list[dict[str, Any]] = []
    async with connect(url, additional_headers={"X-API-Key": env.key}) as ws:
        start = json.loads(await asyncio.wait_for(ws.recv(), RECV_TIMEOUT))
        assert start["type"] == "start"
        assert [i["symbol"] for i in start["instruments"]] == ["RELIANCE"]
        while True:
            msg = json.loads(await asyncio.wait_for(ws.recv(), RECV_TIMEOUT))
            if msg["type"] == "ticks":
                ticks.extend(msg["data"])
            if msg["type"] == "end":
                assert msg["emitted"] == len(ticks)
                break
    assert ticks, "the stored simulated seconds were replayed"
    assert {t["source"] for t in ticks} == {"replay"}
    assert {t["symbol"] for t in ticks} == {"RELIANCE"}


async def test_replay_ws_without_key_refused(env: Env) -> None:
    url = f"ws://127.0.0.1:{env.server.port}/ws/replay?date=2024-12-02&symbols=RELIANCE&speed=max"
    with pytest.raises(InvalidStatus) as info:
        async with connect(url):
            pass
    assert info.value.response.status_code == 403
