"""Each simulator fault observably does what it says, on the wire, per connection or for all."""

from __future__ import annotations

import asyncio
import datetime as dt
import struct
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosedError, InvalidStatus

from tickstream.calendar import NS, ist_ns
from tickstream.feeds.angelone import wire as angel_wire
from tickstream.feeds.kite import wire as kite_wire
from tickstream.model import Mode
from tickstream.sim.clock import SimClock
from tickstream.sim.faults import FaultPlan, Faults, parse_fault
from tickstream.sim.server import SimConfig, SimServer

pytestmark = pytest.mark.timeout(60)

START = ist_ns(dt.date(2025, 11, 21), 10)
RELIANCE_ITOK = 738561
EQUITY_ITOKS = [738561, 779521, 341249]  # RELIANCE, SBIN, HDFCBANK


def _config(**kwargs: object) -> SimConfig:
    clock = SimClock("fixed", start_ns=START, monotonic_ns=lambda: 0)
    base: dict[str, object] = {"seed": 9, "autostep": False, "clock": clock, "heartbeat_s": 0.2}
    return SimConfig(**(base | kwargs))  # type: ignore[arg-type]


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    async with SimServer(_config()) as server:
        yield server


def _kite_url(sim: SimServer) -> str:
    c = sim.credentials
    return f"{sim.kite_ws_url}?api_key={c.kite_api_key}&access_token={c.kite_access_token}"


def _angel_headers(sim: SimServer) -> dict[str, str]:
    c = sim.credentials
    return {"Authorization": c.angel_jwt, "x-api-key": c.angel_api_key,
            "x-client-code": c.angel_client_code, "x-feed-token": c.angel_feed_token}  # fmt: skip


async def _recv(ws: ClientConnection, timeout: float = 5) -> str | bytes:
    return await asyncio.wait_for(ws.recv(), timeout)


async def _kite_subscribed(sim: SimServer, ws: ClientConnection, itoks: list[int]) -> None:
    await ws.send(kite_wire.encode_subscribe(itoks))
    await ws.send(kite_wire.encode_mode(Mode.FULL, itoks))
    seen = 0
    while seen < 2:  # the quote and the full current-state frames
        msg = await _recv(ws)
        seen += msg != kite_wire.HEARTBEAT


async def _data_frame(ws: ClientConnection) -> bytes:
    while True:
        msg = await _recv(ws)
        if isinstance(msg, bytes) and msg != kite_wire.HEARTBEAT:
            return msg


def _packets(frame: bytes) -> list[bytes]:
    """The raw packet bodies of a Kite frame (length-prefixed), read without our decoder."""
    (count,) = struct.unpack_from(">H", frame)
    out, pos = [], 2
    for _ in range(count):
        (length,) = struct.unpack_from(">H", frame, pos)
        out.append(frame[pos + 2 : pos + 2 + length])
        pos += 2 + length
    return out


def _conn_id(sim: SimServer, broker: str) -> str:
    return next(c.conn_id for c in sim.connections() if c.broker == broker)


async def test_fault_mute_keeps_heartbeats_but_sends_no_data(sim: SimServer) -> None:
    async with connect(_kite_url(sim)) as ws:
        await _kite_subscribed(sim, ws, [RELIANCE_ITOK])
        sim.faults.set(_conn_id(sim, "kite"), mute=True)
        traded = []
        received = []
        for k in range(1, 4):
            traded += [t.token for t in sim.step_once(START + 10 * k * NS)]
            received.append(await _recv(ws))

    assert traded.count(2885) == 3
    assert received == [kite_wire.HEARTBEAT] * 3


async def test_fault_half_open_stall_sends_nothing_not_even_pongs(sim: SimServer) -> None:
    async with connect(_kite_url(sim)) as ws:
        await _kite_subscribed(sim, ws, [RELIANCE_ITOK])
        conn_id = _conn_id(sim, "kite")
        sim.faults.set(conn_id, stall=True)
        sim.step_once(START + 10 * NS)
        await asyncio.sleep(0.05)  # let the sender see the stall before the ping goes out
        pong = await ws.ping()
        with pytest.raises(TimeoutError):
            await _recv(ws, timeout=1.0)  # five heartbeat intervals
        pong_arrived = pong.done()
        sim.faults.clear(conn_id)
        after = await _recv(ws)
        await asyncio.wait_for(pong, 5)  # reading resumes: the ping is answered after all

    assert pong_arrived is False
    assert after == kite_wire.HEARTBEAT


async def test_fault_close_aborts_without_close_frame_client_sees_1006(sim: SimServer) -> None:
    async with connect(_kite_url(sim)) as ws:
        await _kite_subscribed(sim, ws, [RELIANCE_ITOK])
        sim.faults.set(_conn_id(sim, "kite"), close=True)
        with pytest.raises(ConnectionClosedError) as info:
            while True:
                await _recv(ws)

    assert info.value.rcvd is None
    assert ws.close_code == 1006
    assert sim.faults.plan_for("kite-1").close is False  # one-shot


async def test_fault_close_for_all_drops_every_connection(sim: SimServer) -> None:
    async with (
        connect(_kite_url(sim)) as kite,
        connect(sim.angel_ws_url, additional_headers=_angel_headers(sim)) as angel,
    ):
        assert await _recv(kite) == kite_wire.HEARTBEAT  # both connections are registered
        await angel.send("ping")
        await _recv(angel)
        sim.faults.set(None, close=True)
        with pytest.raises(ConnectionClosedError):
            while True:
                await _recv(kite)
        with pytest.raises(ConnectionClosedError):
            await _recv(angel)

    assert (kite.close_code, angel.close_code) == (1006, 1006)


async def test_fault_duplicates_send_the_same_packet_bytes_twice(sim: SimServer) -> None:
    async with connect(_kite_url(sim)) as ws:
        await _kite_subscribed(sim, ws, EQUITY_ITOKS)
        sim.faults.set(_conn_id(sim, "kite"), duplicate_every=1)
        ticks = sim.step_once(START + 10 * NS)
        packets = _packets(await _data_frame(ws))

    traded = [t for t in ticks if t.exchange == "NSE" and t.token in (2885, 3045, 1333)]
    assert len(packets) == 2 * len(traded) == 6
    assert packets[0::2] == packets[1::2]


async def test_fault_kite_truncated_packet_is_rejected_others_decode(sim: SimServer) -> None:
    async with connect(_kite_url(sim)) as ws:
        await _kite_subscribed(sim, ws, EQUITY_ITOKS)
        sim.faults.set(_conn_id(sim, "kite"), truncate_every=1)
        sim.step_once(START + 10 * NS)
        frame = await _data_frame(ws)

    result = kite_wire.decode_frame(frame, ts_recv=0)
    assert sorted(t.token for t in result.ticks) == [1333, 2885, 3045]
    assert [r.reason for r in result.rejects] == ["truncated_packet"]


async def test_fault_kite_unknown_length_packet_is_rejected_others_decode(sim: SimServer) -> None:
    async with connect(_kite_url(sim)) as ws:
        await _kite_subscribed(sim, ws, EQUITY_ITOKS)
        sim.faults.set(None, unknown_every=1)
        sim.step_once(START + 10 * NS)
        frame = await _data_frame(ws)

    result = kite_wire.decode_frame(frame, ts_recv=0)
    assert sorted(t.token for t in result.ticks) == [1333, 2885, 3045]
    assert [r.reason for r in result.rejects] == ["unknown_length"]


async def _angel_packets(ws: ClientConnection, n: int) -> list[bytes]:
    out: list[bytes] = []
    while len(out) < n:
        msg = await _recv(ws)
        assert isinstance(msg, bytes)
        out.append(msg)
    return out


async def _angel_subscribed(sim: SimServer, ws: ClientConnection) -> None:
    group = angel_wire.TokenGroup(1, ("2885",))
    request = angel_wire.encode_request("c1", 1, angel_wire.AngelMode.SNAP_QUOTE, [group])
    await ws.send(request)
    await _angel_packets(ws, 1)


async def test_fault_angel_unknown_mode_and_truncated_packets_rejected(sim: SimServer) -> None:
    async with connect(sim.angel_ws_url, additional_headers=_angel_headers(sim)) as ws:
        await _angel_subscribed(sim, ws)
        sim.faults.set(_conn_id(sim, "angelone"), truncate_every=1, unknown_every=1)
        sim.step_once(START + 10 * NS)
        packets = await _angel_packets(ws, 3)

    results = [angel_wire.decode_packet(p, ts_recv=0) for p in packets]
    assert [r.ticks[0].token for r in results[:1]] == [2885]
    assert [r.rejects[0].reason for r in results[1:]] == ["truncated_packet", "unknown_mode"]


async def test_fault_angel_seq_jump_skips_sequence_numbers(sim: SimServer) -> None:
    async with connect(sim.angel_ws_url, additional_headers=_angel_headers(sim)) as ws:
        await _angel_subscribed(sim, ws)
        sim.step_once(START + 10 * NS)
        (before,) = await _angel_packets(ws, 1)
        sim.faults.set(_conn_id(sim, "angelone"), seq_jump=100)
        sim.step_once(START + 20 * NS)
        sim.step_once(START + 30 * NS)
        first, second = await _angel_packets(ws, 2)

    seqs = [angel_wire.decode_packet(p, ts_recv=0).ticks[0].seq for p in (before, first, second)]
    assert seqs[0] is not None
    assert seqs == [seqs[0], seqs[0] + 1, seqs[0] + 2 + 100]


async def test_fault_per_connection_mute_leaves_other_connections_alone(sim: SimServer) -> None:
    async with connect(_kite_url(sim)) as muted, connect(_kite_url(sim)) as live:
        await _kite_subscribed(sim, muted, [RELIANCE_ITOK])
        await _kite_subscribed(sim, live, [RELIANCE_ITOK])
        sim.faults.set("kite-1", mute=True)
        sim.step_once(START + 10 * NS)
        live_frame = await _data_frame(live)
        muted_msg = await _recv(muted)

    assert [t.token for t in kite_wire.decode_frame(live_frame, ts_recv=0).ticks] == [2885]
    assert muted_msg == kite_wire.HEARTBEAT


async def test_fault_token_expiry_at_exchange_time_refuses_new_handshakes() -> None:
    plan = FaultPlan(expire_tokens_at_ns=START + 5 * NS)
    async with SimServer(_config(faults=plan)) as sim:
        sim.step_once(START + 1 * NS)
        async with connect(_kite_url(sim)):
            pass
        sim.step_once(START + 6 * NS)
        with pytest.raises(InvalidStatus) as info:
            async with connect(_kite_url(sim)):
                pass

    assert info.value.response.status_code == 403


async def test_fault_burst_multiplies_the_trade_rate() -> None:
    steps = [START + k * 5_000_000 for k in range(1, 100)]  # 5 ms: far from saturation
    async with SimServer(_config()) as calm, SimServer(_config()) as busy:
        busy.faults.set(None, burst_factor=10.0, burst_seconds=60.0)
        calm_ticks = sum(len(calm.step_once(t)) for t in steps)
        busy_ticks = sum(len(busy.step_once(t)) for t in steps)

    assert busy_ticks > 2 * calm_ticks


def test_fault_burst_ends_after_its_duration() -> None:
    now = [100.0]
    faults = Faults(monotonic=lambda: now[0])
    faults.set(None, burst_factor=10.0, burst_seconds=30.0)

    during = faults.tick_rate_scale()
    now[0] += 31
    after = faults.tick_rate_scale()

    assert (during, after) == (10.0, 1.0)


async def test_fault_full_queue_drops_for_that_client_without_blocking_the_market() -> None:
    async with SimServer(_config(queue_size=2)) as sim, connect(_kite_url(sim)) as ws:
        await ws.send(kite_wire.encode_subscribe(EQUITY_ITOKS))
        await _data_frame(ws)
        for k in range(1, 6):  # no await in between: the sender cannot drain
            sim.step_once(START + 10 * k * NS)
        dropped = sim.connections()[0].dropped

    assert dropped == 3


def test_fault_parse_names_and_unknown_name() -> None:
    assert parse_fault("mute") == FaultPlan(mute=True)
    assert parse_fault("half-open") == FaultPlan(stall=True)
    with pytest.raises(ValueError, match="unknown fault"):
        parse_fault("explode")


async def test_fault_slow_server_delays_that_connection_behind_a_normal_one(sim: SimServer) -> None:
    async with connect(_kite_url(sim)) as slow, connect(_kite_url(sim)) as normal:
        await _kite_subscribed(sim, slow, [RELIANCE_ITOK])
        await _kite_subscribed(sim, normal, [RELIANCE_ITOK])
        sim.faults.set("kite-1", send_delay_s=1.0)
        sim.step_once(START + 10 * NS)
        slow_task = asyncio.ensure_future(_data_frame(slow))
        normal_task = asyncio.ensure_future(_data_frame(normal))
        done, _ = await asyncio.wait({slow_task, normal_task}, return_when="FIRST_COMPLETED")
        slow_frame = await slow_task

    assert done == {normal_task}
    assert slow_frame == normal_task.result()  # late, but the same bytes


async def test_fault_close_for_an_unknown_connection_names_the_live_ones(sim: SimServer) -> None:
    async with connect(_kite_url(sim)) as ws:
        assert await _recv(ws) == kite_wire.HEARTBEAT  # the connection is registered
        with pytest.raises(KeyError, match="kite-1"):
            sim.faults.set("kite-99", close=True)
