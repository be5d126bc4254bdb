"""Faults the simulator can inject, globally or per connection, at start or at run time.

A :class:`FaultPlan` says what is wrong; :class:`Faults` holds the global plan and per-connection
overrides (a connection's own plan, when set, replaces the global one for that connection).

=====================  =====================================================================
field                  effect
=====================  =====================================================================
close                  abort the TCP transport at once, no close frame (client sees 1006)
stall                  half-open: send nothing at all (no data, heartbeats or pongs, not even
                       protocol pongs: the socket stops being read) but keep it open
mute                   no market data; Kite heartbeats and Angel pongs continue
duplicate_every        send every Nth packet twice (1 = every packet)
seq_jump               Angel: add this much to every sequence number, growing each step
truncate_every         every Nth data message carries a truncated packet
unknown_every          every Nth data message carries an unknown-length (Kite) or
                       unknown-mode (Angel) packet
send_delay_s           slow server: sleep this long before every send
burst_factor /         market-wide: trade-arrival rate times ``burst_factor`` for
burst_seconds          ``burst_seconds`` of wall time (global plan only)
expire_tokens_at_ns    market-wide: access tokens expire at this exchange time (global only)
=====================  =====================================================================
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["FaultPlan", "Faults", "parse_fault"]


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """What is wrong with a connection (or with every connection); see the module docstring."""

    close: bool = False
    stall: bool = False
    mute: bool = False
    duplicate_every: int = 0
    seq_jump: int = 0
    truncate_every: int = 0
    unknown_every: int = 0
    send_delay_s: float = 0.0
    burst_factor: float = 1.0
    burst_seconds: float = 0.0
    expire_tokens_at_ns: int | None = None

    @property
    def active(self) -> bool:
        return self != FaultPlan()


_SIMPLE: dict[str, dict[str, Any]] = {
    "close": {"close": True},
    "stall": {"stall": True},
    "half-open": {"stall": True},
    "mute": {"mute": True},
    "duplicate": {"duplicate_every": 5},
    "seq-jump": {"seq_jump": 10},
    "truncate": {"truncate_every": 5},
    "unknown": {"unknown_every": 5},
    "slow": {"send_delay_s": 0.5},
    "burst": {"burst_factor": 10.0, "burst_seconds": 30.0},
}


def parse_fault(name: str) -> FaultPlan:
    """A plan from a command-line fault name (``mute``, ``close``, ``burst`` ...)."""
    try:
        return FaultPlan(**_SIMPLE[name])
    except KeyError:
        raise ValueError(f"unknown fault {name!r}; expected one of {', '.join(_SIMPLE)}") from None


class Faults:
    """The live fault state of a simulator: a global plan plus per-connection plans.

    ``on_change(conn_id, plan)`` (set by the server) applies one-shot effects such as ``close``
    immediately; ``close`` is not remembered after it has been applied.
    """

    def __init__(
        self,
        plan: FaultPlan | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._global = FaultPlan()
        self._per_conn: dict[str, FaultPlan] = {}
        self._burst_until = 0.0
        self._burst_factor = 1.0
        self._monotonic = monotonic
        self.on_change: Callable[[str | None, FaultPlan], None] | None = None
        if plan is not None:
            self.set(None, plan)

    def set(self, conn_id: str | None = None, plan: FaultPlan | None = None, **fields: Any) -> None:
        """Set the plan for one connection (or all when ``conn_id`` is None).

        Either pass a whole ``plan`` or change fields of the current one: ``set(None, mute=True)``.
        """
        base = self.plan_for(conn_id) if conn_id is not None else self._global
        new = dataclasses.replace(plan or base, **fields)
        if new.burst_seconds > 0 and new.burst_factor != 1.0:
            self._burst_until = self._monotonic() + new.burst_seconds
            self._burst_factor = new.burst_factor
        if self.on_change is not None and new.close:
            self.on_change(conn_id, new)
        new = dataclasses.replace(new, close=False)
        if conn_id is None:
            self._global = new
        else:
            self._per_conn[conn_id] = new

    def clear(self, conn_id: str | None = None) -> None:
        """Clear one connection's plan, or every plan (global and per connection) when None."""
        if conn_id is None:
            self._global = FaultPlan()
            self._per_conn.clear()
            self._burst_until = 0.0
        else:
            self._per_conn.pop(conn_id, None)

    def forget(self, conn_id: str) -> None:
        """Drop the plan of a connection that has gone."""
        self._per_conn.pop(conn_id, None)

    def plan_for(self, conn_id: str) -> FaultPlan:
        """The plan in force for a connection."""
        return self._per_conn.get(conn_id, self._global)

    @property
    def global_plan(self) -> FaultPlan:
        return self._global

    def tick_rate_scale(self) -> float:
        """The market's trade-rate multiplier now (``burst_factor`` while a burst lasts)."""
        if self._burst_until and self._monotonic() < self._burst_until:
            return self._burst_factor
        return 1.0

    def expire_at_ns(self) -> int | None:
        return self._global.expire_tokens_at_ns
