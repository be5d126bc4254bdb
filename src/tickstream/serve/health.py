"""``/health`` and ``/stats`` reports, assembled from the context's components at request time."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from tickstream.calendar import in_session
from tickstream.feeds import fastpath
from tickstream.model import NS_PER_SEC

if TYPE_CHECKING:
    from tickstream.serve.state import ServeState

__all__ = ["feed_connected", "health_report", "newest_data_ns", "stats_report"]

log = logging.getLogger(__name__)
_STORE_TIMEOUT_S = 2.0


def feed_connected(feed: dict[str, Any]) -> bool:
    """A feed snapshot counts as connected when it or one of its connections says so."""
    if str(feed.get("state", "")).lower() == "connected":
        return True
    conns = feed.get("connections") or ()
    return any(str(c.get("state", "")).lower() == "connected" for c in conns if isinstance(c, dict))


def newest_data_ns(s: ServeState, feeds: list[dict[str, Any]]) -> int | None:
    """The newest data arrival we know of: feeds' ``last_data_ns`` or the last fanned-out tick."""
    times = [f.get("last_data_ns") for f in feeds]
    times.append(s.hub.last_tick_ns)
    known = [t for t in times if isinstance(t, int)]
    return max(known) if known else None


async def _store_problem(s: ServeState) -> str | None:
    store = s.ctx.store
    if store is None:
        return None
    try:
        async with asyncio.timeout(_STORE_TIMEOUT_S):
            await store.search_instruments("__health__", limit=1)
    except Exception as exc:  # any failure means "not reachable"; the type is enough to report
        return f"store unreachable ({type(exc).__name__})"
    return None


def _bus_problem(s: ServeState) -> str | None:
    try:
        s.ctx.bus.stats()
    except Exception as exc:  # same: report, never raise from /health
        return f"bus unreachable ({type(exc).__name__})"
    return None


async def health_report(s: ServeState) -> dict[str, Any]:
    now = time.time_ns()
    settings = s.ctx.settings
    feeds = s.ctx.feed_health()
    connected = sum(1 for f in feeds if feed_connected(f))
    reasons = [r for r in (_bus_problem(s), await _store_problem(s)) if r]
    if feeds and not connected:
        reasons.append("no feed connected")
    market_open = settings.resolved_feed() == "sim" or in_session("NSE", now)
    newest = newest_data_ns(s, feeds)
    quiet_ns = int(settings.health_no_data_secs * NS_PER_SEC)
    warming_up = now - s.started_ns < quiet_ns
    if market_open and not warming_up and (newest is None or now - newest > quiet_ns):
        reasons.append(f"no ticks in the last {settings.health_no_data_secs:g} s")
    return {
        "status": "ok" if not reasons else "unhealthy",
        "reasons": reasons,
        "feeds": {"total": len(feeds), "connected": connected},
        "market_open": market_open,
        "last_data_ns": newest,
        "data_age_s": None if newest is None else round((now - newest) / NS_PER_SEC, 3),
        "time_ns": now,
    }


def stats_report(s: ServeState) -> dict[str, Any]:
    now = time.time_ns()
    feeds = s.ctx.feed_health()
    lag = s.hub.lag_ns
    store = s.ctx.store
    return {
        "time_ns": now,
        "uptime_s": round((now - s.started_ns) / NS_PER_SEC, 3),
        "runtime": s.ctx.stats(),
        "feeds": feeds,
        "bus": s.ctx.bus.stats(),
        "store": store.stats() if store is not None else None,
        "ws": s.hub.stats(),
        "stream_lag_ms": None if lag is None else round(lag / 1e6, 3),
        "decoders": {"native": fastpath.NATIVE},  # the C fast path built and in use
    }
