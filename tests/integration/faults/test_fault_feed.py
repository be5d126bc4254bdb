"""Broker-side faults against the real client, pipeline and store; each asserts the checker verdict.

Every scenario runs ``tickstream run`` in-process (simulator with an emission log → Kite client →
pipeline → DuckDB), injects the fault, quiesces, stops cleanly and checks: zero missing, zero
duplicated, zero altered stored ticks; candles equal to a resample of the stored ticks; every
accounting invariant holds after the drain. The whole module runs under TZ=UTC and under
TZ=Asia/Kolkata (the ``tz`` fixture): the verdicts must be the same, zero loss in both.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from tickstream.feeds.factory import build_feed
from tickstream.model import Mode
from tickstream.sim.clock import latest_session_start

pytestmark = pytest.mark.usefixtures("tz")


async def test_fault_socket_reset_mid_frame_no_tick_lost(
    fault_run: Callable[..., Any], no_loss: Callable[..., None]
) -> None:
    # Arrange: a 10x burst so that frames are large and a reset lands mid-frame
    run = await fault_run()
    run.sim.faults.set(None, burst_factor=10.0, burst_seconds=3.0)
    # Act: reset the connection twice without a close frame
    for _ in range(2):
        old = set(run.conn_ids())
        run.cut(next(iter(old)), close=True)
        await run.wait_reconnected(old)
    verdict = await run.finish()
    # Assert
    no_loss(verdict)
    feed = verdict.stats["feed"]
    assert feed["reconnects"] == 2
    assert feed["gaps"] == 2  # each cut interval reported as a gap (the undelivered tail's cover)
    assert verdict.report.ticks.undelivered >= 0  # a tail in flight at the reset may be cut


async def test_fault_half_open_stall_detected_and_no_tick_lost(
    fault_run: Callable[..., Any], no_loss: Callable[..., None]
) -> None:
    # Arrange
    run = await fault_run()
    old = set(run.conn_ids())
    # Act: the server stops sending (no data, no heartbeats) but keeps the socket open
    run.cut(next(iter(old)), stall=True)
    await run.wait_reconnected(old)
    verdict = await run.finish()
    # Assert
    no_loss(verdict)
    assert (verdict.stats["feed"]["reconnects"], verdict.stats["feed"]["gaps"]) == (1, 1)


async def test_fault_truncated_and_unknown_packets_rejected_by_reason(
    fault_run: Callable[..., Any], no_loss: Callable[..., None]
) -> None:
    # Arrange
    run = await fault_run()
    # Act
    run.sim.faults.set(None, truncate_every=3, unknown_every=4)
    await run.wait_more_ticks(400)
    verdict = await run.finish()
    # Assert: bad packets are counted rejects, never missing or altered stored ticks
    no_loss(verdict)
    feed = verdict.accounting["feed"]
    assert feed["rejected"]["truncated_packet"] > 0
    assert feed["rejected"]["unknown_length"] > 0
    assert feed["packets"] == feed["parsed"] + feed["rejected_packets"]


async def test_fault_duplicate_packets_and_second_connection_deduplicated(
    fault_run: Callable[..., Any], no_loss: Callable[..., None]
) -> None:
    # Arrange: every 2nd packet twice on the first connection, and a second connection
    run = await fault_run()
    run.sim.faults.set(run.conn_ids()[0], duplicate_every=2)
    second = build_feed(run.settings, run.sim)
    await second.start()
    await second.subscribe(run.asm.instruments, Mode.FULL)
    run.asm.runner.add_source(second.events(), "kite-second")
    # Act
    await run.wait_more_ticks(600)
    await run.wait_for("both connections", lambda: len(run.conn_ids()) == 2)
    verdict = await run.finish()
    await second.stop()
    # Assert: every copy is a counted dedup, each tick stored once; the pipeline took in what
    # both connections parsed (the assembly's own accounting sees the first feed only)
    no_loss(verdict, unjudged=("feed_to_pipeline",))
    both = verdict.accounting["feed"]["parsed"] + second.health().parsed
    assert both == verdict.accounting["pipeline"]["ticks_in"]
    t = verdict.report.ticks
    assert t.emitted > t.emitted_distinct
    assert verdict.accounting["pipeline"]["deduplicated"] >= t.emitted - t.emitted_distinct - 50


async def test_fault_burst_at_open_ten_times_rate_no_tick_lost(
    fault_run: Callable[..., Any], no_loss: Callable[..., None]
) -> None:
    # Arrange: the whole universe, exchange time from 09:15:00 IST
    run = await fault_run(symbols=(), at_open=True)
    # Act
    run.sim.faults.set(None, burst_factor=10.0, burst_seconds=4.0)
    await run.wait_more_ticks(3000, timeout=30)
    verdict = await run.finish()
    # Assert: the first candles are the session's first buckets, built from every tick
    no_loss(verdict)
    assert verdict.accounting["feed"]["dropped_batches"] == 0
    assert verdict.accounting["pipeline"]["candles_emitted"] > 0
    open_ns = latest_session_start(time.time_ns(), hour=9) + 15 * 60 * 1_000_000_000
    assert run.started_ns - open_ns < 60 * 1_000_000_000


async def test_fault_token_expiry_relogin_resumes_without_loss(
    fault_run: Callable[..., Any], no_loss: Callable[..., None], tmp_path: Any
) -> None:
    # Arrange: the daily login job writes the new token to the file the client re-reads
    run = await fault_run()
    feed = run.asm.feed
    token_file = tmp_path / "kite_token"
    feed.adapter.auth.token_file = token_file
    old = set(run.conn_ids())
    # Act: tokens expire, the live socket drops; the old token is refused (403)
    run.sim.expire_tokens()
    token_file.write_text(run.sim.issue_kite_token(), encoding="utf-8")
    run.cut(next(iter(old)), close=True)
    await run.wait_reconnected(old)
    verdict = await run.finish()
    # Assert
    no_loss(verdict)
    assert verdict.stats["feed"]["auth_attempts"] >= 1
