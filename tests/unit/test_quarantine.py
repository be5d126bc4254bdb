from __future__ import annotations

import datetime as dt
from pathlib import Path

from tickstream.calendar import ist_ns
from tickstream.model import Tick
from tickstream.pipeline_runner import Quarantined
from tickstream.quarantine import QuarantineFile, read_quarantine


def tick(day: dt.date, ltp: float) -> Tick:
    ts = ist_ns(day, 10, 0)
    return Tick(
        exchange="NSE", token=1, symbol="X", source="sim", ts_exchange=ts, ts_recv=ts, ltp=ltp
    )


async def test_quarantine_file_keeps_every_tick_per_ist_day(tmp_path: Path) -> None:
    d1, d2 = dt.date(2026, 11, 19), dt.date(2026, 11, 20)
    items = [
        Quarantined("ltp_non_positive", tick(d1, -1.0)),
        Quarantined("non_finite", tick(d2, float("inf"))),
        Quarantined("high_below_low", tick(d2, 5.0)),
    ]
    qf = QuarantineFile(tmp_path / "q")
    assert await qf.append(items) == 3
    assert await qf.append([]) == 0
    assert sorted(p.name for p in (tmp_path / "q").iterdir()) == [
        "2026-11-19.msgpack",
        "2026-11-20.msgpack",
    ]
    assert read_quarantine(tmp_path / "q" / "2026-11-19.msgpack") == items[:1]
    back = read_quarantine(tmp_path / "q" / "2026-11-20.msgpack")
    assert [q.reason for q in back] == ["non_finite", "high_below_low"]
    assert back[0].tick.ltp == float("inf") and back[1].tick == items[2].tick
    assert qf.written == 3
