"""The official broker SDK clients against the simulator: the proof that it speaks their protocols.

KiteTicker (pykiteconnect, Twisted/autobahn in a thread) and SmartWebSocketV2 (smartapi-python,
websocket-client in a thread) connect with the simulator's credentials, subscribe in full /
SNAP_QUOTE mode, and every tick they hand to their callbacks must equal, field by field, the tick
the simulator recorded in its emission log for that connection at send time.

Twisted's reactor cannot be restarted in one process, so all KiteTicker checks live in one test.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tickstream.calendar import NS
from tickstream.model import DepthLevel, Tick
from tickstream.sim.server import Emission, SimConfig, SimServer

pytestmark = pytest.mark.timeout(90)

KITE_TOKENS = [738561, 779521, 256265]  # RELIANCE, SBIN, NIFTY 50
WANT = 25  # ticks to compare
ANGEL_TOKENS = ["2885", "3045", "1333", "1594", "11536"]  # RELIANCE SBIN HDFCBANK INFY TCS


async def _wait_for(predicate: Callable[[], bool], seconds: float = 30) -> None:
    for _ in range(int(seconds / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")


def _paise(price: float | None) -> int:
    return round((price or 0.0) * 100)


def _emitted(sim: SimServer, broker: str) -> list[Emission]:
    conn_ids = {c.conn_id for c in sim.connections() if c.broker == broker}
    return [e for e in sim.emissions if e.conn_id in conn_ids]


# ------------------------------------------------------------------------------------ Kite


def _kite_levels(levels: tuple[DepthLevel, ...]) -> list[dict[str, Any]]:
    return [{"quantity": lv.qty, "price": lv.price, "orders": lv.orders} for lv in levels]


def _kite_expected(tick: Tick, mode: str) -> dict[str, Any]:
    want: dict[str, Any] = {
        "instrument_token": tick.token << 8 | (9 if tick.exchange == "INDICES" else 1),
        "last_price": tick.ltp,
        "mode": mode,
        "ohlc": {"open": tick.open, "high": tick.high, "low": tick.low, "close": tick.close},
    }
    if tick.exchange != "INDICES":
        want |= {
            "last_traded_quantity": tick.ltq, "average_traded_price": tick.atp,
            "volume_traded": tick.volume, "total_buy_quantity": tick.total_buy_qty,
            "total_sell_quantity": tick.total_sell_qty,
        }  # fmt: skip
    if mode == "full" and tick.exchange != "INDICES":
        assert tick.depth is not None and tick.ts_last_trade is not None
        want |= {
            "oi": tick.oi or 0, "oi_day_high": tick.oi_day_high or 0,
            "oi_day_low": tick.oi_day_low or 0,
            "depth": {"buy": _kite_levels(tick.depth.bids), "sell": _kite_levels(tick.depth.asks)},
            "last_trade_time": tick.ts_last_trade // NS,
        }  # fmt: skip
    if mode == "full":
        want["exchange_timestamp"] = tick.ts_exchange // NS
    return want


def _kite_got(sdk_tick: dict[str, Any], want: dict[str, Any]) -> dict[str, Any]:
    got = {k: sdk_tick.get(k) for k in want}
    for key in ("last_trade_time", "exchange_timestamp"):
        if key in got and got[key] is not None:
            got[key] = int(got[key].timestamp())  # the SDK builds naive local datetimes
    return got


async def test_sdk_kiteticker_receives_the_simulator_ticks_exactly(tmp_path: Path) -> None:
    from kiteconnect import KiteTicker
    from twisted.internet import reactor

    received: list[dict[str, Any]] = []
    config = SimConfig(seed=21, tick_interval_ms=50, emission_memory=100_000)
    async with SimServer(config) as sim:
        creds = sim.credentials
        kws = KiteTicker(creds.kite_api_key, creds.kite_access_token, root=sim.kite_ws_url)

        def on_connect(ws: Any, response: Any) -> None:
            ws.subscribe(KITE_TOKENS)
            ws.set_mode(ws.MODE_FULL, KITE_TOKENS)

        kws.on_connect = on_connect
        kws.on_ticks = lambda ws, ticks: received.extend(ticks)
        kws.connect(threaded=True)
        try:
            await _wait_for(lambda: len(received) >= WANT)
            await _wait_for(lambda: len(_emitted(sim, "kite")) >= WANT)
            emitted = _emitted(sim, "kite")[:WANT]
        finally:
            kws.close()
            reactor.callFromThread(reactor.stop)  # type: ignore[attr-defined]
            kws.websocket_thread.join(10)

    pairs = [(_kite_expected(e.tick, e.mode), t) for e, t in zip(emitted, received, strict=False)]
    assert len(pairs) == WANT
    for want, sdk_tick in pairs:
        assert _kite_got(sdk_tick, want) == want
    assert {t["mode"] for t in received[:WANT]} >= {"quote", "full"}
    assert {t["instrument_token"] for t in received} == set(KITE_TOKENS)


# ------------------------------------------------------------------------------------ Angel


def _angel_levels(levels: tuple[DepthLevel, ...], flag: int) -> list[dict[str, int]]:
    return [
        {
            "flag": flag,
            "quantity": lv.qty,
            "price": _paise(lv.price),
            "no of orders": lv.orders or 0,
        }
        for lv in levels
    ]


def _angel_expected(tick: Tick) -> dict[str, Any]:
    assert tick.depth is not None
    return {
        "subscription_mode": 3, "exchange_type": 1, "token": str(tick.token),
        "sequence_number": tick.seq, "exchange_timestamp": tick.ts_exchange // 1_000_000,
        "last_traded_price": _paise(tick.ltp), "last_traded_quantity": tick.ltq,
        "average_traded_price": _paise(tick.atp), "volume_trade_for_the_day": tick.volume,
        "total_buy_quantity": float(tick.total_buy_qty or 0),
        "total_sell_quantity": float(tick.total_sell_qty or 0),
        "open_price_of_the_day": _paise(tick.open), "high_price_of_the_day": _paise(tick.high),
        "low_price_of_the_day": _paise(tick.low), "closed_price": _paise(tick.close),
        "last_traded_timestamp": (tick.ts_last_trade or 0) // NS, "open_interest": tick.oi or 0,
        "upper_circuit_limit": _paise(tick.upper_circuit),
        "lower_circuit_limit": _paise(tick.lower_circuit),
        "52_week_high_price": _paise(tick.high_52w), "52_week_low_price": _paise(tick.low_52w),
        # smartapi-python files the levels crosswise and swaps the lists back, so the published
        # best_5_buy_data holds the flag-1 (buy) levels.
        "best_5_buy_data": _angel_levels(tick.depth.bids, 1),
        "best_5_sell_data": _angel_levels(tick.depth.asks, 0),
    }  # fmt: skip


async def test_sdk_smartwebsocketv2_receives_the_simulator_ticks_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from SmartApi.smartWebSocketV2 import SmartWebSocketV2

    monkeypatch.chdir(tmp_path)  # the SDK writes logs/<date>/app.log under the working directory
    received: list[dict[str, Any]] = []
    config = SimConfig(seed=22, tick_interval_ms=50, emission_memory=100_000)
    async with SimServer(config) as sim:
        c = sim.credentials
        # max_retry_attempt=0: the SDK's own _on_close has the wrong arity for websocket-client,
        # so every close goes through its error path, which would otherwise sleep 10 s and retry.
        sws = SmartWebSocketV2(f"Bearer {c.angel_jwt}", c.angel_api_key, c.angel_client_code,
                               c.angel_feed_token, max_retry_attempt=0)  # fmt: skip
        sws.ROOT_URI = sim.angel_ws_url
        tokens = [{"exchangeType": 1, "tokens": ANGEL_TOKENS}]
        sws.on_open = lambda wsapp: sws.subscribe("sim0000001", 3, tokens)
        sws.on_data = lambda wsapp, data: received.append(data)
        sws.on_error = lambda *args: None
        sws.on_close = lambda wsapp: None
        thread = threading.Thread(target=sws.connect, daemon=True)
        thread.start()
        try:
            await _wait_for(lambda: len(received) >= WANT)
            await _wait_for(lambda: len(_emitted(sim, "angelone")) >= WANT)
            emitted = _emitted(sim, "angelone")[:WANT]
        finally:
            sws.close_connection()
            # websocket-client closes its socket itself and then sits in select() until its
            # 10 s read timeout before run_forever returns: wait for that in a worker thread.
            await asyncio.to_thread(thread.join, 20)
            _drop_sdk_file_logging()

    assert len(emitted) == WANT
    for emission, sdk_tick in zip(emitted, received, strict=False):
        want = _angel_expected(emission.tick)
        assert {k: sdk_tick.get(k) for k in want} == want
    assert {t["token"] for t in received} == set(ANGEL_TOKENS)
    assert not thread.is_alive()


def _drop_sdk_file_logging() -> None:
    """logzero.logfile() added a file handler to its logger; remove it after the test."""
    sdk_logger = logging.getLogger("logzero_default")
    for handler in list(sdk_logger.handlers):
        if isinstance(handler, logging.FileHandler):
            sdk_logger.removeHandler(handler)
            handler.close()
