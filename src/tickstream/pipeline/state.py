"""MarketDataStore: the latest tick per instrument, daily reference data, accumulated volume.

Keys are ``(exchange, token)``. Every method is synchronous and contains no ``await``, so under
asyncio each call is atomic by construction: a task cannot observe a half-done update. Callers
that compose several calls with an ``await`` in between (read, await something, write) hold
:attr:`MarketDataStore.lock` (an :class:`asyncio.Lock`) around the sequence; :meth:`add_volume`
is the ready-made locked read-modify-write for async callers.

:meth:`update_tick` keeps the *newest* tick by ``ts_exchange``: a late tick does not overwrite a
newer one (ties go to the later arrival).
"""

from __future__ import annotations

import asyncio

import msgspec

from tickstream.model import Tick

__all__ = ["Historical", "MarketDataStore"]

InstrumentKey = tuple[str, int]


class Historical(msgspec.Struct, frozen=True, kw_only=True):
    """Daily reference values for one instrument (None where unknown)."""

    prev_close: float | None = None
    prev_high: float | None = None
    adv_20d: float | None = None


class MarketDataStore:
    """In-memory latest state of the market; cheap enough to update on every tick."""

    __slots__ = ("_hist", "_ticks", "_volume", "lock")

    def __init__(self) -> None:
        self._ticks: dict[InstrumentKey, Tick] = {}
        self._hist: dict[InstrumentKey, Historical] = {}
        self._volume: dict[InstrumentKey, int] = {}
        self.lock = asyncio.Lock()

    def __len__(self) -> int:
        return len(self._ticks)

    def update_tick(self, tick: Tick) -> bool:
        """Store ``tick`` unless a newer one is held; True when it was stored."""
        key = (tick.exchange, tick.token)
        ticks = self._ticks
        held = ticks.get(key)
        if held is not None and tick.ts_exchange < held.ts_exchange:
            return False
        ticks[key] = tick
        return True

    def get_tick(self, exchange: str, token: int) -> Tick | None:
        return self._ticks.get((exchange, token))

    def get_all_ticks(self) -> dict[InstrumentKey, Tick]:
        """A copy of the latest tick of every instrument."""
        return dict(self._ticks)

    def set_historical(self, exchange: str, token: int, historical: Historical) -> None:
        self._hist[(exchange, token)] = historical

    def get_historical(self, exchange: str, token: int) -> Historical | None:
        return self._hist.get((exchange, token))

    def accumulate_volume(self, exchange: str, token: int, qty: int) -> int:
        """Add ``qty`` to the instrument's accumulated volume; returns the new total."""
        key = (exchange, token)
        total = self._volume.get(key, 0) + qty
        self._volume[key] = total
        return total

    def get_accumulated_volume(self, exchange: str, token: int) -> int:
        return self._volume.get((exchange, token), 0)

    def reset_accumulated_volume(self, exchange: str, token: int) -> None:
        self._volume.pop((exchange, token), None)

    async def add_volume(self, exchange: str, token: int, qty: int) -> int:
        """:meth:`accumulate_volume` under :attr:`lock`, for tasks that also hold it elsewhere."""
        async with self.lock:
            return self.accumulate_volume(exchange, token, qty)
