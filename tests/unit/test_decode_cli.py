"""``tickstream decode`` through the CLI runner, on the real Kite capture converted to hex."""

from __future__ import annotations

import base64
from pathlib import Path

import msgspec
from typer.testing import CliRunner

from tickstream.cli import app
from tickstream.feeds.angelone import wire as angel
from tickstream.feeds.kite import wire as kite
from tickstream.model import NS_PER_SEC, Depth, DepthLevel, Mode, Tick

DATA = Path("/work/shared/data/websocket/kite")
runner = CliRunner()


def _kite_hex(name: str) -> str:
    packet = base64.b64decode((DATA / f"ticker_{name}.packet").read_text())
    return kite.encode_frame([packet]).hex()


def _ticks(stdout: str) -> list[Tick]:
    return [msgspec.json.decode(line, type=Tick) for line in stdout.splitlines()]


def test_decode_cli_real_kite_capture_prints_json_ticks(tmp_path: Path) -> None:
    # Arrange
    frames = tmp_path / "frames.hex"
    frames.write_text(f"# captured\n\n{_kite_hex('full')}\n00\n{_kite_hex('quote')}\n")
    # Act
    result = runner.invoke(app, ["decode", "--broker", "kite", "--ts-recv", "7", str(frames)])
    # Assert
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    full, quote = _ticks(result.stdout)
    assert (full.exchange, full.token, full.mode, full.ltp, full.volume) == (
        "NSE", 1594, Mode.FULL, 1573.7, 1192471,
    )  # fmt: skip
    assert full.ts_exchange == 1625461887 * NS_PER_SEC and full.ts_recv == 7
    assert full.depth is not None and full.depth.asks[4] == DepthLevel(1573.95, 724, 5)
    assert (quote.mode, quote.ltp, quote.atp, quote.ts_exchange) == (
        Mode.QUOTE,
        1573.15,
        1570.33,
        7,
    )


def test_decode_cli_reject_and_bad_hex_report_line_numbers_exit_1() -> None:
    # Arrange: line 1 good, line 2 not hex, line 3 a frame with an unknown-length packet.
    text = f"{_kite_hex('quote')}\nnot-hex\n0001000300aabb\n"
    # Act
    result = runner.invoke(app, ["decode", "--broker", "kite", "--ts-recv", "1", "-"], input=text)
    # Assert
    assert result.exit_code == 1
    assert [t.ltp for t in _ticks(result.stdout)] == [1573.15]
    assert result.stderr.splitlines() == [
        "line 2: not_hex: 'not-hex'",
        "line 3: unknown_length: packet 1: length 3",
    ]


def test_decode_cli_angelone_packet_decodes() -> None:
    # Arrange
    tick = Tick(
        exchange="NSE", token=3045, symbol="3045", source="angelone",
        ts_exchange=1_700_000_000_123_000_000, ts_recv=9, ts_last_trade=None,
        depth=Depth(bids=(DepthLevel(612.3, 5, 1),), asks=()), bid=612.3, bid_qty=5,
        mode=Mode.FULL,
    )  # fmt: skip
    packet = angel.encode_packet(tick, angel.AngelMode.DEPTH, exchange_type=1, token="3045")
    # Act
    result = runner.invoke(
        app, ["decode", "--broker", "angelone", "--ts-recv", "9", "-"], input=packet.hex() + "\n"
    )
    # Assert
    assert result.exit_code == 0, result.stderr
    assert _ticks(result.stdout) == [tick]


def test_decode_cli_missing_file_exits_2() -> None:
    result = runner.invoke(app, ["decode", "--broker", "kite", "/nonexistent/frames.hex"])
    assert result.exit_code == 2
    assert "cannot read /nonexistent/frames.hex" in result.stderr


def test_decode_cli_help_shows_example() -> None:
    result = runner.invoke(app, ["decode", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "tickstream decode --broker kite" in result.stdout
    assert "one JSON line per tick" in result.stdout
