"""Operational faults: a mute feed seen by /health, wall-clock jumps, a failed login at DEBUG,
the Parquet archive on a full disk. Each asserts the checker's verdict as well as the symptom."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest

from tickstream.calendar import ist_date

# The whole fault suite runs under TZ=UTC and TZ=Asia/Kolkata: verdicts must not depend on it.
pytestmark = pytest.mark.usefixtures("tz")


async def _health(run: Any) -> tuple[int, dict[str, Any]]:
    url = f"http://127.0.0.1:{run.asm.server.port}/health"
    async with httpx.AsyncClient(timeout=5.0) as client:
        resp = await client.get(url)
    return resp.status_code, resp.json()


async def test_fault_mute_feed_health_unhealthy_then_ok_no_reconnect(
    fault_run: Callable[..., Any], no_loss: Callable[..., None]
) -> None:
    # Arrange
    run = await fault_run(serve=True, health_no_data_secs=1.0)
    await asyncio.sleep(1.1)  # past the health warm-up
    healthy_before = await _health(run)
    # Act: market data stops, heartbeats continue
    run.sim.faults.set(None, mute=True)
    await asyncio.sleep(1.8)
    muted = await _health(run)
    run.sim.faults.clear()
    await run.wait_more_ticks(100)
    healthy_after = await _health(run)
    verdict = await run.finish()
    # Assert
    assert healthy_before[0] == 200
    assert muted[0] == 503
    assert "no ticks in the last 1 s" in muted[1]["reasons"]
    assert muted[1]["feeds"] == {"total": 1, "connected": 1}  # liveness kept: no reconnect
    assert healthy_after[0] == 200, healthy_after
    assert verdict.stats["feed"]["reconnects"] == 0
    no_loss(verdict)


@contextlib.contextmanager
def _wall_clock_shifted(
    monkeypatch: pytest.MonkeyPatch, feed: Any, shift_ns: int
) -> Iterator[None]:
    """Step the wall clock (time.time/time_ns, and the feed's receive clock) by ``shift_ns``."""
    real_ns, real_s = time.time_ns, time.time
    monkeypatch.setattr(time, "time_ns", lambda: real_ns() + shift_ns)
    monkeypatch.setattr(time, "time", lambda: real_s() + shift_ns / 1e9)
    old_config = feed.config
    feed.config = dataclasses.replace(old_config, clock_ns=lambda: real_ns() + shift_ns)
    try:
        yield
    finally:
        monkeypatch.undo()
        feed.config = old_config


@pytest.mark.parametrize("shift_s", [3600, -3600], ids=["forward", "backward"])
async def test_fault_clock_jump_no_spurious_reconnect_or_candle_damage(
    fault_run: Callable[..., Any],
    no_loss: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
    shift_s: int,
) -> None:
    # Arrange (equities: cumulative volume orders the ticks of one exchange second in storage,
    # where receive time, a wall-clock value, is reordered by the step itself)
    run = await fault_run(symbols=("RELIANCE", "INFY", "TCS", "SBIN", "ITC"))
    feed = run.asm.feed
    # Act: the wall clock steps an hour while ticks flow (watchdogs run on the monotonic clock)
    with _wall_clock_shifted(monkeypatch, feed, shift_s * 1_000_000_000):
        await run.wait_more_ticks(300)
    await run.wait_more_ticks(100)
    verdict = await run.finish()
    # Assert
    no_loss(verdict)
    feed_stats = verdict.stats["feed"]
    assert (feed_stats["reconnects"], feed_stats["gaps"]) == (0, 0)
    assert verdict.accounting["pipeline"]["late_dropped"] == 0


async def test_fault_failed_login_debug_logs_hold_no_secret(
    fault_run: Callable[..., Any], capfd: pytest.CaptureFixture[str]
) -> None:
    # Arrange: process logging at DEBUG (websockets, httpx and ours), as `tickstream run` sets it
    from tickstream.feeds.angelone.auth import AngelAuth
    from tickstream.feeds.base import AuthError
    from tickstream.logs import setup_logging
    from tickstream.sim.server import SimConfig, SimServer

    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    setup_logging("DEBUG")
    try:
        run = await fault_run()
        old_token = run.sim.credentials.kite_access_token
        # Act 1: the Kite token expires and no new one comes: refused handshake, failed re-login
        run.sim.expire_tokens()
        run.cut(run.conn_ids()[0], close=True)
        await run.wait_for("a failed re-login", lambda: run.stats()["feed"]["auth_attempts"] >= 1)
        # Act 2: an Angel login with a wrong PIN against the simulated REST API
        async with SimServer(SimConfig(rest=True, autostep=False)) as rest:
            c = rest.credentials
            wrong_pin = "0000" if c.angel_pin != "0000" else "1111"
            auth = AngelAuth(
                c.angel_api_key, c.angel_client_code, wrong_pin, c.angel_totp_secret,
                root=rest.angel_rest_root, retries=1, backoff_secs=0.01,
            )  # fmt: skip
            with pytest.raises(AuthError) as failed:
                await auth.login()
            secrets = [
                old_token, run.sim.credentials.kite_api_secret, wrong_pin, c.angel_pin,
                c.angel_totp_secret, pyotp.TOTP(c.angel_totp_secret).now(), c.angel_jwt,
                c.angel_feed_token,
            ]  # fmt: skip
        await run.asm.runtime.stop()
    finally:
        for h in list(root.handlers):
            if h not in saved[0]:
                root.removeHandler(h)
        root.setLevel(saved[1])
    # Assert: every line written at DEBUG, the error and the reprs hold none of the secrets
    err = capfd.readouterr().err + str(failed.value) + repr(auth) + repr(run.asm.feed)
    assert ("DEBUG" in err and "handshake" in err.lower()) or "403" in err
    leaked = [s for s in secrets if s and s in err]
    assert leaked == [], f"{len(leaked)} secret(s) appear in the DEBUG logs"


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    return proc.returncode == 0


def _archive_cmd(db: Path, day: dt.date, dest: Path) -> list[str]:
    import sys

    return [
        sys.executable, "-m", "tickstream.cli", "archive", "--date", day.isoformat(),
        "--to", str(dest), "--store", str(db), "--delete",
    ]  # fmt: skip


async def test_fault_archive_disk_full_fails_clearly_and_hot_store_keeps_every_tick(
    fault_run: Callable[..., Any], no_loss: Callable[..., None], tmp_path: Path
) -> None:
    # Arrange: a stored day (the verdict first), then a 64 KiB disk for its archive
    run = await fault_run(symbols=())
    await run.wait_more_ticks(4000, timeout=30)
    verdict = await run.finish()
    no_loss(verdict)
    db = run.settings.data_dir / "tickstream.duckdb"
    day = ist_date(run.started_ns)
    full = tmp_path / "full"
    mounted = _mount_tmpfs(full, "64k")
    if not mounted:  # not root: the same effect through RLIMIT_FSIZE in the child
        pytest.skip("cannot mount a tmpfs here (needs root); see the Reliability notes")
    try:
        # Act
        proc = await asyncio.to_thread(
            subprocess.run, _archive_cmd(db, day, full), capture_output=True, text=True,
            timeout=60, check=False,
        )  # fmt: skip
    finally:
        await asyncio.to_thread(subprocess.run, ["umount", str(full)], check=False)
    # Assert: a clear failure, and the hot store still has every tick (nothing deleted)
    assert proc.returncode != 0, proc.stdout
    assert "No space left on device" in proc.stderr, proc.stderr[-2000:]
    again = await run._check()
    assert again.ticks.stored == verdict.report.ticks.stored
    assert (again.ticks.missing, again.ticks.duplicated) == (0, 0)
