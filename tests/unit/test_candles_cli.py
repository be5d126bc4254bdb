"""``tickstream candles`` through typer's CliRunner."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

from typer.testing import CliRunner

from tickstream.calendar import ist_ns
from tickstream.cli import app
from tickstream.model import Tick, encode_json

runner = CliRunner()
DAY = dt.date(2025, 3, 3)


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_candles_cli_help_has_example() -> None:
    result = runner.invoke(app, ["candles", "--help"])
    assert result.exit_code == 0
    assert "tickstream candles --interval 5m" in result.output


def test_candles_cli_csv_with_cumulative_volume() -> None:
    # Arrange
    text = (
        "ts,symbol,ltp,volume\n"
        "2025-03-03T09:10:00+05:30,SBIN,699.0,80\n"  # before the open: baseline, no candle
        "2025-03-03T09:15:05+05:30,SBIN,700.5,100\n"
        "2025-03-03T09:15:40+05:30,SBIN,701.25,150\n"
        "2025-03-03T09:16:02+05:30,SBIN,699.0,170\n"
    )
    # Act
    result = runner.invoke(app, ["candles", "--interval", "1m", "-"], input=text)
    # Assert
    assert result.exit_code == 0, result.output
    assert rows(result.stdout) == [
        {
            "ts": "2025-03-03T09:15:00+05:30",
            "symbol": "SBIN",
            "open": "700.5",
            "high": "701.25",
            "low": "700.5",
            "close": "701.25",
            "volume": "70",
            "ticks": "2",
            "partial": "false",
            "incomplete": "false",
        },
        {
            "ts": "2025-03-03T09:16:00+05:30",
            "symbol": "SBIN",
            "open": "699.0",
            "high": "699.0",
            "low": "699.0",
            "close": "699.0",
            "volume": "20",
            "ticks": "1",
            "partial": "false",
            "incomplete": "false",
        },
    ]


def test_candles_cli_ltq_and_epoch_ms_from_file(tmp_path: Path) -> None:
    # Arrange: epoch milliseconds, quantities instead of a cumulative volume, two symbols
    t0 = ist_ns(DAY, 9, 20) // 1_000_000
    path = tmp_path / "ticks.csv"
    path.write_text(
        "Timestamp,Symbol,Price,Qty\n"
        f"{t0 + 1000},A,10.0,5\n"
        f"{t0 + 2000},B,20.0,7\n"
        f"{t0 + 3000},A,11.0,3\n"
        f"{t0 + 4000},A,9.5,2\n"
    )
    # Act
    result = runner.invoke(app, ["candles", "-i", "5m", str(path)])
    # Assert: volumes are the summed quantities
    assert result.exit_code == 0, result.output
    got = [
        (r["ts"], r["symbol"], r["open"], r["low"], r["close"], r["volume"])
        for r in rows(result.stdout)
    ]
    assert got == [
        ("2025-03-03T09:20:00+05:30", "A", "10.0", "9.5", "9.5", "10"),
        ("2025-03-03T09:20:00+05:30", "B", "20.0", "20.0", "20.0", "7"),
    ]


def test_candles_cli_jsonl_ticks() -> None:
    # Arrange
    ts = ist_ns(DAY, 11, 0, 30)
    ticks = [
        Tick(
            exchange="NFO",
            token=9,
            symbol="NIFTYFUT",
            source="kite",
            ts_exchange=ts + i * 10**9,
            ts_recv=ts + i * 10**9,
            ltp=22000.0 + i,
            volume=1000 + i * 75,
        )
        for i in range(3)
    ]
    text = "".join(encode_json(t).decode() + "\n" for t in ticks)
    # Act
    result = runner.invoke(app, ["candles", "--interval", "1m"], input=text)
    # Assert
    assert result.exit_code == 0, result.output
    (row,) = rows(result.stdout)
    assert (row["ts"], row["symbol"], row["open"], row["close"], row["volume"], row["partial"]) == (
        "2025-03-03T11:00:00+05:30",
        "NIFTYFUT",
        "22000.0",
        "22002.0",
        "150",
        "true",
    )


def test_candles_cli_missing_column_is_an_error() -> None:
    result = runner.invoke(app, ["candles", "-"], input="ts,symbol,volume\n1,A,1\n")
    assert result.exit_code == 2
    assert "lacks required column(s): ltp" in result.output


def test_candles_cli_no_volume_column_index_candles_volume_zero() -> None:
    text = (
        "ts,symbol,ltp\n"
        "2022-11-21T09:15:01+05:30,NIFTY 50,18246.4\n"
        "2022-11-21T09:15:30+05:30,NIFTY 50,18253.15\n"
        "2022-11-21T09:15:59+05:30,NIFTY 50,18224.4\n"
        "2022-11-21T09:16:00+05:30,NIFTY 50,18225.65\n"
    )
    result = runner.invoke(app, ["candles", "--exchange", "INDICES", "-"], input=text)
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    # first bucket: we joined at 09:15:01, after its start, so it is flagged partial
    assert (
        lines[1]
        == "2022-11-21T09:15:00+05:30,NIFTY 50,18246.4,18253.15,18224.4,18224.4,0,3,true,false"
    )
    assert (
        lines[2]
        == "2022-11-21T09:16:00+05:30,NIFTY 50,18225.65,18225.65,18225.65,18225.65,0,1,false,false"
    )


def test_candles_cli_time_without_offset_is_an_error() -> None:
    text = "ts,symbol,ltp,volume\n2025-03-03 09:15:05,SBIN,700.5,100\n"
    result = runner.invoke(app, ["candles", "-"], input=text)
    assert result.exit_code == 2
    assert "offset" in result.output
