"""The simulated Angel One SmartStream server against a plain ``websockets`` client."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator

import msgspec
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from tickstream.calendar import NS, ist_ns
from tickstream.feeds.angelone import wire
from tickstream.feeds.angelone.wire import AngelMode, TokenGroup
from tickstream.model import Tick
from tickstream.sim.clock import SimClock
from tickstream.sim.server import SimConfig, SimServer

pytestmark = pytest.mark.timeout(60)

START = ist_ns(dt.date(2025, 11, 21), 10)
NSE_CM, NSE_FO = 1, 2


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    clock = SimClock("fixed", start_ns=START, monotonic_ns=lambda: 0)
    config = SimConfig(seed=5, autostep=False, clock=clock, emission_memory=10_000)
    async with SimServer(config) as server:
        yield server


def _headers(sim: SimServer) -> dict[str, str]:
    c = sim.credentials
    return {
        "Authorization": f"Bearer {c.angel_jwt}",
        "x-api-key": c.angel_api_key,
        "x-client-code": c.angel_client_code,
        "x-feed-token": c.angel_feed_token,
    }


def _subscribe(mode: AngelMode, *groups: tuple[int, list[str]], action: int = 1) -> str:
    token_groups = [TokenGroup(et, tuple(tokens)) for et, tokens in groups]
    return wire.encode_request("corr123", action, mode, token_groups)


async def _recv(ws: ClientConnection) -> str | bytes:
    return await asyncio.wait_for(ws.recv(), 5)


async def _ticks(ws: ClientConnection, n: int) -> list[Tick]:
    out: list[Tick] = []
    while len(out) < n:
        msg = await _recv(ws)
        assert isinstance(msg, bytes), msg
        result = wire.decode_packet(msg, ts_recv=0, source="sim")
        assert result.rejects == []
        out += result.ticks
    return out


def _error(text: str | bytes) -> dict[str, str]:
    body = msgspec.json.decode(text)
    assert isinstance(body, dict)
    return body


async def test_angel_ws_missing_headers_get_http_401(sim: SimServer) -> None:
    partial = _headers(sim)
    del partial["x-feed-token"]

    with pytest.raises(InvalidStatus) as none:
        async with connect(sim.angel_ws_url):
            pass
    with pytest.raises(InvalidStatus) as missing:
        async with connect(sim.angel_ws_url, additional_headers=partial):
            pass

    assert (none.value.response.status_code, missing.value.response.status_code) == (401, 401)


async def test_angel_ws_expired_jwt_401_until_new_tokens(sim: SimServer) -> None:
    sim.expire_tokens()
    with pytest.raises(InvalidStatus) as info:
        async with connect(sim.angel_ws_url, additional_headers=_headers(sim)):
            pass
    sim.issue_angel_tokens()

    async with connect(sim.angel_ws_url, additional_headers=_headers(sim)) as ws:
        await ws.send("ping")
        reply = await _recv(ws)

    assert info.value.response.status_code == 401
    assert reply == "pong"


async def test_angel_ws_snap_quote_packets_decode_to_market_values(sim: SimServer) -> None:
    async with connect(sim.angel_ws_url, additional_headers=_headers(sim)) as ws:
        await ws.send(_subscribe(AngelMode.SNAP_QUOTE, (NSE_CM, ["2885", "99926000"])))
        current = await _ticks(ws, 2)
        sim.step_once(START + 10 * NS)
        got = (await _ticks(ws, 1))[0]
        while got.token != 2885:  # NIFTY may have ticked in the same step
            got = (await _ticks(ws, 1))[0]

    assert [(t.exchange, t.token) for t in current] == [("NSE", 2885), ("INDICES", 99926000)]
    want = sim.market.snapshot("NSE", 2885)
    names = ("ltp", "ltq", "atp", "volume", "total_buy_qty", "total_sell_qty", "open", "high",
             "low", "close", "upper_circuit", "lower_circuit", "high_52w", "low_52w", "seq",
             "ts_exchange", "ts_last_trade", "depth", "bid", "ask")  # fmt: skip
    assert {n: getattr(got, n) for n in names} == {n: getattr(want, n) for n in names}
    assert (got.exchange, got.mode.value) == ("NSE", "full")


async def test_angel_ws_option_snap_quote_carries_oi(sim: SimServer) -> None:
    option = next(i for i in sim.market.instruments if i.exchange == "NFO")
    async with connect(sim.angel_ws_url, additional_headers=_headers(sim)) as ws:
        await ws.send(_subscribe(AngelMode.SNAP_QUOTE, (NSE_FO, [str(option.token)])))
        (tick,) = await _ticks(ws, 1)

    want = sim.market.snapshot("NFO", option.token)
    assert (tick.exchange, tick.token, tick.oi, tick.ltp) == (
        "NFO",
        option.token,
        want.oi,
        want.ltp,
    )
    assert want.oi is not None and want.oi > 0


async def test_angel_ws_text_ping_gets_pong(sim: SimServer) -> None:
    async with connect(sim.angel_ws_url, additional_headers=_headers(sim)) as ws:
        await ws.send("ping")
        reply = await _recv(ws)

    assert reply == "pong"


async def test_angel_ws_1001_tokens_refused_with_e1002(sim: SimServer) -> None:
    tokens = [str(500_000 + k) for k in range(1001)]
    async with connect(sim.angel_ws_url, additional_headers=_headers(sim)) as ws:
        await ws.send(_subscribe(AngelMode.LTP, (NSE_CM, tokens)))
        reply = await _recv(ws)
        subs = sim.connections()[0].subscriptions

    assert _error(reply) == {
        "correlationID": "corr123",
        "errorCode": "E1002",
        "errorMessage": "Invalid Request. Subscription Limit Exceeded.",
    }
    assert subs == 0


async def test_angel_ws_depth_on_nse_fo_refused_with_e1001(sim: SimServer) -> None:
    async with connect(sim.angel_ws_url, additional_headers=_headers(sim)) as ws:
        await ws.send(_subscribe(AngelMode.DEPTH, (NSE_FO, ["45104"])))
        reply = await _recv(ws)

    body = _error(reply)
    assert (body["correlationID"], body["errorCode"]) == ("corr123", "E1001")
    assert "DEPTH" in body["errorMessage"]


async def test_angel_ws_depth_over_50_tokens_refused(sim: SimServer) -> None:
    tokens = [str(600_000 + k) for k in range(51)]
    async with connect(sim.angel_ws_url, additional_headers=_headers(sim)) as ws:
        await ws.send(_subscribe(AngelMode.DEPTH, (NSE_CM, tokens)))
        reply = await _recv(ws)

    assert _error(reply)["errorCode"] == "E1002"


async def test_angel_ws_depth_mode_sends_twenty_levels(sim: SimServer) -> None:
    async with connect(sim.angel_ws_url, additional_headers=_headers(sim)) as ws:
        await ws.send(_subscribe(AngelMode.DEPTH, (NSE_CM, ["2885"])))
        (tick,) = await _ticks(ws, 1)

    assert tick.depth == sim.market.depth20("NSE", 2885)
    assert tick.depth is not None and len(tick.depth.bids) == 20


async def test_angel_ws_unsubscribe_stops_data(sim: SimServer) -> None:
    async with connect(sim.angel_ws_url, additional_headers=_headers(sim)) as ws:
        await ws.send(_subscribe(AngelMode.LTP, (NSE_CM, ["2885"])))
        await _ticks(ws, 1)
        await ws.send(_subscribe(AngelMode.LTP, (NSE_CM, ["2885"]), action=0))
        await ws.send("ping")
        assert await _recv(ws) == "pong"  # the unsubscribe has been applied
        sim.step_once(START + 10 * NS)
        await ws.send("ping")
        reply = await _recv(ws)

    assert reply == "pong"


async def test_angel_ws_malformed_request_gets_e1001(sim: SimServer) -> None:
    async with connect(sim.angel_ws_url, additional_headers=_headers(sim)) as ws:
        await ws.send('{"correlationID": "x1", "action": 7}')
        reply = await _recv(ws)

    assert _error(reply)["errorCode"] == "E1001"
    assert _error(reply)["correlationID"] == "x1"


async def test_angel_ws_fourth_connection_gets_http_429(sim: SimServer) -> None:
    h = _headers(sim)
    url = sim.angel_ws_url
    async with (
        connect(url, additional_headers=h) as a,
        connect(url, additional_headers=h) as b,
        connect(url, additional_headers=h) as c,
    ):
        for ws in (a, b, c):
            await ws.send("ping")
            assert await _recv(ws) == "pong"  # each connection is registered
        with pytest.raises(InvalidStatus) as info:
            async with connect(url, additional_headers=h):
                pass

    assert info.value.response.status_code == 429
