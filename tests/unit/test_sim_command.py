"""``tickstream sim`` through the CLI runner, and the recorded-series parser it uses."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from tickstream.calendar import ist_datetime
from tickstream.cli import app
from tickstream.sim.universe import parse_price_series

pytestmark = pytest.mark.timeout(60)


def test_sim_command_help_explains_how_to_connect() -> None:
    result = CliRunner().invoke(app, ["sim", "--help"])

    assert result.exit_code == 0
    assert "smart-stream" in result.output and "--fault" in result.output


def test_sim_command_runs_and_prints_urls_and_simulator_credentials() -> None:
    args = ["sim", "--kite-port", "0", "--angel-port", "0", "--kite-rest-port", "0",
            "--angel-rest-port", "0", "--run-seconds", "0.3", "--fault", "mute",
            "--fault-after", "0.1s"]  # fmt: skip

    result = CliRunner().invoke(app, args)

    assert result.exit_code == 0, result.output
    assert re.search(r"kite ticker +ws://127\.0\.0\.1:\d+/\?api_key=simkite", result.output)
    assert re.search(r"angel stream +ws://127\.0\.0\.1:\d+/smart-stream", result.output)
    assert re.search(r"kite REST +http://127\.0\.0\.1:\d+", result.output)
    assert "local simulator only" in result.output
    assert re.search(r"KITE_ACCESS_TOKEN=[0-9a-f]{32}", result.output)
    assert result.output.rstrip().endswith("simulator stopped")


def test_sim_command_unknown_fault_is_a_usage_error() -> None:
    result = CliRunner().invoke(app, ["sim", "--fault", "explode", "--run-seconds", "0.1"])

    assert result.exit_code == 2
    assert "unknown fault" in result.output


def test_parse_price_series_reads_ist_wall_times_and_epoch_ns() -> None:
    text = "2022-11-21 09:15:00,18307.65\n\n# note\n1669002301000000000,18300.5\n"

    series = parse_price_series(text)

    assert [ist_datetime(ts).isoformat() for ts, _ in series][:1] == ["2022-11-21T09:15:00+05:30"]
    assert series == [(1669002300000000000, 18307.65), (1669002301000000000, 18300.5)]


def test_parse_price_series_bad_line_names_the_line() -> None:
    with pytest.raises(ValueError, match="line 2"):
        parse_price_series("2022-11-21 09:15:00,1.0\nnot a line\n")
