"""Replay of stored days: any instruments, any speed, through the same path as live data.

* :mod:`~tickstream.replay.window`: for DuckDB (hot table + local Parquet archive), consecutive
  time windows, each ONE query for every instrument returning the rows already in merged order
  (the table has no per-instrument index, so per-instrument pages would scan it once each);
* :mod:`~tickstream.replay.source`: per-instrument async generators over the store's keyset
  pagination (PostgreSQL, any store without window reads);
* :mod:`~tickstream.replay.merge`: their k-way merge into one exchange-time order (a min-heap of
  page ends gives the horizon; runs up to it are merged by one stable sort), ties broken by
  ``(exchange, token)`` then the store's own ``(ts_exchange, ts_recv, tick_id)`` order;
* :mod:`~tickstream.replay.pacing`: due times from exchange-time differences divided by speed,
  anchored (no sleep drift); ``None`` speed = max;
* :mod:`~tickstream.replay.session`: :class:`Replay` with pause/resume/seek/speed and checkpoints;
* :mod:`~tickstream.replay.inject`: into the in-process pipeline or Kafka ``raw_ticks``.
"""

from __future__ import annotations

from tickstream.replay.checkpoint import Checkpoint, checkpoint_path, load_checkpoint
from tickstream.replay.inject import TickProducer, replay_into_kafka, replay_into_pipeline
from tickstream.replay.merge import PageMerger, merge_ticks
from tickstream.replay.pacing import Pacer, parse_speed
from tickstream.replay.session import Deliver, Replay, ReplaySpec, ReplaySummary
from tickstream.replay.source import (
    REPLAY_SOURCE,
    day_range,
    resolve_instruments,
    store_pages,
)

__all__ = [
    "REPLAY_SOURCE",
    "Checkpoint",
    "Deliver",
    "Pacer",
    "PageMerger",
    "Replay",
    "ReplaySpec",
    "ReplaySummary",
    "TickProducer",
    "checkpoint_path",
    "day_range",
    "load_checkpoint",
    "merge_ticks",
    "parse_speed",
    "replay_into_kafka",
    "replay_into_pipeline",
    "resolve_instruments",
    "store_pages",
]
