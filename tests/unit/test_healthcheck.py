from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from typer.testing import CliRunner

from tickstream.cli import app
from tickstream.heartbeat import HeartbeatFile, read_heartbeat

runner = CliRunner()


async def test_heartbeat_file_written_then_removed_on_stop(tmp_path: Path) -> None:
    path = tmp_path / "hb" / "ingest.json"
    hb = HeartbeatFile(path, "ingest", status=lambda: {"ok": True, "ticks": 42}, interval_secs=0.01)
    await hb.start()
    await asyncio.sleep(0.03)
    doc = json.loads(path.read_text())
    assert doc["component"] == "ingest" and doc["ticks"] == 42 and doc["ok"] is True
    await hb.stop()
    assert not path.exists()


def test_read_heartbeat_stale_file_unhealthy(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"component": "process", "ts": 1000.0, "ok": True}))
    ok, reason = read_heartbeat(path, max_age_secs=30, now=1045.0)
    assert not ok and reason == "heartbeat is 45s old (limit 30s)"
    assert read_heartbeat(path, max_age_secs=30, now=1010.0) == (
        True,
        "process ok, heartbeat 10.0s old",
    )


def test_read_heartbeat_not_ok_reports_reason(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"ts": time.time(), "ok": False, "reason": "kafka unreachable"}))
    assert read_heartbeat(path, 30) == (False, "kafka unreachable")


def test_healthcheck_cli_missing_file_exit_1(tmp_path: Path) -> None:
    result = runner.invoke(app, ["healthcheck", "--heartbeat-file", str(tmp_path / "none.json")])
    assert result.exit_code == 1
    assert "no heartbeat file" in result.output


def test_healthcheck_cli_fresh_file_exit_0(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    HeartbeatFile(path, "process").write()
    result = runner.invoke(app, ["healthcheck", "--heartbeat-file", str(path)])
    assert result.exit_code == 0
    assert "healthy: process ok" in result.output


def test_healthcheck_cli_needs_exactly_one_target() -> None:
    result = runner.invoke(app, ["healthcheck"])
    assert result.exit_code == 2


def test_healthcheck_cli_unreachable_url_exit_1() -> None:
    result = runner.invoke(
        app, ["healthcheck", "--url", "http://127.0.0.1:9/health", "--timeout-secs", "1"]
    )
    assert result.exit_code == 1
    assert "unhealthy: ConnectError" in result.output
