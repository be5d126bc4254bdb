"""No-loss accounting: every stage's counters in one document, and the invariants between them.

:func:`accounting` reads the per-stage counters of a running assembly (the dict of
:meth:`tickstream.assembly.Assembly.stats`: ``feed``, ``pipeline``, ``bus``, ``sinks``) and lays
them out stage by stage::

    feed      frames received; packets received, parsed, rejected by reason; batches dropped
    pipeline  ticks in, accepted, quarantined by reason, deduplicated, failover-dropped, published
    storage   ticks stored, quarantined ticks kept; candles emitted, revised, flagged, stored

Invariants (each ``True``/``False``; ``None`` when it cannot be judged yet):

``packets``            packets received = parsed + rejected (packet-level reasons; a truncated
                       frame or a wrong packet count is a frame-level reject on top)
``feed_to_pipeline``   ticks parsed = ticks into the pipeline (once drained and nothing dropped);
                       while running, parsed >= ticks in
``pipeline``           ticks in = accepted + quarantined + deduplicated + failover-dropped
``published``          ticks published on the bus = ticks accepted
``stored``             ticks stored = ticks accepted (once drained; while running, stored <=
                       accepted and the difference is in flight)
``quarantine_kept``    quarantined ticks written to the quarantine file = quarantined (drained)

``in_flight`` is accepted minus stored: zero after a clean shutdown. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

__all__ = ["FRAME_REJECTS", "accounting", "invariants_hold", "violations"]

FRAME_REJECTS: Final = frozenset({"truncated_frame", "bad_packet_count"})
_TICKS_TOPIC: Final = "market:ticks"
_QUARANTINE_TOPIC: Final = "market:quarantine"
_CANDLES_TOPIC: Final = "market:candles"


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _total(value: Any) -> int:
    if isinstance(value, Mapping):
        return sum(_int(v) for v in value.values())
    return _int(value)


def _feed(feed: Mapping[str, Any] | None) -> dict[str, Any]:
    feed = feed or {}
    rejected = {str(k): _int(v) for k, v in (feed.get("rejected") or {}).items()}
    packet_rejects = sum(n for reason, n in rejected.items() if reason not in FRAME_REJECTS)
    return {
        "frames": _int(feed.get("frames")),
        "packets": _int(feed.get("packets")),
        "parsed": _int(feed.get("parsed")),
        "rejected": rejected,
        "rejected_packets": packet_rejects,
        "dropped_batches": _int(feed.get("dropped_batches")),
        "gaps": _int(feed.get("gaps")),
        "reconnects": _int(feed.get("reconnects")),
    }


def _pipeline(p: Mapping[str, Any]) -> dict[str, Any]:
    published = p.get("published") or {}
    emitted = p.get("candles_emitted") or {}
    return {
        "ticks_in": _int(p.get("ticks_in")),
        "accepted": _int(p.get("accepted")),
        "quarantined": {str(k): _int(v) for k, v in (p.get("quarantined") or {}).items()},
        "deduplicated": _int(p.get("deduplicated")),
        "failover_dropped": _int(p.get("failover_dropped")),
        "published": _int(published.get(_TICKS_TOPIC)),
        "queue_depth": _int(p.get("queue_depth")),
        "candles_emitted": _total(emitted),
        "candles_revised": _int(p.get("candles_revised")),
        "candles_flagged": _int(p.get("candles_incomplete")),
        "candles_published": _int(published.get(_CANDLES_TOPIC)),
        "late_dropped": _int(p.get("late_dropped")),
    }


def _sink(sinks: Mapping[str, Any], topic: str, *, exclude: str = "") -> Mapping[str, Any]:
    for name, s in sinks.items():
        if (
            isinstance(s, Mapping)
            and s.get("topic") == topic
            and (not exclude or exclude not in name)
        ):
            return s
    return {}


def _written(sink: Mapping[str, Any]) -> int:
    """Items the store accepted (``written``; older sinks called it ``stored``)."""
    return _int(sink.get("written", sink.get("stored")))


def _storage(sinks: Mapping[str, Any]) -> dict[str, Any]:
    ticks = _sink(sinks, _TICKS_TOPIC, exclude="ring")
    quarantine = _sink(sinks, _QUARANTINE_TOPIC)
    candles = _sink(sinks, _CANDLES_TOPIC)
    return {
        "ticks_received": _int(ticks.get("received")),
        "ticks_stored": _written(ticks),
        "ticks_inserted": _int(ticks.get("inserted")),
        "ticks_spooled": _int(ticks.get("spool")),
        "write_retries": _int(ticks.get("retries")) + _int(candles.get("retries")),
        "quarantine_kept": _written(quarantine),
        "candles_stored": _written(candles),
    }


def _invariants(
    feed: dict[str, Any], pipe: dict[str, Any], store: dict[str, Any], *, drained: bool
) -> dict[str, bool | None]:
    has_feed = feed["frames"] > 0 or feed["packets"] > 0
    outcome = (
        pipe["accepted"]
        + sum(pipe["quarantined"].values())
        + pipe["deduplicated"]
        + pipe["failover_dropped"]
    )
    quarantined = sum(pipe["quarantined"].values())
    if drained:
        into_pipeline = feed["parsed"] == pipe["ticks_in"] and feed["dropped_batches"] == 0
        stored = store["ticks_stored"] == pipe["accepted"]
        kept: bool | None = store["quarantine_kept"] == quarantined
    else:
        into_pipeline = feed["parsed"] >= pipe["ticks_in"]
        stored = store["ticks_stored"] <= pipe["accepted"]
        kept = store["quarantine_kept"] <= quarantined
    return {
        "packets": feed["packets"] == feed["parsed"] + feed["rejected_packets"]
        if has_feed
        else None,
        "feed_to_pipeline": into_pipeline if has_feed else None,
        "pipeline": pipe["ticks_in"] == outcome,
        "published": pipe["published"] == pipe["accepted"],
        "stored": stored,
        "quarantine_kept": kept,
    }


def accounting(stats: Mapping[str, Any], *, drained: bool = False) -> dict[str, Any]:
    """The accounting document of one ``Assembly.stats()`` snapshot (see the module docstring).

    ``drained``: the assembly has stopped (or intake is quiet and every queue is empty), so
    in-flight counts must be zero and the equalities hold exactly.
    """
    feed = _feed(stats.get("feed"))
    pipe = _pipeline(stats.get("pipeline") or {})
    store = _storage(stats.get("sinks") or {})
    return {
        "feed": feed,
        "pipeline": pipe,
        "storage": store,
        "in_flight": pipe["accepted"] - store["ticks_stored"],
        "drained": drained,
        "invariants": _invariants(feed, pipe, store, drained=drained),
    }


def violations(document: Mapping[str, Any]) -> list[str]:
    """Names of the invariants that do not hold (``None``, not judged, is not a violation)."""
    return [name for name, ok in document["invariants"].items() if ok is False]


def invariants_hold(document: Mapping[str, Any]) -> bool:
    return not violations(document)
