"""The simulated market: deterministic, seeded price paths, trades, books and open interest.

Pure: no I/O, no asyncio, no wall clock. ``Market.step(now_ns)`` advances every instrument to
``now_ns`` and returns FULL-mode canonical ticks (source ``"sim"``) for the instruments that traded
since the previous step. The same seed and the same sequence of ``step`` times give the same ticks.

Model, per instrument, all prices integer ticks internally (one division makes the float):

* fair value: geometric random walk, ~1.2 %/day for stocks and ~0.9 %/day for indices, scaled per
  second of exchange time; or a recorded series (``price_source``, shifted by whole days onto the
  start date) that drives the fair value directly (its previous close is then the series' first
  value from the 09:15 open on, since pre-open values jump). Options: Black-Scholes on the
  underlying's fair value (14 % vol; an expiry already past at ``start_ns`` counts as 7 days away)
  so they move with the underlying; they carry open interest (with day high/low) that drifts
  with trading.
* trades: Poisson arrivals per step with a U-shaped intraday intensity (heavier at open and
  close) times ``tick_rate_scale``; an instrument that traded emits one tick per step, its last
  trade at the fair value rounded to the grid and clamped inside the circuit limits (±20 % of the
  previous close for equities, 1 tick .. close + 10 % of the underlying for options; none for
  indices). Cumulative volume, ATP from turnover, day OHLC, a fresh 5-level book around the ltp
  (best bid <= ltp <= best ask, bid < ask) and total buy/sell quantities follow.
* indices: value ticks about twice a second, no volume, book or circuits.
* a new IST date in ``step`` rolls the day: previous close = last price, OHLC and volume reset.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np

from tickstream.calendar import NS, ist_date, ist_ns, session_for
from tickstream.model import Depth, DepthLevel, Instrument, Tick
from tickstream.sim._book import (
    F64,
    I64,
    BookPatterns,
    bs_price,
    first_in_session,
    intraday_activity,
    series_value,
)
from tickstream.sim._tickpack import TickPacker
from tickstream.sim._ticks import (
    Columns,
    build_step_ticks,
    kite_full_packets,
    kite_tokens,
)

__all__ = ["Market"]

SOURCE: Final = "sim"
_DAY_S: Final = 22_500.0  # seconds in the NSE continuous session
_KIND_INDEX, _KIND_EQ, _KIND_OPT, _KIND_FUT = 0, 1, 2, 3
_DAILY_VOL: Final = {_KIND_INDEX: 0.009, _KIND_EQ: 0.012, _KIND_FUT: 0.010, _KIND_OPT: 0.0}
_RATE: Final = {
    _KIND_INDEX: (2.0, 2.0),
    _KIND_EQ: (2.0, 12.0),
    _KIND_FUT: (4.0, 10.0),
    _KIND_OPT: (1.0, 8.0),
}  # trades per second, uniform range
_OPTION_VOL: Final = 0.14
_UNDERLYING: Final = {
    "NIFTY": "NIFTY 50",
    "BANKNIFTY": "NIFTY BANK",
    "FINNIFTY": "NIFTY FIN SERVICE",
}
_EQ_BAND: Final = 0.20
_YEAR_S: Final = 365.0 * 86_400


def _kind(inst: Instrument) -> int:
    if inst.exchange == "INDICES" or inst.instrument_type == "INDEX":
        return _KIND_INDEX
    if inst.instrument_type in ("CE", "PE"):
        return _KIND_OPT
    if inst.instrument_type == "FUT":
        return _KIND_FUT
    return _KIND_EQ


def _plausible_level(inst: Instrument) -> float:
    return 100.0 + (inst.token * 2654435761 % 2900)


class Market:
    """A universe of simulated instruments; see the module docstring."""

    def __init__(
        self,
        instruments: Sequence[Instrument],
        *,
        seed: int = 0,
        start_ns: int,
        reference_prices: Mapping[str, float] | None = None,
        price_source: Mapping[str, Sequence[tuple[int, float]]] | None = None,
    ) -> None:
        if not instruments:
            raise ValueError("a market needs at least one instrument")
        self.instruments: list[Instrument] = list(instruments)
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._index = {(i.exchange, i.token): n for n, i in enumerate(self.instruments)}
        if len(self._index) != len(self.instruments):
            raise ValueError("duplicate (exchange, token) in the instrument list")
        self._last_ns = start_ns
        self._day = ist_date(start_ns)
        self._init_static()
        self._init_sources(price_source or {}, start_ns)
        self._init_prices(reference_prices or {}, start_ns)
        self._init_day(start_ns)

    # ----------------------------------------------------------------------------- construction
    def _init_static(self) -> None:
        insts = self.instruments
        n = len(insts)
        self._kinds = np.array([_kind(i) for i in insts], dtype=np.int64)
        self._scale = np.array([round(1 / (i.tick_size or 0.05)) for i in insts], dtype=np.int64)
        self._lot = np.array([max(i.lot_size or 1, 1) for i in insts], dtype=np.int64)
        lo_hi = np.array([_RATE[k] for k in self._kinds.tolist()])
        self._rate = lo_hi[:, 0] + (lo_hi[:, 1] - lo_hi[:, 0]) * self._rng.random(n)
        self._sigma = np.array([_DAILY_VOL[k] for k in self._kinds.tolist()]) / math.sqrt(_DAY_S)
        self._is_index = self._kinds == _KIND_INDEX
        self._is_opt = self._kinds == _KIND_OPT
        self._opt_idx = np.flatnonzero(self._is_opt)
        self._kite_itok, self._kite_div = kite_tokens(insts, self._is_index)
        self._last_step: tuple[list[Tick], I64, int] | None = None
        self._packer: TickPacker | None = None
        by_symbol = {i.symbol: n for n, i in enumerate(insts)}
        self._underlying: dict[int, int] = {}
        for n_ in self._opt_idx.tolist():
            name = insts[n_].name or ""
            und = by_symbol.get(_UNDERLYING.get(name, name))
            if und is None:
                raise ValueError(f"option {insts[n_].symbol}: underlying {name!r} not in universe")
            self._underlying[n_] = und

    def _init_sources(self, sources: Mapping[str, Sequence[tuple[int, float]]], start: int) -> None:
        self._sources: dict[int, tuple[list[int], list[float]]] = {}
        keys = {i.key: n for n, i in enumerate(self.instruments)}
        for key, series in sources.items():
            if key not in keys:
                raise KeyError(f"price_source for {key!r}: no such instrument in the universe")
            if not series:
                continue
            shift_days = (ist_date(start) - ist_date(series[0][0])).days
            shift = shift_days * 86_400 * NS
            self._sources[keys[key]] = ([t + shift for t, _ in series], [p for _, p in series])

    def _init_prices(self, refs: Mapping[str, float], start_ns: int) -> None:
        n = len(self.instruments)
        fair = np.zeros(n)
        for i, inst in enumerate(self.instruments):
            src = self._sources.get(i)
            fair[i] = (
                first_in_session(*src) if src else refs.get(inst.key) or _plausible_level(inst)
            )
        self._fair = fair
        self._years = np.full(n, 7 / 365)
        for i in self._opt_idx.tolist():
            exp = self.instruments[i].expiry
            if exp:
                left = (ist_ns(dt.date.fromisoformat(exp), 15, 30) - start_ns) / NS / _YEAR_S
                self._years[i] = left if left > 0 else 7 / 365
        self._price_options()
        self._prev_close = self._to_ticks(self._fair)
        for i in self._opt_idx.tolist():
            self._fair[i] = max(self._fair[i], 0.05)

    def _init_day(self, start_ns: int) -> None:
        n = len(self.instruments)
        close = self._prev_close = np.maximum(self._prev_close, 1)
        band = np.where(self._is_index, 0, (close * _EQ_BAND).astype(np.int64))
        und = np.array([self._fair[self._underlying.get(i, i)] for i in range(n)])
        opt_band = self._to_ticks(und * 0.10)
        self._upper = np.where(self._is_opt, close + opt_band, close + band)
        self._lower = np.where(self._is_opt | self._is_index, 1, np.maximum(close - band, 1))
        self._hi52 = (close * 1.35).astype(np.int64)
        self._lo52 = np.maximum((close * 0.70).astype(np.int64), 1)
        gap = np.exp(self._rng.normal(0, 0.004, n))
        self._fair = self._clamp_fair(self._fair * gap)
        self._ltp = self._to_ticks(self._fair)
        self._open, self._high, self._low = self._ltp.copy(), self._ltp.copy(), self._ltp.copy()
        elapsed = self._session_elapsed_s(start_ns)
        mean_q = np.where(self._is_opt, 4, 40) * self._lot
        self._volume = np.where(self._is_index, 0, (self._rate * elapsed * mean_q).astype(np.int64))
        self._turnover = self._volume * self._ltp
        self._ltq = np.where(self._is_index, 0, self._lot)
        self._seq = np.zeros(n, dtype=np.int64)
        self._last_trade = np.full(n, start_ns, dtype=np.int64)
        oi = self._rng.integers(500, 50_000, n) * self._lot
        self._oi = np.where(self._is_opt, oi, 0)
        self._oi_hi, self._oi_lo = self._oi.copy(), self._oi.copy()
        if not hasattr(self, "_patterns"):  # shapes are drawn once; a day roll keeps them
            self._patterns = BookPatterns(self._rng, self._lot)
        self._pattern = self._rng.integers(0, self._patterns.patterns, n)
        self._book = self._patterns.books(np.arange(n), self._ltp, self._pattern)
        self._tbq = self._book[1].sum(axis=1) * 23
        self._tsq = self._book[4].sum(axis=1) * 23

    # ----------------------------------------------------------------------------- helpers
    def _to_ticks(self, prices: F64, idx: I64 | None = None) -> I64:
        scale = self._scale if idx is None else self._scale[idx]
        return np.rint(prices * scale).astype(np.int64)

    def _clamp_fair(self, fair: F64) -> F64:
        lo = self._lower / self._scale
        hi = np.where(self._is_index, np.inf, self._upper / self._scale)
        clipped: F64 = np.clip(fair, lo, hi)
        return clipped

    def _price_options(self) -> None:
        for i in self._opt_idx.tolist():
            inst = self.instruments[i]
            spot = float(self._fair[self._underlying[i]])
            call = inst.instrument_type == "CE"
            price = bs_price(
                spot, inst.strike or spot, float(self._years[i]), _OPTION_VOL, call=call
            )
            self._fair[i] = max(price, 0.0)

    def _session_elapsed_s(self, ts: int) -> float:
        session = session_for("NSE", ist_date(ts))
        if session is None:
            return 0.0
        return min(max(ts - session.open_ns, 0), session.close_ns - session.open_ns) / NS

    def _activity(self, ts: int) -> float:
        return intraday_activity(self._session_elapsed_s(ts) / _DAY_S)

    def instrument(self, exchange: str, token: int) -> Instrument:
        """The instrument with this exchange token, or KeyError naming what was asked for."""
        return self.instruments[self._position(exchange, token)]

    def _position(self, exchange: str, token: int) -> int:
        try:
            return self._index[(exchange, token)]
        except KeyError:
            raise KeyError(f"no instrument {exchange}:{token} in the simulated universe") from None

    # ----------------------------------------------------------------------------- stepping
    def step(self, now_ns: int, *, tick_rate_scale: float = 1.0) -> list[Tick]:
        """Advance to ``now_ns``; FULL-mode ticks for the instruments that traded meanwhile."""
        self._last_step = None
        dt_s = (now_ns - self._last_ns) / NS
        if dt_s <= 0:
            return []
        if ist_date(now_ns) != self._day:
            self._roll_day(now_ns)
            dt_s = max(self._session_elapsed_s(now_ns), 1e-3)  # only today's trading counts
        self._last_ns = now_ns
        self._walk(now_ns, dt_s)
        lam = self._rate * (dt_s * self._activity(now_ns) * tick_rate_scale)
        trades = self._rng.poisson(lam)
        traded = np.flatnonzero(trades)
        if traded.size == 0:
            return []
        self._trade(traded, trades[traded], now_ns)
        ticks = self._build(traded, now_ns)
        self._last_step = (ticks, traded, now_ns)
        return ticks

    def last_step_positions(self, ticks: Sequence[Tick]) -> I64 | None:
        """Universe positions of ``ticks`` if they are the last ``step``'s list (else None)."""
        last = self._last_step
        return last[1] if last is not None and ticks is last[0] else None

    def kite_full_packets(self, ticks: Sequence[Tick]) -> list[bytes | None] | None:
        """Kite FULL packets of ``ticks`` if they are the last ``step``'s list (else None).

        One numpy pass instead of ``encode_packet`` per tick, byte-identical to it; None for a
        tick that must take ``encode_packet`` (index ticks, values beyond the wire's range).
        """
        last = self._last_step
        if last is None or ticks is not last[0]:
            return None
        cols = Columns(**self._columns())
        return kite_full_packets(cols, last[1], last[2], self._kite_itok, self._kite_div)

    def _walk(self, now_ns: int, dt_s: float) -> None:
        shock = self._rng.normal(0.0, 1.0, len(self.instruments)) * (self._sigma * math.sqrt(dt_s))
        self._fair = self._fair * np.exp(shock)
        for i, (times, values) in self._sources.items():
            value = series_value(times, values, now_ns)
            if value is not None:
                self._fair[i] = value
        if self._opt_idx.size:
            self._years[self._opt_idx] = np.maximum(
                self._years[self._opt_idx] - dt_s / _YEAR_S, 1 / _YEAR_S
            )
            self._price_options()
        self._fair = self._clamp_fair(self._fair)

    def _trade(self, idx: I64, count: I64, now_ns: int) -> None:
        raw = self._to_ticks(self._fair[idx], idx)
        ltp = np.where(self._is_index[idx], raw, np.clip(raw, self._lower[idx], self._upper[idx]))
        self._ltp[idx] = ltp
        self._high[idx] = np.maximum(self._high[idx], ltp)
        self._low[idx] = np.minimum(self._low[idx], ltp)
        self._hi52[idx] = np.maximum(self._hi52[idx], ltp)
        self._lo52[idx] = np.minimum(self._lo52[idx], ltp)
        self._seq[idx] += 1
        self._last_trade[idx] = now_ns
        tradable = idx[~self._is_index[idx]]
        if tradable.size == 0:
            return
        lot = self._lot[tradable]
        n = tradable.size
        ltq = self._rng.integers(1, 80, n) * lot
        added = ltq + (count[~self._is_index[idx]] - 1) * lot * 40
        self._ltq[tradable] = ltq
        self._volume[tradable] += added
        self._turnover[tradable] += added * self._ltp[tradable]
        opts = tradable[self._is_opt[tradable]]
        if opts.size:
            self._oi[opts] = np.maximum(
                self._oi[opts] + self._rng.integers(-20, 21, opts.size) * self._lot[opts], 0
            )
            self._oi_hi[opts] = np.maximum(self._oi_hi[opts], self._oi[opts])
            self._oi_lo[opts] = np.minimum(self._oi_lo[opts], self._oi[opts])
        shapes = self._rng.integers(0, self._patterns.patterns, n)
        self._pattern[tradable] = shapes
        book = self._patterns.books(tradable, self._ltp[tradable], shapes)
        for mine, fresh in zip(self._book, book, strict=True):
            mine[tradable] = fresh
        self._tbq[tradable] = book[1].sum(axis=1) * self._rng.integers(15, 40, n)
        self._tsq[tradable] = book[4].sum(axis=1) * self._rng.integers(15, 40, n)

    def _roll_day(self, now_ns: int) -> None:
        self._day = ist_date(now_ns)
        self._prev_close = self._ltp.copy()
        self._init_day(now_ns)

    # ----------------------------------------------------------------------------- ticks
    def snapshot(self, exchange: str, token: int) -> Tick:
        """The instrument's current full state as a tick (last traded values)."""
        i = self._position(exchange, token)
        return self._build(np.array([i], dtype=np.int64), int(self._last_trade[i]))[0]

    def snapshot_many(self, keys: Sequence[tuple[str, int]]) -> list[Tick | None]:
        """:meth:`snapshot` of each ``(exchange, token)``, None where there is no such instrument;
        built in one batch (a subscription of thousands of instruments asks for them at once).
        """
        pos = [self._index.get(key) for key in keys]
        known = [p for p in pos if p is not None]
        if not known:
            return [None] * len(pos)
        built = iter(self._build(np.array(known, dtype=np.int64), None))
        return [None if p is None else next(built) for p in pos]

    def snapshots(self) -> list[Tick]:
        """Current full state of every instrument, in universe order."""
        return self._build(np.arange(len(self.instruments), dtype=np.int64), None)

    def depth20(self, exchange: str, token: int) -> Depth:
        """A 20-level book whose first 5 levels are the current 5-level depth (Angel DEPTH mode)."""
        i = self._position(exchange, token)
        if self._is_index[i]:
            return Depth()
        rng = np.random.default_rng((self.seed, i, int(self._seq[i])))
        bp, bq, bo, ap, aq, ao = (a[i] for a in self._book)
        lot = int(self._lot[i])
        bid_px = [*bp.tolist(), *(int(bp[-1]) - np.arange(1, 16)).tolist()]
        ask_px = [*ap.tolist(), *(int(ap[-1]) + np.arange(1, 16)).tolist()]
        more_q = (rng.integers(1, 80, (2, 15)) * lot).tolist()
        more_o = rng.integers(1, 15, (2, 15)).tolist()
        scale = int(self._scale[i])
        bids = [
            DepthLevel(p / scale, q, o) if p > 0 else DepthLevel(0.0, 0, 0)
            for p, q, o in zip(
                bid_px, [*bq.tolist(), *more_q[0]], [*bo.tolist(), *more_o[0]], strict=True
            )
        ]
        asks = [
            DepthLevel(p / scale, q, o)
            for p, q, o in zip(
                ask_px, [*aq.tolist(), *more_q[1]], [*ao.tolist(), *more_o[1]], strict=True
            )
        ]
        return Depth(bids=tuple(bids), asks=tuple(asks))

    def _build(self, idx: I64, ts: int | None) -> list[Tick]:
        if self._packer is None:
            levels = self._book[0].shape[1]
            self._packer = TickPacker(self.instruments, self._is_opt.tolist(), levels)
        cols = Columns(**self._columns())
        return build_step_ticks(self.instruments, cols, idx, ts, self._packer)

    def _columns(self) -> dict[str, Any]:
        return dict(
            scale=self._scale, ltp=self._ltp, open=self._open, high=self._high, low=self._low,
            close=self._prev_close, upper=self._upper, lower=self._lower, hi52=self._hi52,
            lo52=self._lo52, volume=self._volume, turnover=self._turnover, ltq=self._ltq,
            seq=self._seq, tbq=self._tbq, tsq=self._tsq, oi=self._oi, oi_hi=self._oi_hi,
            oi_lo=self._oi_lo, last_trade=self._last_trade, is_index=self._is_index,
            is_opt=self._is_opt, book=self._book,
        )  # fmt: skip
