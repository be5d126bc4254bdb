"""The subscription registry: what a feed is subscribed to, sharded across connections.

Pure logic, no I/O. A broker client owns one :class:`SubscriptionRegistry`; every entry is a
broker-specific subscription key (Kite: the instrument token; Angel: ``(exchange type, token)``)
with its instrument and mode, placed on one shard (one WebSocket connection). Placement fills
shard 0 first, then 1, ... within :class:`Limits`, and an entry never moves once placed, so a
reconnect resubscribes exactly the same set on the same shard. A request that does not fit is
refused as a whole with a :class:`~tickstream.feeds.base.CapacityError` naming the numbers.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field

from tickstream.feeds.base import CapacityError
from tickstream.model import Instrument

__all__ = ["Entry", "Limits", "SubscriptionRegistry"]


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-broker limits: entries per connection, connections, and per-mode caps per connection."""

    per_connection: int
    connections: int
    mode_caps: Mapping[str, int] = field(default_factory=dict)

    @property
    def capacity(self) -> int:
        return self.per_connection * self.connections


@dataclass(frozen=True, slots=True)
class Entry:
    """One subscription: the instrument, its mode tag (``ltp``/``quote``/``full``/...) and shard."""

    instrument: Instrument
    mode: str
    shard: int


class SubscriptionRegistry:
    """Subscriptions by key, placed on shards within :class:`Limits`."""

    def __init__(self, limits: Limits, *, broker: str = "broker") -> None:
        self.limits = limits
        self.broker = broker
        self._entries: dict[Hashable, Entry] = {}
        self._counts = [0] * limits.connections
        self._mode_counts: list[dict[str, int]] = [{} for _ in range(limits.connections)]

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def get(self, key: Hashable) -> Entry | None:
        return self._entries.get(key)

    def shard_count(self, shard: int) -> int:
        return self._counts[shard]

    def used_shards(self) -> list[int]:
        return [i for i, n in enumerate(self._counts) if n]

    def shard_entries(self, shard: int) -> dict[Hashable, Entry]:
        """Every entry of ``shard`` (what a reconnect of that connection resubscribes)."""
        return {k: e for k, e in self._entries.items() if e.shard == shard}

    def add(
        self, items: Iterable[tuple[Hashable, Instrument]], mode: str
    ) -> dict[int, list[Hashable]]:
        """Subscribe ``items`` in ``mode`` (or move existing ones to it); shard -> changed keys.

        Atomic: when anything does not fit, nothing changes and CapacityError is raised.
        """
        wanted = dict(items)
        self._check_capacity(sum(1 for k in wanted if k not in self._entries))
        counts = list(self._counts)
        mode_counts = [dict(m) for m in self._mode_counts]
        placed: dict[Hashable, Entry] = {}
        for key, inst in wanted.items():
            old = self._entries.get(key)
            if old is not None:
                _dec(mode_counts[old.shard], old.mode)
                shard = old.shard
                if not self._fits_mode(mode_counts[shard], mode):
                    raise self._mode_error(mode)
            else:
                shard = self._place(counts, mode_counts, mode)
                counts[shard] += 1
            mode_counts[shard][mode] = mode_counts[shard].get(mode, 0) + 1
            placed[key] = Entry(inst, mode, shard)
        self._entries.update(placed)
        self._counts, self._mode_counts = counts, mode_counts
        changed: dict[int, list[Hashable]] = {}
        for key, entry in placed.items():
            changed.setdefault(entry.shard, []).append(key)
        return changed

    def remove(self, keys: Iterable[Hashable]) -> dict[int, list[tuple[Hashable, Entry]]]:
        """Unsubscribe ``keys`` (unknown ones ignored); shard -> removed (key, entry) pairs."""
        removed: dict[int, list[tuple[Hashable, Entry]]] = {}
        for key in keys:
            entry = self._entries.pop(key, None)
            if entry is None:
                continue
            self._counts[entry.shard] -= 1
            _dec(self._mode_counts[entry.shard], entry.mode)
            removed.setdefault(entry.shard, []).append((key, entry))
        return removed

    def _fits_mode(self, mode_counts: dict[str, int], mode: str) -> bool:
        cap = self.limits.mode_caps.get(mode)
        return cap is None or mode_counts.get(mode, 0) < cap

    def _check_capacity(self, new: int) -> None:
        lim, have = self.limits, len(self._entries)
        if have + new > lim.capacity:
            raise CapacityError(
                f"{self.broker}: {have} subscribed + {new} requested = {have + new} exceeds the "
                f"limit of {lim.capacity} ({lim.connections} connections x "
                f"{lim.per_connection} instruments)"
            )

    def _place(self, counts: list[int], mode_counts: list[dict[str, int]], mode: str) -> int:
        for shard, n in enumerate(counts):
            if n < self.limits.per_connection and self._fits_mode(mode_counts[shard], mode):
                return shard
        raise self._mode_error(mode)

    def _mode_error(self, mode: str) -> CapacityError:
        lim = self.limits
        cap = lim.mode_caps[mode]
        return CapacityError(
            f"{self.broker}: mode {mode} allows at most {cap} instruments per connection "
            f"({lim.connections} connections x {cap} = {cap * lim.connections})"
        )


def _dec(counts: dict[str, int], mode: str) -> None:
    counts[mode] -= 1
    if not counts[mode]:
        del counts[mode]
