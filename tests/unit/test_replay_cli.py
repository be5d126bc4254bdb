"""``tickstream replay`` through Typer's CliRunner against a DuckDB store in a temp data dir."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from tickstream.calendar import ist_ns
from tickstream.cli import app
from tickstream.model import Instrument, Tick
from tickstream.storage.duckdb_store import DuckDBStore

DAY = dt.date(2024, 11, 21)
NS = 1_000_000_000
INSTRUMENTS = [
    Instrument(exchange="NSE", token=2885, symbol="RELIANCE"),
    Instrument(exchange="NSE", token=1594, symbol="INFY"),
]


def day_ticks() -> list[Tick]:
    """09:15:00 .. 10:14:50 IST, one tick per instrument every 10 s."""
    out = []
    for k in range(360):
        ts = ist_ns(DAY, 9, 15) + k * 10 * NS
        for n, inst in enumerate(INSTRUMENTS):
            out.append(
                Tick(
                    exchange=inst.exchange,
                    token=inst.token,
                    symbol=inst.symbol,
                    source="kite",
                    ts_exchange=ts + n,
                    ts_recv=ts + 5_000_000,
                    ltp=1000.0 + k * 0.05 + n,
                    volume=100 * k,
                )
            )
    return out


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    async def fill() -> None:
        store = DuckDBStore(tmp_path / "tickstream.duckdb")
        await store.open()
        await store.write_ticks(day_ticks())
        await store.upsert_instruments(INSTRUMENTS)
        await store.close()

    asyncio.run(fill())
    return tmp_path


def invoke(data_dir: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        app,
        ["replay", "--date", DAY.isoformat(), *args],
        env={"TICKSTREAM_DATA_DIR": str(data_dir)},
    )
    return result.exit_code, result.output


def replay_rows(data_dir: Path) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(data_dir / "replay.duckdb"), read_only=True)
    try:
        return con.execute(
            "SELECT token, source, count(*), min(ts_exchange), max(ts_exchange) FROM ticks"
            " GROUP BY 1, 2 ORDER BY 1"
        ).fetchall()
    finally:
        con.close()


def test_replay_cli_window_max_speed_writes_tagged_rows_and_summary(data_dir: Path) -> None:
    # Act
    code, out = invoke(
        data_dir, "--symbols", "RELIANCE,INFY", "--speed", "max", "--from", "09:20", "--to", "09:30"
    )
    # Assert: 09:20:00 .. 09:29:50 = 60 ticks per instrument
    assert code == 0, out
    assert re.search(r"120 ticks, 09:20:00 \.\. 09:29:50 IST", out)
    assert "market:ticks=120" in out
    assert "new tick rows: 120" in out
    lo, hi = ist_ns(DAY, 9, 20), ist_ns(DAY, 9, 29, 50)
    assert replay_rows(data_dir) == [
        (1594, "replay", 60, lo + 1, hi + 1),
        (2885, "replay", 60, lo, hi),
    ]


def test_replay_cli_second_run_adds_no_rows_and_checkpoint_is_done(data_dir: Path) -> None:
    # Act
    first = invoke(data_dir, "--symbols", "NSE:2885", "--speed", "max", "--id", "again")
    second = invoke(data_dir, "--symbols", "NSE:2885", "--speed", "max", "--id", "again")
    # Assert
    assert first[0] == second[0] == 0, first[1] + second[1]
    assert "new tick rows: 360" in first[1]
    assert "new tick rows: 0" in second[1]
    cp = json.loads((data_dir / "replay" / "again.json").read_text())
    assert cp["done"] is True
    assert cp["emitted"] == 360
    assert replay_rows(data_dir)[0][:3] == (2885, "replay", 360)


def test_replay_cli_resumes_unfinished_checkpoint(data_dir: Path) -> None:
    # Arrange: a replay of both instruments that was killed after the first 200 ticks
    async def killed() -> None:
        from tickstream.replay import Replay, ReplaySpec, checkpoint_path, day_range

        store = DuckDBStore(data_dir / "tickstream.duckdb")
        await store.open()
        insts = tuple(sorted(INSTRUMENTS, key=lambda i: i.token))
        path = checkpoint_path(data_dir, "k1")
        rep = Replay(store, ReplaySpec(insts, *day_range(DAY), batch_size=100), checkpoint=path)
        seen = 0

        async def deliver(batch: list[Tick]) -> None:
            nonlocal seen
            seen += len(batch)
            if seen == 300:  # killed while handing over the third batch: 200 were delivered
                await rep.checkpoint()
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            await rep.run(deliver)
        await store.close()

    asyncio.run(killed())
    # Act
    code, out = invoke(data_dir, "--symbols", "INFY,RELIANCE", "--speed", "max", "--id", "k1")
    # Assert: the resumed run replays exactly the remaining 520 ticks
    assert code == 0, out
    assert "(resumed)" in out
    assert "market:ticks=520" in out
    assert "new tick rows: 520" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--symbols", "RELIANCE", "--speed", "fast"], "invalid speed"),
        (["--symbols", "RELIANCE", "--from", "10:00", "--to", "09:00"], "empty time range"),
        (["--symbols", "RELIANCE", "--from", "9h"], "invalid time"),
        (["--symbols", "NOSUCH"], "unknown instruments: NOSUCH"),
    ],
)
def test_replay_cli_bad_arguments_exit_2_with_reason(
    data_dir: Path, args: list[str], message: str
) -> None:
    # Act
    code, out = invoke(data_dir, *args)
    # Assert
    assert code == 2
    assert message in out


def test_replay_cli_source_option_replays_only_that_feed(data_dir: Path) -> None:
    # Arrange: a second live feed recorded 3 ticks of RELIANCE
    async def add() -> None:
        store = DuckDBStore(data_dir / "tickstream.duckdb")
        await store.open()
        angel = [
            Tick(
                exchange="NSE", token=2885, symbol="RELIANCE", source="angelone",
                ts_exchange=ist_ns(DAY, 9, 16, s), ts_recv=ist_ns(DAY, 9, 16, s), ltp=999.0,
                seq=s + 1,
            )
            for s in range(3)
        ]  # fmt: skip
        await store.write_ticks(angel)
        await store.close()

    asyncio.run(add())
    # Act
    code, out = invoke(data_dir, "--symbols", "RELIANCE", "--speed", "max", "--source", "angelone")
    # Assert
    assert code == 0, out
    assert re.search(r": 3 ticks, 09:16:00 \.\. 09:16:02 IST", out)
    assert replay_rows(data_dir) == [(2885, "replay", 3, ist_ns(DAY, 9, 16), ist_ns(DAY, 9, 16, 2))]
