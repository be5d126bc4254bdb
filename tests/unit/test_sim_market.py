"""The simulator's universe, clock and market model: determinism, grid, OHLC, books, limits."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickstream.calendar import NS, ist_date, ist_datetime, ist_ns
from tickstream.model import Instrument, Tick, encode_json
from tickstream.sim.clock import SimClock, latest_session_start
from tickstream.sim.market import Market
from tickstream.sim.universe import default_universe, load_universe, reference_prices

FRIDAY = dt.date(2025, 11, 21)  # a trading day
START = ist_ns(FRIDAY, 10)
STEP = 50_000_000  # 50 ms
RELIANCE = 2885
SBIN = 3045


def _market(seed: int = 7, **kwargs: object) -> Market:
    return Market(
        default_universe(), seed=seed, start_ns=START, reference_prices=reference_prices(),
        **kwargs,  # type: ignore[arg-type]
    )  # fmt: skip


def _run(market: Market, steps: int, *, scale: float = 1.0) -> list[list[Tick]]:
    return [market.step(START + k * STEP, tick_rate_scale=scale) for k in range(1, steps + 1)]


def _on_grid(price: float, tick_size: float) -> bool:
    n = price / tick_size
    return abs(n - round(n)) < 1e-6


# ------------------------------------------------------------------------------------ universe


def test_universe_default_has_indices_equities_and_one_option_chain() -> None:
    universe = default_universe()

    nifty = next(i for i in universe if i.symbol == "NIFTY 50")
    bank = next(i for i in universe if i.symbol == "NIFTY BANK")
    equities = [i for i in universe if i.exchange == "NSE"]
    options = [i for i in universe if i.exchange == "NFO"]

    assert (nifty.exchange, nifty.token, nifty.kite_token, nifty.angel_token) == (
        "INDICES",
        1001,
        256265,
        "99926000",
    )
    assert nifty.kite_token == 1001 << 8 | 9
    assert (bank.kite_token, bank.angel_token) == (260105, "99926009")
    assert len(equities) == 50
    assert len(options) == 40
    assert {o.instrument_type for o in options} == {"CE", "PE"}
    assert {(o.expiry, o.lot_size) for o in options} == {("2026-08-18", 65)}


def test_universe_nse_equities_kite_exchange_token_equals_angel_token() -> None:
    equities = [i for i in default_universe() if i.exchange == "NSE"]

    assert all(i.angel_token == str(i.token) for i in equities)
    assert all(i.kite_token == i.token << 8 | 1 for i in equities)
    reliance = next(i for i in equities if i.symbol == "RELIANCE")
    assert (reliance.token, reliance.kite_token) == (RELIANCE, 738561)


def test_universe_reference_prices_cover_every_non_option_and_use_real_closes() -> None:
    refs = reference_prices()
    universe = default_universe()

    missing = [i.key for i in universe if i.exchange != "NFO" and i.key not in refs]

    assert missing == []
    assert refs["NSE:3045"] == 583.05  # SBIN's last real 1-minute close (2023-06-01)


def test_universe_load_from_path_roundtrips(tmp_path: Path) -> None:
    path = tmp_path / "u.json"
    path.write_text(
        '{"instruments":[{"exchange":"NSE","token":1,"symbol":"X","tick_size":0.05}],'
        '"reference_prices":{"NSE:1":10.0}}'
    )

    loaded = load_universe(path)

    assert loaded == [Instrument(exchange="NSE", token=1, symbol="X", tick_size=0.05)]
    assert reference_prices(path) == {"NSE:1": 10.0}


# ------------------------------------------------------------------------------------ clock


def test_clock_session_mode_on_a_sunday_maps_to_friday_ten_ist() -> None:
    sunday_night = ist_ns(dt.date(2025, 11, 23), 21, 30)

    clock = SimClock(wall_ns=lambda: sunday_night, monotonic_ns=lambda: 0)

    assert ist_datetime(clock.now_ns()).isoformat() == "2025-11-21T10:00:00+05:30"


def test_clock_session_mode_inside_a_session_uses_wall_time() -> None:
    wall = ist_ns(FRIDAY, 11, 5)

    clock = SimClock(wall_ns=lambda: wall, monotonic_ns=lambda: 0)

    assert clock.now_ns() == wall


def test_clock_session_mode_past_close_carries_on_at_next_open() -> None:
    mono = [0]
    clock = SimClock(wall_ns=lambda: ist_ns(FRIDAY, 15, 0), monotonic_ns=lambda: mono[0])

    mono[0] = 45 * 60 * NS  # 15:45 would be after the 15:30 close

    assert ist_datetime(clock.now_ns()).isoformat() == "2025-11-24T09:30:00+05:30"


def test_clock_fixed_mode_advances_with_speed() -> None:
    mono = [100]
    clock = SimClock("fixed", start_ns=START, speed=2.0, monotonic_ns=lambda: mono[0])

    mono[0] += 3 * NS

    assert clock.now_ns() == START + 6 * NS


def test_clock_fixed_mode_without_start_is_refused() -> None:
    with pytest.raises(ValueError, match="start_ns"):
        SimClock("fixed")


def test_clock_latest_session_start_before_open_is_previous_trading_day() -> None:
    monday_early = ist_ns(dt.date(2025, 11, 24), 8, 0)

    assert ist_date(latest_session_start(monday_early)) == FRIDAY


# ------------------------------------------------------------------------------------ market


def test_market_same_seed_same_steps_gives_identical_ticks() -> None:
    a, b = _run(_market(seed=3), 40), _run(_market(seed=3), 40)

    assert encode_json(a) == encode_json(b)
    assert sum(map(len, a)) > 100


def test_market_different_seed_gives_different_ticks() -> None:
    assert encode_json(_run(_market(seed=1), 20)) != encode_json(_run(_market(seed=2), 20))


def test_market_prices_are_on_the_instrument_tick_grid() -> None:
    market = _market()
    sizes = {i.key: i.tick_size or 0.05 for i in market.instruments}

    ticks = [t for step in _run(market, 40, scale=5) for t in step]

    for t in ticks:
        prices = [t.ltp, t.open, t.high, t.low, t.close]
        if t.depth is not None:
            prices += [lv.price for lv in (*t.depth.bids, *t.depth.asks)]
        assert all(_on_grid(p, sizes[t.key]) for p in prices if p is not None), t


def test_market_low_ltp_high_ordering_and_cumulative_volume() -> None:
    market = _market()
    last_volume: dict[str, int] = {}

    for step in _run(market, 60, scale=5):
        for t in step:
            assert t.low is not None and t.high is not None and t.ltp is not None
            assert t.low <= t.ltp <= t.high
            assert t.low <= (t.open or 0) <= t.high
            if t.volume is not None:
                assert t.volume >= last_volume.get(t.key, 0)
                last_volume[t.key] = t.volume
    assert len(last_volume) >= 80


def test_market_depth_sorted_and_consistent_with_ltp() -> None:
    ticks = [t for s in _run(_market(), 30, scale=5) for t in s if t.exchange != "INDICES"]

    for t in ticks:
        assert t.depth is not None and t.ltp is not None
        bids = [lv.price for lv in t.depth.bids if lv.qty]
        asks = [lv.price for lv in t.depth.asks]
        assert bids == sorted(bids, reverse=True) and len(set(bids)) == len(bids)
        assert asks == sorted(asks) and len(set(asks)) == 5
        assert bids[0] <= t.ltp <= asks[0] and bids[0] < asks[0]
        assert (t.bid, t.ask, t.bid_qty) == (bids[0], asks[0], t.depth.bids[0].qty)


def test_market_indices_carry_no_volume_or_depth() -> None:
    ticks = [t for s in _run(_market(), 40, scale=5) for t in s if t.exchange == "INDICES"]

    assert ticks
    assert {(t.volume, t.depth, t.ltq, t.oi, t.bid) for t in ticks} == {(None,) * 5}
    assert all(t.change == pytest.approx((t.ltp or 0) - (t.close or 0)) for t in ticks)


def test_market_seq_increments_by_one_per_instrument() -> None:
    seqs: dict[str, list[int]] = {}

    for step in _run(_market(), 40, scale=3):
        for t in step:
            seqs.setdefault(t.key, []).append(t.seq or 0)

    assert all(s == list(range(s[0], s[0] + len(s))) for s in seqs.values())


def test_market_options_carry_oi_and_move_with_the_underlying() -> None:
    up = [(START + k * NS, 24600.0 + 10.0 * k) for k in range(0, 120)]
    market = _market(price_source={"INDICES:1001": up})
    ce = next(i for i in market.instruments if i.symbol == "NIFTY2681824600CE")
    pe = next(i for i in market.instruments if i.symbol == "NIFTY2681824600PE")
    before_ce, before_pe = market.snapshot("NFO", ce.token), market.snapshot("NFO", pe.token)

    for k in range(1, 101):
        market.step(START + k * NS, tick_rate_scale=5)
    after_ce, after_pe = market.snapshot("NFO", ce.token), market.snapshot("NFO", pe.token)

    assert (after_ce.ltp or 0) > (before_ce.ltp or 0) + 300  # NIFTY +1000, delta ~0.5..1
    assert (after_pe.ltp or 0) < (before_pe.ltp or 0) - 300
    assert after_ce.oi is not None and after_ce.oi_day_low <= after_ce.oi <= after_ce.oi_day_high


def test_market_price_source_beyond_the_band_is_clamped_to_the_circuit() -> None:
    ref = reference_prices()["NSE:3045"]
    series = [(START, ref), (START + NS, ref * 1.5)]
    market = _market(price_source={"NSE:3045": series})

    for k in range(1, 41):
        market.step(START + k * NS, tick_rate_scale=10)
    snap = market.snapshot("NSE", SBIN)

    assert snap.upper_circuit == pytest.approx(ref * 1.2, abs=0.05)
    assert snap.ltp == snap.upper_circuit == snap.high
    assert snap.lower_circuit is not None and snap.lower_circuit < ref


def test_market_depth20_extends_the_five_level_book() -> None:
    market = _market()
    _run(market, 10)

    snap = market.snapshot("NSE", RELIANCE)
    d20 = market.depth20("NSE", RELIANCE)

    assert snap.depth is not None
    assert (len(d20.bids), len(d20.asks)) == (20, 20)
    assert d20.bids[:5] == snap.depth.bids and d20.asks[:5] == snap.depth.asks
    asks = [lv.price for lv in d20.asks]
    assert asks == sorted(asks) and len(set(asks)) == 20


def test_market_unknown_instrument_raises_keyerror_naming_it() -> None:
    with pytest.raises(KeyError, match="NSE:999999"):
        _market().instrument("NSE", 999999)


def test_market_step_backwards_in_time_returns_nothing() -> None:
    market = _market()
    market.step(START + 10 * STEP)

    assert market.step(START + 5 * STEP) == []


def test_market_new_ist_day_rolls_previous_close_and_volume() -> None:
    market = _market()
    _run(market, 20, scale=5)
    last = market.snapshot("NSE", RELIANCE)
    monday = ist_ns(dt.date(2025, 11, 24), 9, 15, 1)

    market.step(monday)
    rolled = market.snapshot("NSE", RELIANCE)

    assert rolled.close == last.ltp
    assert (rolled.volume or 0) < (last.volume or 0)


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    gaps=st.lists(st.integers(1, 3_000_000_000), min_size=1, max_size=25),
    scale=st.floats(0.5, 20.0),
)
def test_market_invariants_hold_for_any_seed_and_step_times(
    seed: int, gaps: list[int], scale: float
) -> None:
    market = _market(seed=seed)
    now = START
    for gap in gaps:
        now += gap
        for t in market.step(now, tick_rate_scale=scale):
            assert t.ts_exchange == now and t.source == "sim"
            assert t.low is not None and t.high is not None
            assert t.low <= (t.ltp or 0) <= t.high
            if t.upper_circuit is not None and t.lower_circuit is not None:
                assert t.lower_circuit <= (t.ltp or 0) <= t.upper_circuit


def test_market_price_source_previous_close_skips_pre_open_values() -> None:
    day = dt.date(2022, 11, 21)
    series = [(ist_ns(day, 9, 0, 1), 17707.1), (ist_ns(day, 9, 15), 18300.0)]

    market = _market(price_source={"INDICES:1001": series})

    assert market.snapshot("INDICES", 1001).close == 18300.0
