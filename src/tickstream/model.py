"""Canonical market-data types shared by every feed, stage, bus and store.

Every struct is a frozen ``msgspec.Struct``: cheap to build in the hot path, hashable, and encoded
to JSON or msgpack without an intermediate dict. Fields a feed does not send are ``None``, never 0.

Prices are floats produced by *one* correctly rounded division of the exchange's integer price
(``245675 / 100``), so they print exactly as the exchange sent them (``2456.75``). Code that must do
arithmetic on prices and keep them on the tick grid uses :func:`to_ticks` / :func:`from_ticks`.

Timestamps are integer epoch nanoseconds, UTC. Conversion to IST happens only at the edges
(see :mod:`tickstream.calendar`).
"""

from __future__ import annotations

import enum
from typing import Any, Final, TypeVar

import msgspec

__all__ = [
    "NS_PER_SEC",
    "Candle",
    "Depth",
    "DepthLevel",
    "Exchange",
    "Indicators",
    "Instrument",
    "Interval",
    "Mode",
    "Status",
    "Tick",
    "decode_json",
    "decode_msgpack",
    "encode_json",
    "encode_msgpack",
    "from_ticks",
    "to_ticks",
]

NS_PER_SEC: Final = 1_000_000_000

T = TypeVar("T")


class Exchange(enum.StrEnum):
    """Exchange (or segment) a token belongs to. INDICES holds the NSE/BSE index values."""

    NSE = "NSE"
    BSE = "BSE"
    NFO = "NFO"
    BFO = "BFO"
    MCX = "MCX"
    CDS = "CDS"
    BCD = "BCD"
    NCO = "NCO"
    INDICES = "INDICES"


class Mode(enum.StrEnum):
    """Subscription depth: last price only, quote (best level + OHLC), or full (with depth)."""

    LTP = "ltp"
    QUOTE = "quote"
    FULL = "full"


class Status(enum.StrEnum):
    """LIVE, or STALE from a detected gap until the instrument's stream is whole again."""

    LIVE = "LIVE"
    STALE = "STALE"


class Interval(enum.StrEnum):
    """Candle intervals. ``seconds`` gives the length; buckets align to the session open."""

    S1 = "1s"
    M1 = "1m"
    M5 = "5m"
    M15 = "15m"
    H1 = "1h"
    D1 = "1d"

    @property
    def seconds(self) -> int:
        return _INTERVAL_SECONDS[self.value]

    @property
    def nanos(self) -> int:
        return _INTERVAL_SECONDS[self.value] * NS_PER_SEC

    @classmethod
    def parse(cls, text: str) -> Interval:
        """Parse ``"1m"`` (also ``"minute"``/``"60s"`` style aliases) or raise ValueError."""
        key = text.strip().lower()
        key = _INTERVAL_ALIASES.get(key, key)
        try:
            return cls(key)
        except ValueError:
            allowed = ", ".join(i.value for i in cls)
            raise ValueError(f"unknown interval {text!r}; expected one of {allowed}") from None


_INTERVAL_SECONDS: Final[dict[str, int]] = {
    "1s": 1,
    "1m": 60,
    "5m": 300,
    "15m": 900,
    "1h": 3600,
    "1d": 86400,
}
_INTERVAL_ALIASES: Final[dict[str, str]] = {
    "second": "1s",
    "1sec": "1s",
    "minute": "1m",
    "1min": "1m",
    "60s": "1m",
    "5minute": "5m",
    "5min": "5m",
    "15minute": "15m",
    "15min": "15m",
    "60minute": "1h",
    "60m": "1h",
    "hour": "1h",
    "day": "1d",
}


class DepthLevel(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One book level: price, quantity and number of orders (None where the feed omits it)."""

    price: float
    qty: int
    orders: int | None = None


class Depth(msgspec.Struct, frozen=True, gc=False):
    """Market depth, best first: 5 levels (Kite full, Angel SNAP_QUOTE) or 20 (Angel DEPTH)."""

    bids: tuple[DepthLevel, ...] = ()
    asks: tuple[DepthLevel, ...] = ()


class Tick(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """One canonical tick, whatever the source. See DESIGN.md for field meanings."""

    exchange: str
    token: int
    symbol: str
    source: str
    ts_exchange: int
    ts_recv: int
    seq: int | None = None
    ltp: float | None = None
    ltq: int | None = None
    atp: float | None = None
    volume: int | None = None
    bid: float | None = None
    ask: float | None = None
    bid_qty: int | None = None
    ask_qty: int | None = None
    total_buy_qty: int | None = None
    total_sell_qty: int | None = None
    open: float | None = None
    high: float | None = None
    low: float | None = None
    close: float | None = None
    change: float | None = None
    change_pct: float | None = None
    oi: int | None = None
    oi_day_high: int | None = None
    oi_day_low: int | None = None
    upper_circuit: float | None = None
    lower_circuit: float | None = None
    high_52w: float | None = None
    low_52w: float | None = None
    ts_last_trade: int | None = None
    depth: Depth | None = None
    mode: Mode = Mode.LTP
    status: Status = Status.LIVE

    @property
    def key(self) -> str:
        """Bus/partition key: ``exchange:token``."""
        return f"{self.exchange}:{self.token}"


class Indicators(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    """Streaming indicator values on a closed candle; None until the indicator is warmed up."""

    ema_9: float | None = None
    ema_21: float | None = None
    vwap: float | None = None
    rsi_14: float | None = None
    atr_14: float | None = None
    bb_upper: float | None = None
    bb_middle: float | None = None
    bb_lower: float | None = None
    supertrend: float | None = None
    supertrend_direction: int | None = None


class Candle(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """An OHLCV bar for one instrument and interval.

    ``start`` is the bucket start in exchange time (epoch ns, UTC), aligned to the IST session open.
    ``volume`` comes from deltas of the cumulative day volume, never from summed last quantities.
    ``partial`` marks the first bucket seen for an instrument (it may have started before we
    joined); ``incomplete`` marks a bucket touched by a sequence gap or disconnect; ``revision``
    counts late ticks that changed the bar after it was first emitted.
    """

    exchange: str
    token: int
    symbol: str
    interval: Interval
    start: int
    open: float
    high: float
    low: float
    close: float
    volume: int = 0
    oi: int | None = None
    ticks: int = 0
    partial: bool = False
    incomplete: bool = False
    revision: int = 0
    indicators: Indicators | None = None

    @property
    def key(self) -> str:
        return f"{self.exchange}:{self.token}"


class Instrument(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """An instrument cross-referenced across brokers.

    ``token`` is the exchange's own token (Kite's exchange_token = Angel's token for NSE/NFO/BSE).
    Indices differ between brokers, so their broker tokens are kept separately.
    ``expiry`` is an ISO date (YYYY-MM-DD) in IST.
    """

    exchange: str
    token: int
    symbol: str
    name: str | None = None
    instrument_type: str | None = None
    segment: str | None = None
    kite_token: int | None = None
    angel_token: str | None = None
    lot_size: int | None = None
    tick_size: float | None = None
    expiry: str | None = None
    strike: float | None = None
    isin: str | None = None

    @property
    def key(self) -> str:
        return f"{self.exchange}:{self.token}"


def to_ticks(price: float, tick_size: float) -> int:
    """Price as an integer number of ticks (exact for prices that are on the grid)."""
    return round(price / tick_size)


def from_ticks(n: int, tick_size: float) -> float:
    """Inverse of :func:`to_ticks`, correctly rounded through the tick's decimal scale."""
    # Divide by an integer scale instead of multiplying by a binary-inexact tick size, so that
    # 245675 ticks of 0.01 become exactly the float nearest to 2456.75.
    scale = round(1 / tick_size)
    if abs(scale * tick_size - 1.0) < 1e-12:
        return n / scale
    return round(n * tick_size, 10)


_json_encoder = msgspec.json.Encoder()
_msgpack_encoder = msgspec.msgpack.Encoder()


def encode_json(obj: Any) -> bytes:
    """Encode a struct (or list of structs) to JSON bytes."""
    return _json_encoder.encode(obj)


def encode_msgpack(obj: Any) -> bytes:
    """Encode a struct (or list of structs) to msgpack bytes."""
    return _msgpack_encoder.encode(obj)


def decode_json(data: bytes | str, type_: type[T]) -> T:
    """Decode JSON into ``type_`` with validation (a clear ValidationError on bad input)."""
    return msgspec.json.decode(data, type=type_)


def decode_msgpack(data: bytes, type_: type[T]) -> T:
    """Decode msgpack into ``type_`` with validation."""
    return msgspec.msgpack.decode(data, type=type_)
