from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tickstream import __version__
from tickstream.cli import app

runner = CliRunner()


def test_cli_help_lists_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("run", "version"):
        assert command in result.output


def test_cli_version_prints_package_version() -> None:
    result = runner.invoke(app, ["version"])
    assert result.exit_code == 0
    assert result.output.strip() == __version__


def test_cli_bad_log_level_is_clear_error() -> None:
    result = runner.invoke(app, ["--log-level", "LOUD", "version"])
    assert result.exit_code != 0
    assert "unknown log level 'LOUD'" in repr(result.exception)


def test_cli_run_unknown_setting_exits_2_naming_it(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKSTREAM_")}
    env["TICKSTREAM_PROT"] = "1"
    res = subprocess.run(
        [sys.executable, "-m", "tickstream.cli", "run", "--duration-secs", "0.1"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 2
    assert "unknown setting TICKSTREAM_PROT" in res.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_cli_run_signal_stops_cleanly_exit_0(sig: signal.Signals, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKSTREAM_")}
    env["TICKSTREAM_PORT"] = "0"  # ephemeral: never collide with a running instance
    env["TICKSTREAM_DATA_DIR"] = str(tmp_path / "data")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tickstream.cli", "run"],
        env=env,
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        lines.append(line)
        if "running:" in line or not line:
            break
    assert any("running:" in line for line in lines), "".join(lines)
    proc.send_signal(sig)
    _, rest = proc.communicate(timeout=60)
    assert proc.returncode == 0, rest
    assert f"shutdown: {sig.name}" in rest
