"""Quarantined ticks are kept, never fixed or dropped: one file per IST day.

Files live under ``<data_dir>/quarantine/YYYY-MM-DD.msgpack`` (IST date of the tick's exchange
time). Each record is a 4-byte big-endian length and a msgpack ``Quarantined(reason, tick)``.
msgpack, not JSON, because the values that got a tick quarantined (NaN, inf) have no JSON form and
must be kept exactly as they arrived. :func:`read_quarantine` reads a file back.
"""

from __future__ import annotations

import asyncio
import struct
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import msgspec

from tickstream.calendar import ist_date
from tickstream.pipeline_runner import Quarantined

__all__ = ["QuarantineFile", "read_quarantine"]

_encoder = msgspec.msgpack.Encoder()
_LEN = struct.Struct(">I")


class QuarantineFile:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.written = 0

    def _append_sync(self, items: Sequence[Quarantined]) -> int:
        by_day: dict[str, list[bytes]] = defaultdict(list)
        for q in items:
            payload = _encoder.encode(q)
            by_day[ist_date(q.tick.ts_exchange).isoformat()].append(
                _LEN.pack(len(payload)) + payload
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        for day, lines in by_day.items():
            with (self.directory / f"{day}.msgpack").open("ab") as fh:
                fh.writelines(lines)
        self.written += len(items)
        return len(items)

    async def append(self, items: Sequence[Quarantined]) -> int:
        """Append items (off the event loop); returns how many were written."""
        if not items:
            return 0
        return await asyncio.to_thread(self._append_sync, list(items))


def read_quarantine(path: Path) -> list[Quarantined]:
    """Every quarantined tick of one day file."""
    decoder = msgspec.msgpack.Decoder(Quarantined)
    data, out, pos = path.read_bytes(), [], 0
    while pos < len(data):
        (n,) = _LEN.unpack_from(data, pos)
        out.append(decoder.decode(data[pos + 4 : pos + 4 + n]))
        pos += 4 + n
    return out
