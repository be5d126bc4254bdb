"""Scale-out pieces without services: CLI arguments, the feed adapter, producer failures."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from typer.testing import CliRunner

from tickstream.bus.kafka_bus import KafkaDeliveryError, KafkaProducer
from tickstream.cli import app
from tickstream.model import Tick
from tickstream.scaleout import feed_source


def test_ingest_cli_unknown_source_exits_2_naming_available_sources() -> None:
    result = CliRunner().invoke(app, ["ingest", "--source", "kite-live"])

    assert result.exit_code == 2
    assert "unknown source 'kite-live'; expected feed or sim" in result.output


def test_process_cli_help_lists_group_and_topics() -> None:
    result = CliRunner().invoke(app, ["process", "--help"], terminal_width=200)

    assert result.exit_code == 0
    for option in ("--group", "--source-topic", "--candles-topic", "--intervals", "--batch"):
        assert option in result.output


async def test_feed_source_yields_tick_batches_and_skips_gap_events() -> None:
    a = Tick(exchange="NSE", token=1, symbol="A", source="kite", ts_exchange=1, ts_recv=2)
    b = Tick(exchange="NSE", token=2, symbol="B", source="kite", ts_exchange=3, ts_recv=4)

    class FakeFeed:
        async def events(self) -> AsyncIterator[object]:
            for event in ([a], object(), [], [b, a]):
                yield event

    got = [batch async for batch in feed_source(FakeFeed())]

    assert got == [[a], [b, a]]


async def test_kafka_producer_undeliverable_message_is_retried_then_raises() -> None:
    # Nothing listens on port 1: every attempt times out locally after 300 ms.
    producer = KafkaProducer(
        "127.0.0.1:1", config={"delivery.timeout.ms": 300, "linger.ms": 0}, max_attempts=2
    )
    tick = Tick(exchange="NSE", token=1, symbol="A", source="sim", ts_exchange=1, ts_recv=2)
    producer.produce("nowhere", tick, tick.key)

    with pytest.raises(KafkaDeliveryError, match="after 2 attempts"):
        await producer.flush(timeout=10)

    assert producer.retried == 1
    assert producer.delivered == 0
    with pytest.raises(KafkaDeliveryError):  # stays failed: the error is never swallowed
        producer.produce("nowhere", tick, tick.key)
