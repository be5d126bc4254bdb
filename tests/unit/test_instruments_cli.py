"""``tickstream instruments load|search|show`` through the CLI runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tickstream.cli import app

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
MASTERS = [
    "--kite", str(DATA / "kite" / "kite_instruments_nse_2023-09-17.csv"),
    "--angel", str(DATA / "angel" / "angel_scripmaster_nse_eq_2025-06-29.json"),
    "--universe", str(DATA / "nse" / "ind_nifty500list.csv"),
]  # fmt: skip
runner = CliRunner()


@pytest.mark.skipif(not DATA.is_dir(), reason="shared data folder not present")
def test_instruments_cli_load_reports_counts_and_missing(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["instruments", "load", *MASTERS, "--db", str(tmp_path / "i.duckdb")]
    )

    assert result.exit_code == 0, result.output
    assert "kite 5669, angel 2069, cross-referenced 6198, universe 492" in result.output
    assert "excluded (8): ABREL, AEGISLOG" in result.output
    assert "stored 492 instruments" in result.output


@pytest.mark.skipif(not DATA.is_dir(), reason="shared data folder not present")
def test_instruments_cli_show_prints_cross_referenced_record() -> None:
    result = runner.invoke(app, ["instruments", "show", "infy", *MASTERS])

    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert (record["token"], record["kite_token"], record["angel_token"]) == (1594, 408065, "1594")
    assert record["isin"] == "INE009A01021"


def test_instruments_cli_search_default_universe() -> None:
    result = runner.invoke(app, ["instruments", "search", "HDFCBNK", "--limit", "1"])

    assert result.exit_code == 0, result.output
    assert result.output.split("\t")[:4] == ["NSE:1333", "HDFCBANK", "kite=341249", "angel=1333"]


def test_instruments_cli_bad_master_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "empty.csv"
    bad.write_text("")

    result = runner.invoke(app, ["instruments", "search", "X", "--kite", str(bad)])

    assert result.exit_code == 2
    assert "unexpected header" in result.output
