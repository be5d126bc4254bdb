"""The shared client's bounded queue and the Kite token-file re-authentication."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from feed_support import EQUITIES, FAST, Stepper, running, sim_config, wait_for

from tickstream.feeds.adapter import FeedConfig
from tickstream.feeds.base import ConnectionState
from tickstream.feeds.kite.auth import KiteAuth
from tickstream.feeds.kite.ticker import KiteTicker
from tickstream.model import Mode, Tick
from tickstream.pipeline.sequence import GapEvent
from tickstream.sim.server import SimServer

pytestmark = pytest.mark.timeout(60)


def tick(token: int, ts_recv: int) -> Tick:
    return Tick(exchange="NSE", token=token, symbol=str(token), source="kite",
                ts_exchange=ts_recv, ts_recv=ts_recv, ltp=1.0)  # fmt: skip


def drain(feed: KiteTicker) -> list[object]:
    out: list[object] = []
    queue = feed._queue
    while not queue.empty():
        out.append(queue.get_nowait())
    return out


async def test_client_full_queue_drops_batches_and_reports_overflow_gap() -> None:
    feed = KiteTicker(KiteAuth("key", access_token="tok"), FeedConfig(queue_max_batches=3))
    batches = [[tick(1, 10)], [tick(2, 20)], [tick(3, 30)], [tick(4, 40)], [tick(5, 50)]]

    for batch in batches:
        feed.on_ticks(batch)  # the reader never waits: two of these find the queue full
    first = drain(feed)
    feed.on_ticks([tick(6, 60)])
    second = drain(feed)

    assert first == batches[:3]
    assert feed.dropped_batches == 2
    gap = second[0]
    assert isinstance(gap, GapEvent)
    assert (gap.instruments, gap.start_ns, gap.end_ns) == ((("NSE", 4), ("NSE", 5)), 40, 50)
    assert gap.cause == "queue_overflow"
    assert second[1:] == [[tick(6, 60)]]


async def test_kite_expired_token_waits_for_new_file_token_then_resumes(tmp_path: Path) -> None:
    async with SimServer(sim_config()) as sim:
        token_file = tmp_path / "kite_token"
        token_file.write_text(sim.credentials.kite_access_token)
        auth = KiteAuth(sim.credentials.kite_api_key, token_file=token_file)
        feed = KiteTicker(auth, FAST, url=sim.kite_ws_url, heartbeat_secs=0.2)
        stepper = Stepper(sim)
        await feed.subscribe(EQUITIES[:3], Mode.QUOTE)
        async with running(feed) as got:
            await wait_for(lambda: len(got.ticks) >= 3, "the initial snapshots")
            sim.expire_tokens()
            sim.faults.set(None, close=True)
            await wait_for(lambda: feed.health().state is ConnectionState.AUTH_WAIT, "auth wait")
            await asyncio.sleep(0.3)  # a few retry periods: the old token is never tried again
            waiting = feed.health()
            token_file.write_text(sim.issue_kite_token() + "\n")  # the morning login
            await wait_for(lambda: feed.health().reconnects == 1, "the reconnect")
            await stepper.until(lambda: bool(got.gaps), "the gap event")

    assert waiting.connections[0].connects == 1
    assert waiting.auth_attempts >= 2  # each attempt re-read the file; none reconnected
    assert waiting.connections[0].last_error == "http_403"
    assert [g.cause for g in got.gaps] == ["closed_no_frame+http_403"]


async def test_kite_reader_never_waits_for_a_stuck_consumer() -> None:
    config = FeedConfig(
        reconnect_delay_initial_secs=0.02, queue_max_batches=4, stale_after_secs=30.0
    )
    async with SimServer(sim_config()) as sim:
        c = sim.credentials
        feed = KiteTicker(KiteAuth(c.kite_api_key, access_token=c.kite_access_token), config,
                          url=sim.kite_ws_url, heartbeat_secs=0.2)  # fmt: skip
        stepper = Stepper(sim)
        await feed.subscribe(EQUITIES[:5], Mode.QUOTE)
        await feed.start()  # nobody reads events() yet
        await stepper.until(lambda: feed.dropped_batches >= 10, "dropped batches")
        beat = feed.health().last_heartbeat_ns or 0
        await wait_for(lambda: (feed.health().last_heartbeat_ns or 0) > beat, "a later heartbeat")
        queued = drain(feed)
        stepper.step()
        await wait_for(lambda: not feed._queue.empty(), "data after the backlog")
        after = drain(feed)
        health = feed.health()
        await feed.stop()

    assert len(queued) == 4 and all(isinstance(e, list) for e in queued)
    gap = after[0]
    assert isinstance(gap, GapEvent) and gap.cause == "queue_overflow"
    assert set(gap.instruments or ()) <= {(i.exchange, i.token) for i in EQUITIES[:5]}
    assert health.reconnects == 0
    assert health.dropped_batches == feed.dropped_batches >= 10


async def test_kite_socket_logs_never_show_the_access_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with SimServer(sim_config()) as sim:
        c = sim.credentials
        feed = KiteTicker(KiteAuth(c.kite_api_key, access_token=c.kite_access_token), FAST,
                          url=sim.kite_ws_url, heartbeat_secs=0.2)  # fmt: skip
        await feed.subscribe(EQUITIES[:2], Mode.QUOTE)
        with caplog.at_level(logging.DEBUG):
            async with running(feed) as got:
                await wait_for(lambda: len(got.ticks) >= 2, "data")
                sim.expire_tokens()
                sim.faults.set(None, close=True)  # reconnect, refused with 403
                await wait_for(lambda: feed.health().auth_attempts >= 1, "the refusal")

    # The simulator's own server logs (the broker's side) are not ours to judge.
    ours = [
        r for r in caplog.records if not r.name.startswith(("websockets.server", "tickstream.sim"))
    ]
    assert "tickstream.feeds.connection" in {r.name for r in ours}
    assert all(c.kite_access_token not in r.getMessage() for r in ours)
