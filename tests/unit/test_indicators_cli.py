"""`tickstream indicators` through typer's CliRunner, on the real Kite 1-minute files."""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
from pathlib import Path

import numpy as np
import pytest
import talib
from typer.testing import CliRunner

from tickstream.calendar import ist_ns
from tickstream.cli import app
from tickstream.commands.indicators import OUTPUT_COLUMNS, parse_ts

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "ohlcv_1min"
SBIN = DATA / "SBIN_1min_2023-04-03_2023-06-01.csv"
VIX = DATA / "INDIAVIX_1min_2023-04-03_2023-06-01.csv"
T0 = ist_ns(dt.date(2023, 4, 3), 9, 15)  # 2023-04-03 09:15 IST = 03:45 UTC
runner = CliRunner()


def invoke(*args: str, stdin: str | None = None) -> tuple[int, list[list[str]], str]:
    result = runner.invoke(app, ["indicators", *args], input=stdin)
    return result.exit_code, list(csv.reader(io.StringIO(result.stdout))), result.stderr


def cell(row: list[str], name: str, header: list[str]) -> float:
    text = row[header.index(name)]
    return math.nan if text == "" else float(text)


def test_indicators_cli_real_file_cells_equal_talib() -> None:
    # Arrange
    rows = list(csv.reader(io.StringIO(SBIN.read_text())))
    h, lo, c = (np.array([float(r[k]) for r in rows[1:]]) for k in (2, 3, 4))
    rsi, atr, ema21 = talib.RSI(c, 14), talib.ATR(h, lo, c, 14), talib.EMA(c, 21)
    upper, _, _ = talib.BBANDS(c, 20, 2.0, 2.0, 0)
    # Act
    code, out, _ = invoke(str(SBIN))
    # Assert
    header, body = out[0], out[1:]
    assert code == 0
    assert header == [*rows[0], *OUTPUT_COLUMNS]
    assert [r[:6] for r in body] == rows[1:]
    for i in (13, 14, 20, 375, 7_777, 15_000):
        for name, ref in (("rsi_14", rsi), ("atr_14", atr), ("ema_21", ema21), ("bb_upper", upper)):
            assert cell(body[i], name, header) == pytest.approx(ref[i], rel=1e-9, nan_ok=True)
    assert cell(body[0], "vwap", header) == pytest.approx((524.75 + 522.6 + 523.9) / 3, rel=1e-12)
    assert body[9][-2:] == ["", ""] and body[10][-1] in ("1", "-1")


def test_indicators_cli_leading_index_column_kept_and_index_has_no_vwap() -> None:
    code, out, _ = invoke(str(VIX))
    header, body = out[0], out[1:]
    assert code == 0
    assert header[:2] == ["", "date"]
    assert body[0][:2] == ["0", "2023-04-03 09:15:00+05:30"]
    assert {r[header.index("vwap")] for r in body} == {""}
    assert len(body) == 15_001


@pytest.mark.parametrize(
    "ts",
    [
        "1680493500",
        "1680493500000",
        "1680493500000000",
        "1680493500000000000",
        "1680493500.0",
        "2023-04-03T03:45:00Z",
        "2023-04-03 09:15:00+05:30",
        "2023-04-03T09:15:00+0530",
    ],
)
def test_parse_ts_each_format_gives_same_epoch_ns(ts: str) -> None:
    assert parse_ts(ts) == T0


def test_parse_ts_bare_date_is_ist_midnight() -> None:
    assert parse_ts("2023-04-03") == ist_ns(dt.date(2023, 4, 3), 0)


def test_parse_ts_without_offset_raises() -> None:
    with pytest.raises(ValueError, match="no UTC offset"):
        parse_ts("2023-04-03 09:15:00")


def test_indicators_cli_stdin_epoch_ms_resets_vwap_next_day() -> None:
    # Arrange: two bars on one IST day, then one the next day (ts in epoch milliseconds)
    day_ms = 86_400_000
    t = T0 // 1_000_000
    text = f"ts,open,high,low,close,volume\n{t},10,12,6,9,10\n{t + 60_000},9,9,9,9,30\n"
    text += f"{t + day_ms},20,21,18,18,2\n"
    # Act
    code, out, _ = invoke("-", stdin=text)
    # Assert
    vwap = [r[out[0].index("vwap")] for r in out[1:]]
    assert code == 0
    assert [float(v) for v in vwap] == [9.0, 9.0, 19.0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ts,open,high,low\n1,1,1,1\n", "missing column(s) close"),
        ("ts,open,high,low,close\n1680493500,1,1,1,1\n1680493560,1,x,1,1\n", "row 2"),
        ("ts,open,high,low,close\n1680493560,1,1,1,1\n1680493500,1,1,1,1\n", "row 2: timestamp"),
        ("ts,open,high,low,close\n1680493560,1,1,1,1\n1680493560,1,1,1,1\n", "row 2: timestamp"),
        ("ts,open,high,low,close\n1680493560,1,nan,1,1\n", "row 1: non-finite"),
        ("", "empty input"),
    ],
)
def test_indicators_cli_bad_input_exits_2_with_message(text: str, message: str) -> None:
    code, _, err = invoke("-", stdin=text)
    assert code == 2
    assert message in err


def test_indicators_cli_unknown_exchange_exits_2() -> None:
    code, out, err = invoke("--exchange", "NYSE", str(SBIN))
    assert code == 2
    assert "unknown exchange 'NYSE'" in err
    assert out == []


def test_indicators_cli_missing_file_exits_2() -> None:
    code, _, err = invoke("/nonexistent/candles.csv")
    assert code == 2
    assert "No such file" in err


def test_indicators_cli_help_shows_example() -> None:
    result = runner.invoke(app, ["indicators", "--help"])
    assert result.exit_code == 0
    assert "Example: tickstream indicators" in result.stdout
