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


async def test_feed_source_yields_tick_batches_and_skips_gap_events() -> None:
    from collections.abc import AsyncIterator

    from tickstream.model import Tick
    from tickstream.scaleout import feed_source

    a = Tick(exchange="NSE", token=1, symbol="A", source="kite", ts_exchange=1, ts_recv=2)
    b = Tick(exchange="NSE", token=2, symbol="B", source="kite", ts_exchange=3, ts_recv=4)

    class FakeFeed:
        async def events(self) -> AsyncIterator[object]:
            for event in ([a], object(), [], [b, a]):
                yield event

    got = [batch async for batch in feed_source(FakeFeed())]

    assert got == [[a], [b, a]]
