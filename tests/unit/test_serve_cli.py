"""``tickstream serve`` through the Typer runner."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tickstream.cli import app
from tickstream.serve.security import KeyStore, Scope


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    for name in ("REDIS_URL", "DATABASE_URL", "KAFKA_BOOTSTRAP"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TICKSTREAM_DATA_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)  # no stray .env
    return CliRunner()


def test_serve_new_key_admin_prints_key_that_verifies(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["serve", "--new-key", "admin"])
    assert result.exit_code == 0, result.output
    key = result.stdout.strip().splitlines()[0]
    record = KeyStore.load(tmp_path / "api_keys.json").verify(key)
    assert record is not None
    assert record.allows(Scope.ADMIN)


def test_serve_new_key_unknown_scope_exits_2(runner: CliRunner) -> None:
    result = runner.invoke(app, ["serve", "--new-key", "root"])
    assert result.exit_code == 2
    assert "read or admin" in result.output


def test_serve_without_redis_and_postgres_exits_2_naming_them(runner: CliRunner) -> None:
    result = runner.invoke(app, ["serve"])
    assert result.exit_code == 2
    assert "REDIS_URL and DATABASE_URL" in result.output


def test_serve_sim_runs_and_stops_cleanly(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["serve", "--sim", "--port", "0", "--duration-secs", "1.5"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "tickstream.duckdb").is_file()
    assert len(KeyStore.load(tmp_path / "api_keys.json")) == 1
