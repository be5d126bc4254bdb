"""Replay checkpoints: per instrument, the store key of the last tick handed downstream.

A checkpoint is a small JSON file ``<data_dir>/replay/<replay_id>.json``::

    {"replay_id": "...", "start_ns": ..., "end_ns": ..., "instruments": ["NSE:2885", ...],
     "positions": {"NSE:2885": [ts_exchange, ts_recv, tick_id], ...}, "emitted": 1234,
     "done": false}

``positions`` are :class:`~tickstream.storage.base.TickKey` values, i.e. the stores' own keyset
cursor, so resuming asks each instrument's store query for the rows strictly after its position:
nothing handed downstream before the checkpoint is emitted again, nothing after it is skipped.
The file is replaced atomically (write to a temporary file, then ``os.replace``), so a replay killed
while writing leaves the previous checkpoint intact.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import msgspec

from tickstream.model import Tick
from tickstream.storage.base import TickKey, tick_id_of

__all__ = ["Checkpoint", "checkpoint_path", "load_checkpoint", "save_checkpoint", "tick_key"]

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_encoder = msgspec.msgpack.Encoder()


class Checkpoint(msgspec.Struct, kw_only=True):
    """Where a replay stands; see the module docstring."""

    replay_id: str
    start_ns: int
    end_ns: int
    instruments: list[str]
    positions: dict[str, tuple[int, int, int]] = msgspec.field(default_factory=dict)
    emitted: int = 0
    done: bool = False


def tick_key(tick: Tick) -> TickKey:
    """The store key of a tick (the same digest the stores compute when writing it)."""
    return TickKey(tick.ts_exchange, tick.ts_recv, tick_id_of(_encoder.encode(tick)))


def checkpoint_path(data_dir: Path, replay_id: str) -> Path:
    """``<data_dir>/replay/<replay_id>.json``; the id is a plain name (no path separators)."""
    if not _ID.match(replay_id):
        raise ValueError(f"invalid replay id {replay_id!r}: use letters, digits, '.', '_', '-'")
    return data_dir / "replay" / f"{replay_id}.json"


def load_checkpoint(path: Path) -> Checkpoint | None:
    """The checkpoint at ``path``, or None when there is none."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    return msgspec.json.decode(data, type=Checkpoint)


def save_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    """Write atomically (temporary file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_bytes(msgspec.json.encode(checkpoint))
    os.replace(tmp, path)
