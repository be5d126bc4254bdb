"""The Kite ticker client against the simulator with its faults switched on.

The simulator is stepped by hand on a fixed exchange clock; its Kite heartbeat is 50 ms and the
client's heartbeat interval matches, so the liveness bound (3 x interval) is 150 ms of wall time.
Waits use generous bounds only so that a broken client fails instead of hanging; nothing asserts
how long something took.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from feed_support import EQUITIES, FAST, UNIVERSE, Stepper, running, sim_config, wait_for

from tickstream.feeds.base import CapacityError, ConnectionState
from tickstream.feeds.kite import wire
from tickstream.feeds.kite.auth import KiteAuth
from tickstream.feeds.kite.ticker import KiteTicker
from tickstream.model import Instrument, Mode, Tick
from tickstream.sim.faults import FaultPlan
from tickstream.sim.server import SimServer

pytestmark = pytest.mark.timeout(60)

HB = 0.2  # client bound 0.6 s; the simulator beats every 50 ms (robust on a loaded machine)


@pytest.fixture
async def sim(request: pytest.FixtureRequest) -> AsyncIterator[SimServer]:
    kwargs = getattr(request, "param", {})
    async with SimServer(sim_config(**kwargs)) as server:
        yield server


def ticker(sim: SimServer, **kwargs: object) -> KiteTicker:
    c = sim.credentials
    auth = KiteAuth(c.kite_api_key, access_token=c.kite_access_token)
    return KiteTicker(auth, FAST, url=sim.kite_ws_url, heartbeat_secs=HB, **kwargs)  # type: ignore[arg-type]


def fake_equities(n: int, first: int = 900_000) -> list[Instrument]:
    """Instruments the simulator does not know: accepted, never tick (Kite's behaviour)."""
    return [Instrument(exchange="NSE", token=first + i, symbol=f"X{i}") for i in range(n)]


def values(ticks: list[Tick]) -> list[tuple[str, int, float | None, int | None]]:
    return [(t.exchange, t.token, t.ltp, t.volume) for t in ticks]


def emitted(sim: SimServer) -> list[Tick]:
    return [e.tick for e in sim.emissions]


def sim_subscriptions(sim: SimServer) -> list[dict[int, Mode]]:
    return [dict(c.subscriptions) for c in sim.kite.connections.values()]


async def test_kite_close_without_close_frame_reconnects_with_one_gap(sim: SimServer) -> None:
    feed, stepper, subscribed = ticker(sim), Stepper(sim), EQUITIES[:10]
    await feed.subscribe(subscribed, Mode.FULL)
    async with running(feed) as got:
        await wait_for(lambda: len(got.ticks) >= 10, "the initial snapshots")
        last_before = got.ticks[-1].ts_recv
        sim.faults.set(None, close=True)
        await wait_for(lambda: feed.health().reconnects == 1, "the reconnect")
        await stepper.until(lambda: bool(got.gaps), "the gap event")
        gap = got.gaps[0]
        after = [t for t in got.ticks if t.ts_recv >= gap.end_ns]

    assert len(got.gaps) == 1
    assert gap.cause == "closed_no_frame"
    assert set(gap.instruments or ()) == {(i.exchange, i.token) for i in subscribed}
    assert last_before <= gap.start_ns < gap.end_ns
    assert after[0].ts_recv == gap.end_ns
    assert got.order.index("gap") < len(got.order) - 1  # the gap precedes the data after it
    expected = {wire.instrument_token(i.exchange, i.token): Mode.FULL for i in subscribed}
    assert sim_subscriptions(sim) == [expected]


async def test_kite_half_open_stall_detected_by_heartbeat_clock(sim: SimServer) -> None:
    feed, stepper = ticker(sim), Stepper(sim)
    await feed.subscribe(EQUITIES[:5], Mode.QUOTE)
    async with running(feed) as got:
        await wait_for(lambda: len(sim.connections()) == 1 and len(got.ticks) >= 5, "connect")
        stalled = sim.connections()[0].conn_id
        sim.faults.set(stalled, stall=True)
        await wait_for(lambda: feed.health().reconnects == 1, "the liveness abort")
        await stepper.until(lambda: bool(got.gaps), "the gap event")
        sim.faults.clear(stalled)  # lets the simulator notice the aborted socket and close it

    assert [g.cause for g in got.gaps] == ["heartbeat_timeout"]
    assert feed.health().connections[0].last_error == "heartbeat_timeout"
    assert got.ticks[-1].ts_recv >= got.gaps[0].end_ns


async def test_kite_mute_feed_marks_stale_without_reconnecting(sim: SimServer) -> None:
    feed, stepper, subscribed = ticker(sim), Stepper(sim), EQUITIES[:5]
    await feed.subscribe(subscribed, Mode.QUOTE)
    async with running(feed) as got:
        await wait_for(lambda: len(got.ticks) >= 5, "the initial snapshots")
        sim.faults.set(None, mute=True)
        first_beat = feed.health().last_heartbeat_ns or 0
        await stepper.run(60, pause=0.02)  # the market keeps trading; nothing reaches us
        await wait_for(lambda: len(feed.health().stale) == 5, "every instrument stale")
        health = feed.health()

    assert health.reconnects == 0
    assert health.gaps == 0
    assert (health.last_heartbeat_ns or 0) > first_beat
    assert set(health.stale) == {i.key for i in subscribed}
    assert health.connections[0].state is ConnectionState.CONNECTED


async def test_kite_quiet_market_only_heartbeats_zero_reconnects(sim: SimServer) -> None:
    """Minutes of a quiet market, compressed: the sim's heartbeat is 50 ms instead of Kite's ~1 s
    (the client's liveness bound is scaled down too), so 3 s of wall time carry 60 heartbeats, a
    minute of a real quiet Kite connection; the subscribed instruments never trade."""
    feed = ticker(sim)
    quiet = fake_equities(3)
    await feed.subscribe(quiet, Mode.LTP)
    async with running(feed) as got:
        await wait_for(lambda: feed.health().last_heartbeat_ns is not None, "a heartbeat")
        beats: list[int | None] = []
        for _ in range(60):
            await wait_for(
                lambda: feed.health().last_heartbeat_ns not in (None, *beats[-1:]), "heartbeat"
            )
            beats.append(feed.health().last_heartbeat_ns)
        health = feed.health()

    assert got.ticks == [] and got.gaps == []
    assert health.reconnects == 0
    assert len(set(beats)) == 60
    assert set(health.stale) == {i.key for i in quiet}


async def test_kite_5000_instruments_shard_over_two_connections(sim: SimServer) -> None:
    feed = ticker(sim)
    await feed.subscribe(fake_equities(5000), Mode.LTP)
    async with running(feed):
        await wait_for(
            lambda: sorted(len(s) for s in sim_subscriptions(sim)) == [2000, 3000], "sharding"
        )
        health = feed.health()

    assert health.subscribed == 5000
    assert [c.subscribed for c in health.connections] == [3000, 2000]
    assert health.open_connections == 2


async def test_kite_fourth_connection_never_opened(sim: SimServer) -> None:
    feed = ticker(sim)
    await feed.subscribe(fake_equities(9000), Mode.LTP)
    async with running(feed):
        await wait_for(lambda: feed.health().open_connections == 3, "three connections")
        with pytest.raises(CapacityError) as refused:
            await feed.subscribe(fake_equities(1, first=990_000), Mode.LTP)
        sim.faults.set(None, close=True)  # every socket drops; all three reconnect at once
        await wait_for(lambda: feed.health().reconnects == 3, "three reconnects")
        await wait_for(
            lambda: sorted(len(s) for s in sim_subscriptions(sim)) == [3000] * 3, "resubscribed"
        )
        health = feed.health()

    assert "9000 subscribed + 1 requested = 9001" in str(refused.value)
    assert "3 connections x 3000" in str(refused.value)
    assert feed.slots.peak == 3
    assert all(c.last_error != "http_429" for c in health.connections)
    assert health.open_connections == 3


@pytest.mark.parametrize("sim", [{"faults": FaultPlan(truncate_every=3, unknown_every=4)}],
                         indirect=True)  # fmt: skip
async def test_kite_truncated_and_unknown_packets_counted_rest_kept(sim: SimServer) -> None:
    feed, stepper = ticker(sim), Stepper(sim)
    await feed.subscribe(UNIVERSE[:20], Mode.FULL)
    async with running(feed) as got:
        await wait_for(lambda: len(got.ticks) >= 20, "the initial snapshots")
        await stepper.run(40)
        await wait_for(lambda: len(got.ticks) == len(sim.emissions), "every packet sent")
        health = feed.health()

    assert values(got.ticks) == values(emitted(sim))
    assert health.rejected["truncated_packet"] > 0
    assert health.rejected["unknown_length"] > 0
    assert set(health.rejected) == {"truncated_packet", "unknown_length"}
    assert health.reconnects == 0


@pytest.mark.parametrize("sim", [{"faults": FaultPlan(burst_factor=10.0, burst_seconds=30.0)}],
                         indirect=True)  # fmt: skip
async def test_kite_burst_10x_decodes_every_packet(sim: SimServer) -> None:
    feed, stepper = ticker(sim), Stepper(sim)
    await feed.subscribe(UNIVERSE, Mode.FULL)
    async with running(feed) as got:
        await wait_for(lambda: len(got.ticks) >= len(UNIVERSE), "the initial snapshots")
        await stepper.run(40)
        await wait_for(lambda: len(got.ticks) == len(sim.emissions), "every packet sent")
        health = feed.health()

    assert sim.faults.tick_rate_scale() == 10.0
    assert sum(c.dropped for c in sim.connections()) == 0
    assert values(got.ticks) == values(emitted(sim))
    assert len(got.ticks) > 40 * 10
    assert health.rejected == {}


async def test_kite_dynamic_subscribe_unsubscribe_while_running(sim: SimServer) -> None:
    feed, stepper = ticker(sim), Stepper(sim)
    first, added = EQUITIES[:4], EQUITIES[4:7]
    await feed.subscribe(first, Mode.QUOTE)
    async with running(feed) as got:
        await wait_for(lambda: len(got.ticks) >= 4, "the initial snapshots")
        await feed.subscribe(added, Mode.FULL)
        await feed.unsubscribe(first[:2])
        await feed.subscribe(first[2:3], Mode.LTP)  # a mode change
        await stepper.until(
            lambda: {t.token for t in got.ticks[-50:]} >= {i.token for i in added}, "new data"
        )
        await wait_for(lambda: len(sim_subscriptions(sim)[0]) == 5, "the server's view")
        subscriptions = sim_subscriptions(sim)[0]

    itok = {i.token: wire.instrument_token(i.exchange, i.token) for i in EQUITIES[:7]}
    assert subscriptions == {
        itok[first[2].token]: Mode.LTP,
        itok[first[3].token]: Mode.QUOTE,
        **{itok[i.token]: Mode.FULL for i in added},
    }
    assert feed.health().subscribed == 5
    assert feed.health().reconnects == 0
