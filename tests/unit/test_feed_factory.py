"""build_feed: the simulator by default (through the real clients), a broker when configured."""

from __future__ import annotations

import time

import pytest
from feed_support import START, UNIVERSE, Stepper, running, sim_config, wait_for

from tickstream.config import Settings
from tickstream.feeds import build_feed
from tickstream.feeds.angelone.websocket import ANGEL_WS_URL, AngelOneFeed
from tickstream.feeds.client import ShardedFeed
from tickstream.feeds.kite.ticker import KITE_WS_URL, KiteTicker
from tickstream.model import Mode
from tickstream.sim.clock import SimClock
from tickstream.sim.server import SimServer

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(("broker", "cls"), [("kite", KiteTicker), ("angelone", AngelOneFeed)])
async def test_feed_factory_sim_feed_streams_ticks_through_real_client(
    broker: str, cls: type[ShardedFeed]
) -> None:
    settings = Settings(feed="sim", stale_after_secs=5.0)
    async with SimServer(sim_config()) as sim:
        feed = build_feed(settings, sim, sim_broker=broker)
        assert isinstance(feed, cls)
        await feed.subscribe(UNIVERSE[:10], Mode.QUOTE)
        async with running(feed) as got:
            await Stepper(sim).until(lambda: len({t.token for t in got.ticks}) == 10, "ticks")

    assert {(t.exchange, t.token) for t in got.ticks} == {
        (i.exchange, i.token) for i in UNIVERSE[:10]
    }
    assert {t.source for t in got.ticks} == {broker}
    assert {t.symbol for t in got.ticks} == {i.symbol for i in UNIVERSE[:10]}


def test_feed_factory_kite_credentials_build_the_kite_client() -> None:
    secrets = {"kite_api_key": "key", "kite_access_token": "token-value"}
    settings = Settings(feed="auto", **secrets)  # type: ignore[arg-type]

    feed = build_feed(settings)

    assert isinstance(feed, KiteTicker)
    assert feed.adapter.url == KITE_WS_URL  # type: ignore[attr-defined]


def test_feed_factory_angel_credentials_build_the_angel_client() -> None:
    secrets = {
        "angel_api_key": "k", "angel_client_code": "C1", "angel_pin": "1234",
        "angel_totp_secret": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
    }  # fmt: skip
    settings = Settings(feed="angelone", reconnect_delay_max_secs=7.0, **secrets)  # type: ignore[arg-type]

    feed = build_feed(settings)

    assert isinstance(feed, AngelOneFeed)
    assert feed.adapter.url == ANGEL_WS_URL  # type: ignore[attr-defined]
    assert feed.config.reconnect_delay_max_secs == 7.0


def test_feed_factory_sim_without_simulator_is_an_error() -> None:
    with pytest.raises(ValueError, match="needs the running SimServer"):
        build_feed(Settings(feed="sim"))


async def test_feed_factory_sim_gap_on_the_simulated_exchange_clock() -> None:
    """Off-hours the simulator replays a past session: a gap must be stamped on that clock, or
    the pipeline (which compares a gap's end with ticks' ts_exchange) never clears STALE."""
    clock = SimClock("fixed", start_ns=START)  # advances with the monotonic clock from START
    async with SimServer(sim_config(clock=clock)) as sim:
        feed = build_feed(Settings(feed="sim"), sim)
        assert isinstance(feed, KiteTicker)
        stepper = Stepper(sim)
        await feed.subscribe(UNIVERSE[2:6], Mode.FULL)  # full packets carry exchange time
        async with running(feed) as got:
            await wait_for(lambda: len(got.ticks) >= 4, "the initial snapshots")
            sim.faults.set(None, close=True)
            stepper.now = clock.now_ns()
            await stepper.until(lambda: bool(got.gaps), "the gap event")
            stepper.now = clock.now_ns()
            await stepper.until(
                lambda: got.ticks[-1].ts_exchange > got.gaps[0].end_ns, "ticks after the gap"
            )

    gap = got.gaps[0]
    hour = 3600 * 10**9
    assert START <= gap.start_ns < gap.end_ns < START + hour
    full = [t for t in got.ticks if t.mode is Mode.FULL]  # Kite subscribes in quote, then full
    assert len(full) > 4
    assert all(START <= t.ts_exchange < START + hour for t in full)
    wall = time.time_ns()
    assert all(wall - hour < t.ts_recv <= wall for t in got.ticks)  # receive times stay wall time
    assert abs(wall - START) > hour  # so wall-clock gap times would never clear STALE
