"""The simulated Kite ticker server against a plain ``websockets`` client and our wire decoder."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from tickstream.calendar import NS, ist_ns
from tickstream.feeds.kite import wire
from tickstream.model import Mode, Tick
from tickstream.sim.clock import SimClock
from tickstream.sim.server import Emission, SimConfig, SimServer

pytestmark = pytest.mark.timeout(60)

START = ist_ns(dt.date(2025, 11, 21), 10)
RELIANCE_ITOK = 738561  # NSE 2885
NIFTY_ITOK = 256265  # INDICES 1001


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    clock = SimClock("fixed", start_ns=START, monotonic_ns=lambda: 0)
    config = SimConfig(
        seed=11, autostep=False, clock=clock, heartbeat_s=0.2, emission_memory=10_000
    )
    async with SimServer(config) as server:
        yield server


def _url(sim: SimServer, token: str | None = None, api_key: str | None = None) -> str:
    c = sim.credentials
    key = api_key or c.kite_api_key
    return f"{sim.kite_ws_url}?api_key={key}&access_token={token or c.kite_access_token}"


async def _recv(ws: ClientConnection) -> str | bytes:
    return await asyncio.wait_for(ws.recv(), 5)


async def _recv_data(ws: ClientConnection) -> list[Tick]:
    """The ticks of the next non-heartbeat binary frame."""
    while True:
        msg = await _recv(ws)
        if isinstance(msg, bytes) and msg != wire.HEARTBEAT:
            result = wire.decode_frame(msg, ts_recv=0, source="sim")
            assert result.rejects == []
            return result.ticks


def _same_values(decoded: Tick, sent: Tick) -> None:
    """Every field the Kite full packet carries equals the market's value."""
    names = ("exchange", "token", "ltp", "ltq", "atp", "volume", "total_buy_qty",
             "total_sell_qty", "open", "high", "low", "close", "oi", "oi_day_high", "oi_day_low",
             "bid", "ask", "bid_qty", "ask_qty")  # fmt: skip
    for name in names:
        want = getattr(sent, name)
        got = getattr(decoded, name)
        assert got == (want if want is not None or name[:2] != "oi" else 0), name
    assert decoded.ts_exchange == sent.ts_exchange // NS * NS
    assert decoded.depth == sent.depth


async def test_kite_ws_bad_token_gets_http_403(sim: SimServer) -> None:
    with pytest.raises(InvalidStatus) as info:
        async with connect(_url(sim, token="not-the-token")):
            pass

    assert info.value.response.status_code == 403
    body = msgspec.json.decode(info.value.response.body)
    assert body["error_type"] == "TokenException"


async def test_kite_ws_expired_token_403_until_a_new_token_is_issued(sim: SimServer) -> None:
    old = sim.credentials.kite_access_token
    sim.expire_tokens()

    with pytest.raises(InvalidStatus) as info:
        async with connect(_url(sim, token=old)):
            pass
    fresh = sim.issue_kite_token()
    async with connect(_url(sim, token=fresh)) as ws:
        await ws.send(wire.encode_subscribe([RELIANCE_ITOK]))
        ticks = await _recv_data(ws)

    assert info.value.response.status_code == 403
    assert [t.token for t in ticks] == [2885]


async def test_kite_ws_subscribe_full_frames_equal_market_snapshot(sim: SimServer) -> None:
    async with connect(_url(sim)) as ws:
        await ws.send(wire.encode_subscribe([RELIANCE_ITOK, NIFTY_ITOK]))
        await ws.send(wire.encode_mode(Mode.FULL, [RELIANCE_ITOK, NIFTY_ITOK]))
        quote = await _recv_data(ws)
        full = await _recv_data(ws)
        sim.step_once(START + 10 * NS)
        stepped = await _recv_data(ws)

    assert [(t.token, t.mode) for t in quote] == [(2885, Mode.QUOTE), (1001, Mode.QUOTE)]
    assert [(t.token, t.mode) for t in full] == [(2885, Mode.FULL), (1001, Mode.FULL)]
    market_now = {t.token: t for t in (sim.market.snapshot("NSE", 2885),
                                       sim.market.snapshot("INDICES", 1001))}  # fmt: skip
    reliance = next(t for t in stepped if t.token == 2885)
    _same_values(reliance, market_now[2885])
    assert reliance.ts_exchange == START + 10 * NS
    nifty = next(t for t in stepped if t.token == 1001)
    assert (nifty.exchange, nifty.ltp, nifty.close, nifty.volume) == (
        "INDICES",
        market_now[1001].ltp,
        market_now[1001].close,
        None,
    )


async def test_kite_ws_one_frame_per_step_holds_every_traded_instrument(sim: SimServer) -> None:
    equities = [i.token << 8 | 1 for i in sim.market.instruments if i.exchange == "NSE"]
    async with connect(_url(sim)) as ws:
        await ws.send(wire.encode_subscribe(equities))
        await _recv_data(ws)  # current state
        ticks = sim.step_once(START + 10 * NS)
        frame = await _recv_data(ws)

    assert sorted(t.token for t in frame) == sorted(t.token for t in ticks if t.exchange == "NSE")
    assert len(frame) == 50


async def test_kite_ws_idle_connection_gets_one_byte_heartbeats(sim: SimServer) -> None:
    async with connect(_url(sim)) as ws:
        first, second = await _recv(ws), await _recv(ws)

    assert (first, second) == (b"\x00", b"\x00")


async def test_kite_ws_unknown_token_is_ignored_silently(sim: SimServer) -> None:
    async with connect(_url(sim)) as ws:
        await ws.send(wire.encode_subscribe([123456789]))
        sim.step_once(START + 10 * NS)
        msg = await _recv(ws)

    assert msg == wire.HEARTBEAT


async def test_kite_ws_3001st_instrument_is_refused_with_an_error_frame(sim: SimServer) -> None:
    tokens = [(100_000 + k) << 8 | 1 for k in range(3000)]  # unknown tokens still count
    async with connect(_url(sim)) as ws:
        await ws.send(wire.encode_subscribe(tokens))
        await ws.send(wire.encode_subscribe([RELIANCE_ITOK]))
        msg = await _recv(ws)
        info = sim.connections()

    assert isinstance(msg, str)
    text = wire.parse_server_text(msg)
    assert text.type == "error" and "3000" in str(text.data)
    assert [c.subscriptions for c in info] == [3000]


async def test_kite_ws_fourth_connection_per_api_key_gets_http_429(sim: SimServer) -> None:
    url = _url(sim)
    async with connect(url) as a, connect(url) as b, connect(url) as c:
        for ws in (a, b, c):
            assert await _recv(ws) == wire.HEARTBEAT  # each connection is registered
        with pytest.raises(InvalidStatus) as info:
            async with connect(url):
                pass
        live = len(sim.connections())

    assert info.value.response.status_code == 429
    assert live == 3


async def test_kite_ws_unsubscribe_stops_data(sim: SimServer) -> None:
    async with connect(_url(sim)) as ws:
        await ws.send(wire.encode_subscribe([RELIANCE_ITOK]))
        await _recv_data(ws)
        await ws.send(wire.encode_unsubscribe([RELIANCE_ITOK]))
        await ws.send(wire.encode_subscribe([]))  # a round trip: the unsubscribe is applied
        await asyncio.sleep(0.05)
        sim.step_once(START + 10 * NS)
        msg = await _recv(ws)

    assert msg == wire.HEARTBEAT


async def test_kite_ws_malformed_message_gets_error_frame_and_stays_open(sim: SimServer) -> None:
    async with connect(_url(sim)) as ws:
        await ws.send('{"a": "subscribe"')
        error = await _recv(ws)
        await ws.send(wire.encode_subscribe([RELIANCE_ITOK]))
        ticks = await _recv_data(ws)

    assert wire.parse_server_text(error).type == "error"
    assert [t.token for t in ticks] == [2885]


async def test_kite_ws_emission_log_records_what_was_sent(sim: SimServer) -> None:
    async with connect(_url(sim)) as ws:
        await ws.send(wire.encode_subscribe([RELIANCE_ITOK]))
        await ws.send(wire.encode_mode(Mode.FULL, [RELIANCE_ITOK]))
        await _recv_data(ws)
        await _recv_data(ws)
        sim.step_once(START + 10 * NS)
        got = await _recv_data(ws)

    sent = [e for e in sim.emissions if e.conn_id == "kite-1"]
    assert [e.mode for e in sent] == ["quote", "full", "full"]
    _same_values(got[0], sent[-1].tick)


async def test_kite_ws_token_from_the_rest_login_opens_the_ticker() -> None:
    import hashlib

    import httpx

    async with SimServer(SimConfig(autostep=False, rest=True)) as sim:
        c = sim.credentials
        async with httpx.AsyncClient(base_url=sim.kite_rest_root) as http:
            login = await http.get("/connect/login", params={"api_key": c.kite_api_key, "v": 3})
            request_token = httpx.URL(login.headers["location"]).params["request_token"]
            checksum = hashlib.sha256(
                (c.kite_api_key + request_token + c.kite_api_secret).encode()
            ).hexdigest()
            session = await http.post("/session/token", data={
                "api_key": c.kite_api_key, "request_token": request_token, "checksum": checksum,
            })  # fmt: skip
        token = session.json()["data"]["access_token"]
        async with connect(_url(sim, token=token)) as ws:
            await ws.send(wire.encode_subscribe([RELIANCE_ITOK]))
            ticks = await _recv_data(ws)

    assert login.status_code in (302, 303, 307)
    assert token != c.kite_access_token
    assert [t.token for t in ticks] == [2885]


async def test_kite_ws_emission_log_file_holds_one_json_line_per_tick_sent(tmp_path: Path) -> None:
    path = tmp_path / "emitted.jsonl"
    clock = SimClock("fixed", start_ns=START, monotonic_ns=lambda: 0)
    async with SimServer(SimConfig(autostep=False, clock=clock, emission_log=path)) as sim:
        async with connect(_url(sim)) as ws:
            await ws.send(wire.encode_subscribe([RELIANCE_ITOK, NIFTY_ITOK]))
            got = await _recv_data(ws)
        await asyncio.sleep(0)

    lines = path.read_bytes().splitlines()
    logged = [msgspec.json.decode(line, type=Emission) for line in lines]
    assert [(e.conn_id, e.mode, e.tick.token) for e in logged] == [
        ("kite-1", "quote", 2885),
        ("kite-1", "quote", 1001),
    ]
    assert [e.tick.ltp for e in logged] == [t.ltp for t in got]
