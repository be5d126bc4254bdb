"""A recorded day as the simulator's price source, so it is served over the brokers' protocols.

The simulator's :class:`~tickstream.sim.market.Market` takes ``price_source``: per instrument key
(``"EXCHANGE:TOKEN"`` of the simulator's universe) a time-ordered series of ``(ts_ns, price)``
that drives the instrument's fair value (the last recorded value at or before each step; trades,
books, volume and OI are simulated around it). :func:`recorded_price_source` builds that mapping
from a store's ticks (their ``ltp``), read with the replay's keyset-paginated generators;
:func:`recorded_sim_config` adds a simulator clock that starts on the recorded day, so the Kite
and Angel WebSocket servers play the day back at ``speed``.

Stored instruments are matched to the universe by key, else by symbol (a Kite recording of
NIFTY 50 is ``INDICES:256265``; the simulator's NIFTY 50 is ``INDICES:1001``).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from typing import Any

from tickstream.model import Instrument
from tickstream.replay.source import store_pages
from tickstream.sim.clock import ClockMode, SimClock
from tickstream.sim.server import SimConfig
from tickstream.storage.base import TickStore

__all__ = ["PriceSeries", "recorded_price_source", "recorded_sim_config", "sim_key"]

log = logging.getLogger(__name__)
PriceSeries = dict[str, list[tuple[int, float]]]


def sim_key(inst: Instrument, universe: Sequence[Instrument]) -> str:
    """The universe key for a stored instrument: same key, else same symbol; KeyError if none."""
    keys = {u.key for u in universe}
    if inst.key in keys:
        return inst.key
    for u in universe:
        if u.symbol.upper() == inst.symbol.upper():
            return u.key
    raise KeyError(f"{inst.symbol} ({inst.key}) is not in the simulator's universe")


async def recorded_price_source(
    store: TickStore,
    instruments: Sequence[Instrument],
    start_ns: int,
    end_ns: int,
    *,
    universe: Sequence[Instrument],
    sources: Collection[str] | None = None,
    page_size: int = 10_000,
) -> PriceSeries:
    """``{universe key: [(ts_exchange, ltp), ...]}`` from the stored ticks in ``[start, end)``."""
    out: PriceSeries = {}
    for inst in instruments:
        key = sim_key(inst, universe)
        series: list[tuple[int, float]] = []
        pages = store_pages(
            store, inst.exchange, inst.token, start_ns, end_ns, page_size=page_size,
            sources=sources,
        )  # fmt: skip
        async for page in pages:
            series.extend((t.ts_exchange, t.ltp) for t in page if t.ltp is not None)
        if series:
            out[key] = series
        else:
            log.warning("no recorded prices for %s in the range", inst.symbol)
    return out


async def recorded_sim_config(
    store: TickStore,
    instruments: Sequence[Instrument],
    start_ns: int,
    end_ns: int,
    *,
    universe: Sequence[Instrument] | None = None,
    speed: float = 1.0,
    start_at_ns: int | None = None,
    **overrides: Any,
) -> SimConfig:
    """A :class:`SimConfig` whose market follows the recorded day from ``start_at_ns`` (default:
    the first recorded point) at ``speed`` exchange seconds per second. ``overrides`` are
    further SimConfig fields (a ``clock`` given there replaces the one built here)."""
    if universe is None:
        from tickstream.sim.universe import default_universe

        universe = default_universe()
    source = await recorded_price_source(store, instruments, start_ns, end_ns, universe=universe)
    if not source:
        raise ValueError("nothing recorded for these instruments in the range")
    first = min(series[0][0] for series in source.values())
    if "clock" not in overrides:
        overrides["clock"] = SimClock(ClockMode.FIXED, start_ns=start_at_ns or first, speed=speed)
    overrides.setdefault("instruments", list(universe))
    return SimConfig(price_source=source, **overrides)
