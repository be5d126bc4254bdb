"""Accounting: per-stage counters in one document, and the invariants between the stages."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

from tickstream.accounting import accounting, invariants_hold, violations


def _stats() -> dict[str, Any]:
    """A consistent snapshot of a drained assembly (shape of ``Assembly.stats()``)."""
    return {
        "feed": {
            "frames": 60,
            "packets": 1010,
            "parsed": 1000,
            "rejected": {"unknown_length": 7, "truncated_packet": 3, "bad_packet_count": 2},
            "dropped_batches": 0,
            "gaps": 1,
            "reconnects": 1,
        },
        "pipeline": {
            "ticks_in": 1000,
            "accepted": 900,
            "quarantined": {"ts_future": 40},
            "deduplicated": 55,
            "failover_dropped": 5,
            "published": {"market:ticks": 900, "market:candles": 30},
            "queue_depth": 0,
            "candles_emitted": {"1s": 20, "1m": 8},
            "candles_revised": 2,
            "candles_incomplete": 1,
        },
        "sinks": {
            "ticks->duckdb": {"topic": "market:ticks", "received": 900, "written": 900, "spool": 0},
            "ticks->ring": {"topic": "market:ticks", "received": 900, "written": 10, "spool": 0},
            "candles->duckdb": {"topic": "market:candles", "written": 30},
            "quarantine->file": {"topic": "market:quarantine", "written": 40},
        },
    }


def test_accounting_consistent_drained_snapshot_holds_every_invariant() -> None:
    # Arrange
    stats = _stats()
    # Act
    doc = accounting(stats, drained=True)
    # Assert
    assert doc["invariants"] == {
        "packets": True,
        "feed_to_pipeline": True,
        "pipeline": True,
        "published": True,
        "stored": True,
        "quarantine_kept": True,
    }
    assert doc["feed"]["rejected_packets"] == 10  # the frame-level reject is not a packet
    assert doc["storage"]["ticks_stored"] == 900  # the durable sink, not the ring
    assert doc["pipeline"]["candles_emitted"] == 28
    assert doc["in_flight"] == 0
    assert invariants_hold(doc)


def test_accounting_packet_neither_parsed_nor_rejected_violates_packets() -> None:
    # Arrange
    stats = _stats()
    stats["feed"]["packets"] += 1
    # Act / Assert
    assert violations(accounting(stats, drained=True)) == ["packets"]


def test_accounting_tick_vanishing_inside_pipeline_violates_pipeline() -> None:
    # Arrange
    stats = _stats()
    stats["pipeline"]["ticks_in"] += 1
    stats["feed"]["parsed"] += 1
    stats["feed"]["packets"] += 1
    # Act / Assert
    assert violations(accounting(stats, drained=True)) == ["pipeline"]


def test_accounting_drained_with_unstored_ticks_violates_stored() -> None:
    # Arrange
    stats = _stats()
    stats["sinks"]["ticks->duckdb"]["written"] = 899
    # Act
    drained = accounting(stats, drained=True)
    running = accounting(stats, drained=False)
    # Assert: one tick short is a loss once drained, in flight while running
    assert violations(drained) == ["stored"]
    assert violations(running) == []
    assert running["in_flight"] == 1


def test_accounting_more_stored_than_accepted_violates_even_while_running() -> None:
    # Arrange
    stats = _stats()
    stats["sinks"]["ticks->duckdb"]["written"] = 901
    # Act / Assert
    assert violations(accounting(stats, drained=False)) == ["stored"]


def test_accounting_dropped_batch_violates_feed_to_pipeline_when_drained() -> None:
    # Arrange
    stats = _stats()
    stats["feed"]["dropped_batches"] = 1
    # Act / Assert
    assert violations(accounting(stats, drained=True)) == ["feed_to_pipeline"]


def test_accounting_no_feed_leaves_feed_invariants_unjudged() -> None:
    # Arrange
    stats = copy.deepcopy(_stats())
    stats["feed"] = None
    # Act
    doc = accounting(stats, drained=False)
    # Assert
    assert doc["invariants"]["packets"] is None
    assert doc["invariants"]["feed_to_pipeline"] is None
    assert invariants_hold(doc)


def test_assembly_stats_after_clean_stop_accounts_for_every_tick(tmp_path: Path) -> None:
    # Arrange
    from tickstream.assembly import build_assembly
    from tickstream.config import load_settings

    # Explicit None: an integration session earlier in the run exports the services' URLs.
    settings = load_settings(
        None,
        data_dir=tmp_path,
        feed="sim",
        sim_tick_interval_ms=50,
        redis_url=None,
        database_url=None,
        kafka_bootstrap=None,
    )

    async def run() -> dict[str, Any]:
        asm = await build_assembly(settings, serve=False)
        await asm.runtime.start()
        try:
            await asyncio.sleep(1.0)
            live = asm.stats()["accounting"]
            assert violations(live) == []
        finally:
            await asm.runtime.stop()
        return accounting(asm.stats(), drained=True)

    # Act
    doc = asyncio.run(run())
    # Assert
    assert violations(doc) == []
    assert doc["feed"]["parsed"] > 0
    assert doc["storage"]["ticks_stored"] == doc["pipeline"]["accepted"] > 0
    assert doc["in_flight"] == 0
