"""The Angel One SmartStream client against the simulator (WebSocket and REST) with faults on.

The client pings every 50 ms here (10 s in production) and the simulator answers ``pong``; the
liveness bound is 3 x that. Logins go through the simulated REST API with a real TOTP.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from feed_support import EQUITIES, FAST, STEP_NS, UNIVERSE, Stepper, running, sim_config, wait_for

from tickstream.feeds.angelone.auth import AngelAuth
from tickstream.feeds.angelone.websocket import AngelOneFeed
from tickstream.feeds.base import ConnectionState
from tickstream.model import Instrument, Mode
from tickstream.sim.rest import SimRestServer
from tickstream.sim.server import SimServer

pytestmark = pytest.mark.timeout(60)

PING = 0.2


@pytest.fixture
async def sim() -> AsyncIterator[tuple[SimServer, SimRestServer]]:
    async with SimServer(sim_config()) as server, SimRestServer(server.authority, UNIVERSE) as rest:
        yield server, rest


def angel(sim: SimServer, rest: SimRestServer, **kwargs: object) -> tuple[AngelOneFeed, AngelAuth]:
    c = sim.credentials
    auth = AngelAuth(
        c.angel_api_key, c.angel_client_code, c.angel_pin, c.angel_totp_secret,
        root=rest.angel_root, backoff_secs=0.01,
    )  # fmt: skip
    feed = AngelOneFeed(auth, FAST, url=sim.angel_ws_url, heartbeat_secs=PING, **kwargs)  # type: ignore[arg-type]
    return feed, auth


def sim_keys(sim: SimServer) -> list[dict[tuple[int, str], set[int]]]:
    return [
        {k: {int(m) for m in modes} for k, modes in c.subscriptions.items() if modes}
        for c in sim.angel.connections.values()
    ]


async def test_angel_token_expiry_reauths_once_and_resubscribes_exactly(
    sim: tuple[SimServer, SimRestServer],
) -> None:
    server, rest = sim
    feed, auth = angel(server, rest)
    stepper, subscribed = Stepper(server), UNIVERSE[:12]
    await feed.subscribe(subscribed, Mode.FULL)
    await feed.subscribe_depth(EQUITIES[:2])
    async with running(feed) as got:
        await wait_for(lambda: len(got.ticks) >= 14, "the initial snapshots")
        before = sim_keys(server)
        # The daily reset at a set exchange time: live sockets stay up, new handshakes fail.
        server.faults.set(None, expire_tokens_at_ns=stepper.now + 3 * STEP_NS)
        jwt = auth.session.jwt if auth.session else ""
        await stepper.until(lambda: not server.authority.angel_jwt_valid(jwt), "the expiry")
        server.faults.set(None, close=True)
        await wait_for(lambda: feed.health().reconnects == 1, "the reconnect")
        await stepper.until(lambda: bool(got.gaps), "the gap event")
        await wait_for(lambda: sim_keys(server) == before, "the resubscription")
        health = feed.health()

    assert health.auth_attempts == 1
    assert auth.logins == 2  # the refresh token had expired too, so one fresh TOTP login
    assert len(got.gaps) == 1
    gap = got.gaps[0]
    assert gap.cause == "closed_no_frame+http_401"
    assert set(gap.instruments or ()) == {(i.exchange, i.token) for i in subscribed}
    assert gap.start_ns < gap.end_ns
    assert next(t.ts_recv for t in got.ticks if t.ts_recv >= gap.end_ns) == gap.end_ns
    assert len(before) == 1 and len(before[0]) == 12


async def test_angel_stall_detected_by_ping_pong_clock(
    sim: tuple[SimServer, SimRestServer],
) -> None:
    server, rest = sim
    feed, _ = angel(server, rest)
    stepper = Stepper(server)
    await feed.subscribe(EQUITIES[:3], Mode.QUOTE)
    async with running(feed) as got:
        await wait_for(lambda: len(got.ticks) >= 3, "the initial snapshots")
        stalled = server.connections()[0].conn_id
        server.faults.set(stalled, stall=True)
        await wait_for(lambda: feed.health().reconnects == 1, "the liveness abort")
        await stepper.until(lambda: bool(got.gaps), "the gap event")
        server.faults.clear(stalled)
        stepper.step()  # the simulator's sender wakes, resumes reading and sees the abort

    assert [g.cause for g in got.gaps] == ["heartbeat_timeout"]
    assert feed.health().gaps == 1


async def test_angel_mute_keeps_pongs_marks_stale_no_reconnect(
    sim: tuple[SimServer, SimRestServer],
) -> None:
    server, rest = sim
    feed, _ = angel(server, rest)
    stepper, subscribed = Stepper(server), EQUITIES[:4]
    await feed.subscribe(subscribed, Mode.LTP)
    async with running(feed) as got:
        await wait_for(lambda: len(got.ticks) >= 4, "the initial snapshots")
        server.faults.set(None, mute=True)
        pong = feed.health().last_heartbeat_ns or 0
        await stepper.run(40, pause=0.02)
        await wait_for(lambda: len(feed.health().stale) == 4, "every instrument stale")
        health = feed.health()

    assert health.reconnects == 0 and health.gaps == 0
    assert (health.last_heartbeat_ns or 0) > pong
    assert set(health.stale) == {i.key for i in subscribed}
    assert health.state is ConnectionState.CONNECTED
    assert health.connections[0].connects == 1


async def test_angel_server_error_frame_is_surfaced(sim: tuple[SimServer, SimRestServer]) -> None:
    server, rest = sim
    # The client is told 60 depth tokens fit; the server allows 50 and says so in an error frame.
    feed, _ = angel(server, rest, max_depth_tokens=60)
    fakes = [Instrument(exchange="NSE", token=800_000 + i, symbol=f"F{i}") for i in range(55)]
    async with running(feed):
        await feed.subscribe_depth(fakes)
        await wait_for(lambda: feed.health().server_errors == 1, "the error frame")

    assert "E1002" in feed.server_errors[0]
    assert "Subscription Limit Exceeded" in feed.server_errors[0]
    assert feed.health().connections[0].last_error == feed.server_errors[0]


def test_angel_depth_outside_nse_cm_is_refused() -> None:
    from tickstream.feeds.angelone.websocket import AngelAdapter

    adapter = AngelAdapter(AngelAuth("k", "c", "1234", "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"))
    option = next(i for i in UNIVERSE if i.exchange == "NFO")

    with pytest.raises(ValueError, match="depth mode is NSE_CM only"):
        adapter.key_for(option, "depth")


async def test_angel_mode_change_unsubscribes_the_old_mode(
    sim: tuple[SimServer, SimRestServer],
) -> None:
    server, rest = sim
    feed, _ = angel(server, rest)
    inst = EQUITIES[0]
    await feed.subscribe([inst], Mode.QUOTE)
    async with running(feed) as got:
        await wait_for(lambda: len(got.ticks) >= 1, "the initial snapshot")
        await feed.subscribe([inst], Mode.FULL)
        await wait_for(lambda: sim_keys(server) == [{(1, inst.angel_token): {3}}], "mode 3 only")
        await feed.unsubscribe([inst])
        await wait_for(lambda: sim_keys(server) == [{}], "nothing subscribed")

    assert feed.health().subscribed == 0
    assert got.ticks[-1].mode is Mode.FULL
