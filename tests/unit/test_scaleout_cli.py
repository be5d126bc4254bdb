"""`tickstream ingest` / `process` CLI surface (no services: only argument handling)."""

from __future__ import annotations

from typer.testing import CliRunner

from tickstream.cli import app


def test_ingest_cli_unknown_source_exits_2_naming_available_sources() -> None:
    result = CliRunner().invoke(app, ["ingest", "--source", "kite-live"])

    assert result.exit_code == 2
    assert "unknown source 'kite-live'; available: sim" in result.output


def test_process_cli_help_lists_group_and_topics() -> None:
    result = CliRunner().invoke(app, ["process", "--help"], terminal_width=200)

    assert result.exit_code == 0
    for option in ("--group", "--source-topic", "--candles-topic", "--intervals", "--batch"):
        assert option in result.output
