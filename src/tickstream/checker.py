"""End-to-end checker: what the broker (simulator) sent against what we stored. Pure, no I/O.

Tick identity
    Kite full packets carry the exchange time in whole seconds and no sequence number, so a tick
    is identified by the canonical fields the wire carries, *as decoded*: instrument, mode,
    exchange time, every price, quantity and depth field (:func:`tick_identity`). What the
    simulator emitted is first put through the same wire codec (:func:`wire_view`: encode the
    packet, decode the frame), so "what the broker sent" and "what we stored" are compared in the
    same terms. Receive time, source, symbol and status are ours, not the broker's: not compared.
    A packet without an exchange time (quote/LTP mode) decodes with ``ts_exchange == ts_recv``;
    its identity has no time.

Verdict on ticks (:func:`check_ticks`)
    ``missing``      emitted, delivered by the transport, and neither stored nor quarantined: loss.
    ``duplicated``   extra stored copies of one identity (each tick must be stored exactly once).
    ``altered``      an emitted tick missing while a stored tick with the same locator
                     (instrument, mode, exchange time, cumulative volume) differs in other fields.
    ``undelivered``  emitted on a connection listed as *lossy* (reset, stalled: the transport cut
                     it) *after* the last tick of that connection that reached the store. TCP is
                     ordered, so everything before a delivered tick was delivered; only the tail
                     in flight when the socket died can be lost by the transport, and the feed
                     reports that interval as a gap. A missing tick before a delivered one, or on
                     a connection that was not cut, is ``missing``.
    ``quarantined``  emitted and found in the quarantine (kept with a reason; not a loss).
    ``unexpected``   stored ticks that match no emission at all.
    Deliberate duplicates (the same packet twice, two connections) count once: identities are
    compared as sets, and stored multiplicity above one is ``duplicated``.

Verdict on candles (:func:`check_candles`)
    Stored candles against an independent resample of the stored ticks (bucket by
    :func:`tickstream.calendar.bucket_start`; OHLC in arrival order (exchange time, cumulative
    volume, receive time); volume from cumulative-volume deltas within an IST day, the first tick
    of an instrument being the baseline). Volume is compared where the resample knows the volume
    before the bucket.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Sequence
from typing import Any, Protocol

import msgspec

from tickstream.calendar import DAY_NS, IST_OFFSET_NS, bucket_start
from tickstream.feeds.kite import wire as kite_wire
from tickstream.model import Candle, Interval, Mode, Tick

__all__ = [
    "CandleReport",
    "CheckReport",
    "EmittedTick",
    "Sample",
    "TickReport",
    "check",
    "check_candles",
    "check_ticks",
    "emitted_ticks",
    "resample",
    "tick_identity",
    "wire_view",
]

TickIdentity = tuple[Hashable, ...]
CandleKey = tuple[str, int, str, int]  # exchange, token, interval, start


class EmissionLike(Protocol):
    """What the checker needs of one emission (``tickstream.sim.server.Emission``)."""

    @property
    def conn_id(self) -> str: ...
    @property
    def n(self) -> int: ...
    @property
    def mode(self) -> str: ...
    @property
    def tick(self) -> Tick: ...


class EmittedTick(msgspec.Struct, frozen=True):
    """One emission after the wire round trip: which connection, its order, its identity."""

    conn_id: str
    n: int
    tick: Tick


class Sample(msgspec.Struct, frozen=True):
    """A tick (or candle) named in a report, enough to find it again."""

    kind: str
    exchange: str
    token: int
    ts_exchange: int | None
    detail: str = ""


class TickReport(msgspec.Struct, frozen=True):
    emitted: int
    emitted_distinct: int
    stored: int
    missing: int
    duplicated: int
    altered: int
    undelivered: int
    quarantined: int
    unexpected: int
    samples: tuple[Sample, ...] = ()

    @property
    def ok(self) -> bool:
        return self.missing == 0 and self.duplicated == 0 and self.altered == 0


class CandleReport(msgspec.Struct, frozen=True):
    compared: int
    missing: int
    extra: int
    differing: int
    flagged: int  # stored candles marked partial or incomplete
    samples: tuple[Sample, ...] = ()

    @property
    def ok(self) -> bool:
        return self.missing == 0 and self.extra == 0 and self.differing == 0


class CheckReport(msgspec.Struct, frozen=True):
    ticks: TickReport
    candles: CandleReport | None = None

    @property
    def ok(self) -> bool:
        return self.ticks.ok and (self.candles is None or self.candles.ok)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = msgspec.to_builtins(self)
        out["ok"] = self.ok
        return out


# ---------------------------------------------------------------------------------- identity


def tick_identity(tick: Tick) -> TickIdentity:
    """The broker-side identity of a decoded tick (see the module docstring)."""
    t = tick
    ts = None if t.ts_exchange == t.ts_recv else t.ts_exchange
    return (
        t.exchange, t.token, str(t.mode), ts, t.seq, t.ltp, t.ltq, t.atp, t.volume, t.bid,
        t.ask, t.bid_qty, t.ask_qty, t.total_buy_qty, t.total_sell_qty, t.open, t.high, t.low,
        t.close, t.oi, t.oi_day_high, t.oi_day_low, t.ts_last_trade, t.depth,
    )  # fmt: skip


def _locator(identity: TickIdentity) -> TickIdentity:
    return (*identity[:4], identity[8])  # exchange, token, mode, ts_exchange, volume


def wire_view(tick: Tick, mode: str) -> Tick:
    """``tick`` as a Kite client decodes it after the simulator encoded it in ``mode``."""
    packet = kite_wire.encode_packet(tick, Mode(mode))
    result = kite_wire.decode_frame(kite_wire.encode_frame([packet]), ts_recv=0)
    if not result.ticks:
        reasons = ", ".join(r.reason for r in result.rejects)
        raise ValueError(f"emitted tick does not survive the wire round trip: {reasons}")
    return result.ticks[0]


def emitted_ticks(emissions: Iterable[EmissionLike], chunk: int = 500) -> list[EmittedTick]:
    """Emissions (Kite) put through the wire codec, in emission order (frames of ``chunk``
    packets; a frame that does not decode one tick per packet is redone packet by packet)."""
    items = sorted(emissions, key=lambda e: e.n)
    out: list[EmittedTick] = []
    for i in range(0, len(items), chunk):
        part = items[i : i + chunk]
        frame = kite_wire.encode_frame(
            [kite_wire.encode_packet(e.tick, Mode(e.mode)) for e in part]
        )
        ticks = kite_wire.decode_frame(frame, ts_recv=0).ticks
        if len(ticks) != len(part):
            ticks = [wire_view(e.tick, e.mode) for e in part]
        out.extend(EmittedTick(e.conn_id, e.n, t) for e, t in zip(part, ticks, strict=True))
    return out


# ---------------------------------------------------------------------------------- ticks


def _sample(kind: str, tick: Tick, detail: str = "") -> Sample:
    ts = None if tick.ts_exchange == tick.ts_recv else tick.ts_exchange
    return Sample(kind, tick.exchange, tick.token, ts, detail)


def _delivered_tail(emitted: Sequence[EmittedTick], delivered: set[TickIdentity]) -> dict[str, int]:
    """Per connection, the emission number of its last emission that reached us."""
    last: dict[str, int] = {}
    for e in emitted:
        if tick_identity(e.tick) in delivered:
            last[e.conn_id] = max(last.get(e.conn_id, -1), e.n)
    return last


def check_ticks(
    emitted: Sequence[EmittedTick],
    stored: Iterable[Tick],
    *,
    quarantined: Iterable[Tick] = (),
    lossy_connections: Iterable[str] = (),
    sample_size: int = 5,
) -> TickReport:
    """The verdict on ticks; see the module docstring for each count."""
    stored_ids, stored_by_id = _count_stored(stored)
    quarantined_ids = {tick_identity(t) for t in quarantined}
    lossy = set(lossy_connections)
    reached = set(stored_ids) | quarantined_ids
    tail = _delivered_tail(emitted, reached)
    first_emission = _first_emissions(emitted)
    emitted_ids = set(first_emission)
    unexpected_ids = set(stored_ids) - emitted_ids
    by_locator = {_locator(i): i for i in unexpected_ids}
    samples: list[Sample] = []
    counts = Counter[str]()
    absent = sorted(emitted_ids - set(stored_ids), key=lambda i: first_emission[i].n)
    for ident in absent:
        kind = _classify_absent(ident, first_emission, quarantined_ids, by_locator, lossy, tail)
        counts[kind] += 1
        if kind == "altered":
            unexpected_ids.discard(by_locator.pop(_locator(ident)))
        if kind in ("missing", "altered") and len(samples) < sample_size:
            samples.append(_sample(kind, first_emission[ident].tick))
    duplicated = 0
    for ident, n in stored_ids.items():
        if n > 1:
            duplicated += n - 1
            _add(samples, 2 * sample_size, _sample("duplicated", stored_by_id[ident], f"{n} rows"))
    return TickReport(
        emitted=len(emitted), emitted_distinct=len(emitted_ids), stored=sum(stored_ids.values()),
        missing=counts["missing"], duplicated=duplicated, altered=counts["altered"],
        undelivered=counts["undelivered"], quarantined=counts["quarantined"],
        unexpected=len(unexpected_ids), samples=tuple(samples),
    )  # fmt: skip


def _first_emissions(emitted: Sequence[EmittedTick]) -> dict[TickIdentity, EmittedTick]:
    first: dict[TickIdentity, EmittedTick] = {}
    for e in emitted:
        first.setdefault(tick_identity(e.tick), e)
    return first


def _count_stored(stored: Iterable[Tick]) -> tuple[Counter[TickIdentity], dict[TickIdentity, Tick]]:
    counts: Counter[TickIdentity] = Counter()
    first: dict[TickIdentity, Tick] = {}
    for tick in stored:
        ident = tick_identity(tick)
        counts[ident] += 1
        first.setdefault(ident, tick)
    return counts, first


def _classify_absent(
    ident: TickIdentity,
    first_emission: dict[TickIdentity, EmittedTick],
    quarantined: set[TickIdentity],
    by_locator: dict[TickIdentity, TickIdentity],
    lossy: set[str],
    tail: dict[str, int],
) -> str:
    """Why an emitted identity is not in the store."""
    if ident in quarantined:
        return "quarantined"
    if _locator(ident) in by_locator:
        return "altered"
    e = first_emission[ident]
    if e.conn_id in lossy and e.n > tail.get(e.conn_id, -1):
        return "undelivered"
    return "missing"


# ---------------------------------------------------------------------------------- candles


class _Bar:
    __slots__ = ("close", "high", "low", "open", "ticks", "volume", "volume_known")

    def __init__(self, ltp: float, volume_known: bool) -> None:
        self.open = self.high = self.low = self.close = ltp
        self.ticks = 0
        self.volume = 0
        self.volume_known = volume_known

    def add(self, ltp: float, dv: int) -> None:
        self.high = max(self.high, ltp)
        self.low = min(self.low, ltp)
        self.close = ltp
        self.volume += dv
        self.ticks += 1


def _volume_deltas(ticks: Sequence[Tick]) -> list[tuple[int, bool]]:
    """Per tick (arrival order, one instrument): its volume delta and whether one was known."""
    out: list[tuple[int, bool]] = []
    day = prev = None
    for t in ticks:
        if t.volume is None:
            out.append((0, prev is not None))
            continue
        tday = (t.ts_exchange + IST_OFFSET_NS) // DAY_NS
        known = prev is not None and tday == day
        dv = t.volume - prev if known and prev is not None and t.volume >= prev else 0
        out.append((dv, known))
        day, prev = tday, t.volume
    return out


def _arrival(t: Tick) -> tuple[int, int, int]:
    """Arrival order of one instrument's stored ticks: exchange time, then cumulative volume
    (it only grows within a second), then receive time (wall clock: a clock step can reorder
    ticks of one second by it alone)."""
    return (t.ts_exchange, t.volume or 0, t.ts_recv)


def resample(ticks: Iterable[Tick], intervals: Sequence[Interval]) -> dict[CandleKey, _Bar]:
    """Independent candles of stored ticks (per instrument in arrival order, see ``_arrival``)."""
    by_inst: dict[tuple[str, int], list[Tick]] = defaultdict(list)
    for t in ticks:
        by_inst[(t.exchange, t.token)].append(t)
    bars: dict[CandleKey, _Bar] = {}
    for (exchange, token), series in by_inst.items():
        series.sort(key=_arrival)
        for t, (dv, known) in zip(series, _volume_deltas(series), strict=True):
            if not t.ltp:
                continue
            for iv in intervals:
                start = bucket_start(exchange, t.ts_exchange, iv.nanos)
                if start is None:
                    continue
                key = (exchange, token, iv.value, start)
                bar = bars.get(key)
                if bar is None:
                    bar = bars[key] = _Bar(t.ltp, known)
                bar.add(t.ltp, dv)
    return bars


def _differs(bar: _Bar, c: Candle) -> str | None:
    ohlc = (bar.open, bar.high, bar.low, bar.close, bar.ticks)
    if ohlc != (c.open, c.high, c.low, c.close, c.ticks):
        return f"resample ohlc/ticks {ohlc} != stored {(c.open, c.high, c.low, c.close, c.ticks)}"
    if bar.volume_known and bar.volume != c.volume:
        return f"resample volume {bar.volume} != stored {c.volume}"
    return None


def _keyed(candles: Iterable[Candle], wanted: dict[str, int], lo: int) -> dict[CandleKey, Candle]:
    return {
        (c.exchange, c.token, str(c.interval), c.start): c
        for c in candles
        if str(c.interval) in wanted and c.start >= lo
    }


def check_candles(
    stored_ticks: Iterable[Tick],
    candles: Iterable[Candle],
    intervals: Sequence[Interval],
    *,
    since_ns: int | None = None,
    until_ns: int | None = None,
    sample_size: int = 5,
) -> CandleReport:
    """Stored candles (latest revision) against :func:`resample` of the stored ticks.

    Only buckets starting at or after ``since_ns`` are compared; a resampled bucket without a
    stored candle counts as missing only when it ends by ``until_ns`` (later ones are still open).
    """
    lo = since_ns if since_ns is not None else -(2**63)
    hi = until_ns if until_ns is not None else 2**63
    bars = {k: b for k, b in resample(stored_ticks, intervals).items() if k[3] >= lo}
    wanted = {iv.value: iv.nanos for iv in intervals}
    stored = _keyed(candles, wanted, lo)
    samples: list[Sample] = []
    counts = Counter[str]()
    for key, bar in bars.items():
        c = stored.get(key)
        if c is None:
            if key[3] + wanted[key[2]] <= hi:
                counts["missing"] += 1
                _add(samples, sample_size, Sample("candle_missing", key[0], key[1], key[3], key[2]))
            continue
        counts["compared"] += 1
        detail = _differs(bar, c)
        if detail is not None:
            counts["differing"] += 1
            _add(samples, sample_size, Sample("candle_differs", key[0], key[1], key[3], detail))
    extra = [k for k in stored if k not in bars]
    for key in extra:
        _add(samples, sample_size, Sample("candle_extra", key[0], key[1], key[3], key[2]))
    flagged = sum(1 for c in stored.values() if c.partial or c.incomplete)
    return CandleReport(
        compared=counts["compared"], missing=counts["missing"], extra=len(extra),
        differing=counts["differing"], flagged=flagged, samples=tuple(samples),
    )  # fmt: skip


def _add(samples: list[Sample], limit: int, sample: Sample) -> None:
    if len(samples) < limit:
        samples.append(sample)


def check(
    emitted: Sequence[EmittedTick],
    stored: Sequence[Tick],
    candles: Iterable[Candle] | None = None,
    *,
    intervals: Sequence[Interval] = (Interval.S1, Interval.M1, Interval.M5),
    quarantined: Iterable[Tick] = (),
    lossy_connections: Iterable[str] = (),
    until_ns: int | None = None,
) -> CheckReport:
    """Ticks and (when given) candles in one report."""
    ticks = check_ticks(
        emitted, stored, quarantined=quarantined, lossy_connections=lossy_connections
    )
    if candles is None:
        return CheckReport(ticks)
    return CheckReport(ticks, check_candles(stored, candles, intervals, until_ns=until_ns))
