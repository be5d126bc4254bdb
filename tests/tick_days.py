"""One instrument-day of generated ticks for the historical-page tests (DuckDB and PostgreSQL)."""

from __future__ import annotations

from tickstream.model import NS_PER_SEC, Depth, DepthLevel, Mode, Status, Tick


def day_of_ticks(
    n: int, *, day_start: int, token: int, symbol: str, price: float, bid: float, ask: float
) -> list[Tick]:
    """``n`` ticks of one instrument: three per second, every mode and status, no depth or 5
    bid levels with 5 or 20 ask levels, ``orders`` None now and then."""
    out = []
    for i in range(n):
        depth = Depth(
            bids=tuple(DepthLevel(bid - k * 0.05, 10 + k, None if i % 5 else 2) for k in range(5)),
            asks=tuple(DepthLevel(ask + k * 0.05, 7 + i, 1) for k in range(5 + 15 * (i % 2))),
        )
        second = day_start + (i // 3) * NS_PER_SEC  # three ticks share a second
        out.append(
            Tick(
                exchange="NSE",
                token=token,
                symbol=symbol,
                source="kite",
                ts_exchange=second,
                ts_recv=second + (i % 4) * 1_000_000 + i,
                ltp=price + (i % 200) * 0.05,
                volume=100_000 + i,
                depth=None if i % 7 == 0 else depth,
                mode=(Mode.LTP, Mode.QUOTE, Mode.FULL)[i % 3],
                status=Status.STALE if i % 11 == 0 else Status.LIVE,
            )
        )
    return out
