"""The official SDK parsers are the oracle: bytes we encode must parse to the same values there.

Per broker, >= 10k hypothesis-generated packets across every mode (Kite: 3 modes x 100 frames of
40 packets = 12,000; Angel: 4 modes x 100 examples x 30 packets = 12,000) are encoded with ours,
parsed by the SDK's own parser (``KiteTicker._parse_binary``,
``SmartWebSocketV2._parse_binary_data``) on an instance built without connecting, and every SDK field is compared with our decode of the same
bytes. Prices are compared exactly: the SDK's value (or the SDK's raw integer divided once by the
divisor, for Angel whose SDK leaves paise undivided) must equal ours bit for bit.
"""

from __future__ import annotations

import importlib.util
from datetime import datetime
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from kiteconnect.ticker import KiteTicker
from wire_strategies import SEEDS, angel_batch, kite_batch

from tickstream.feeds.angelone import wire as angel
from tickstream.feeds.kite import wire as kite
from tickstream.model import NS_PER_SEC, Depth, DepthLevel, Mode, Tick

ORACLE = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
KITE_FRAMES, PACKETS_PER_FRAME = 100, 40  # x 3 modes = 12,000 Kite packets
ANGEL_EXAMPLES, ANGEL_PACKETS_PER_EXAMPLE = 100, 30  # x 4 modes = 12,000 Angel packets


def _load_smart_websocket() -> ModuleType:
    # Load SmartApi/smartWebSocketV2.py alone: the package __init__ imports smartConnect, which
    # makes a network request at import time.
    spec = importlib.util.find_spec("SmartApi")
    assert spec is not None and spec.submodule_search_locations
    path = f"{next(iter(spec.submodule_search_locations))}/smartWebSocketV2.py"
    file_spec = importlib.util.spec_from_file_location("_oracle_smart_ws_v2", path)
    assert file_spec is not None and file_spec.loader is not None
    module = importlib.util.module_from_spec(file_spec)
    file_spec.loader.exec_module(module)
    return module


SmartWebSocketV2 = _load_smart_websocket().SmartWebSocketV2
KITE_SDK: Any = object.__new__(KiteTicker)  # no __init__: no connection, no reactor
ANGEL_SDK: Any = object.__new__(SmartWebSocketV2)  # no __init__: no log folder, no socket


def _epoch_s(naive_local: datetime) -> int:
    # The SDK builds naive local datetimes with datetime.fromtimestamp; .timestamp() inverts that
    # exactly in any zone without DST (UTC, Asia/Kolkata).
    return int(naive_local.timestamp())


def _levels(rows: list[dict[str, Any]], price: str, qty: str, orders: str, div: float) -> list[Any]:
    # Empty levels (price and quantity 0) are dropped by our decoder.
    return [(r[price] / div, r[qty], r[orders]) for r in rows if r[qty] or r[price]]


def _ours(depth: Depth | None) -> tuple[list[Any], list[Any]]:
    assert depth is not None
    return (
        [(lv.price, lv.qty, lv.orders) for lv in depth.bids],
        [(lv.price, lv.qty, lv.orders) for lv in depth.asks],
    )


# ------------------------------------------------------------------------------------------ Kite


def _check_kite(sdk: dict[str, Any], ours: Tick) -> None:
    assert sdk["instrument_token"] == kite.instrument_token(ours.exchange, ours.token)
    assert sdk["tradable"] is (ours.exchange != "INDICES")
    assert sdk["mode"] == ours.mode.value
    assert sdk["last_price"] == ours.ltp
    if ours.mode is Mode.LTP:
        assert len(sdk) == 4
        return
    ohlc = sdk["ohlc"]
    assert (ohlc["open"], ohlc["high"], ohlc["low"], ohlc["close"]) == (
        ours.open, ours.high, ours.low, ours.close,
    )  # fmt: skip
    # The SDK's "change" is the percentage, 0 when close is 0 (ours: None, never 0 for unknown).
    assert sdk["change"] == (0 if ours.change_pct is None else ours.change_pct)
    if ours.mode is Mode.FULL:
        assert _epoch_s(sdk["exchange_timestamp"]) * NS_PER_SEC == ours.ts_exchange
    if ours.exchange == "INDICES":
        return
    assert sdk["last_traded_quantity"] == ours.ltq
    assert sdk["average_traded_price"] == ours.atp
    assert sdk["volume_traded"] == ours.volume
    assert (sdk["total_buy_quantity"], sdk["total_sell_quantity"]) == (
        ours.total_buy_qty, ours.total_sell_qty,
    )  # fmt: skip
    if ours.mode is Mode.FULL:
        ltt = 0 if ours.ts_last_trade is None else ours.ts_last_trade // NS_PER_SEC
        assert _epoch_s(sdk["last_trade_time"]) == ltt
        assert (sdk["oi"], sdk["oi_day_high"], sdk["oi_day_low"]) == (
            ours.oi, ours.oi_day_high, ours.oi_day_low,
        )  # fmt: skip
        bids = _levels(sdk["depth"]["buy"], "price", "quantity", "orders", 1.0)
        asks = _levels(sdk["depth"]["sell"], "price", "quantity", "orders", 1.0)
        assert len(sdk["depth"]["buy"]) == len(sdk["depth"]["sell"]) == 5
        assert (bids, asks) == _ours(ours.depth)


@pytest.mark.parametrize("mode", list(Mode))
@settings(ORACLE, max_examples=KITE_FRAMES)
@given(seed=SEEDS)
def test_kite_sdk_parser_agrees_with_our_decode(mode: Mode, seed: int) -> None:
    # Arrange
    ticks = kite_batch(seed, mode, PACKETS_PER_FRAME)
    frame = kite.encode_frame([kite.encode_packet(t, mode) for t in ticks])
    # Act
    ours = kite.decode_frame(frame, ts_recv=1)
    sdk = KITE_SDK._parse_binary(frame)
    # Assert
    assert ours.rejects == [] and len(ours.ticks) == len(sdk) == len(ticks)
    for sdk_tick, our_tick in zip(sdk, ours.ticks, strict=True):
        _check_kite(sdk_tick, our_tick)


# ----------------------------------------------------------------------------------------- Angel


def _check_angel(sdk: dict[str, Any], ours: Tick, mode: angel.AngelMode, et: int, tok: str) -> None:
    div = 10_000_000.0 if et == 13 else 100.0
    assert (sdk["subscription_mode"], sdk["exchange_type"], sdk["token"]) == (mode, et, tok)
    assert str(ours.token) == tok
    assert sdk["exchange_timestamp"] * 1_000_000 == ours.ts_exchange
    if mode is angel.AngelMode.DEPTH:
        assert "last_traded_price" not in sdk and ours.ltp is None and ours.seq is None
        bids = _levels(sdk["depth_20_buy_data"], "price", "quantity", "num_of_orders", div)
        asks = _levels(sdk["depth_20_sell_data"], "price", "quantity", "num_of_orders", div)
        assert (bids, asks) == _ours(ours.depth)
        return
    assert sdk["subscription_mode_val"] == mode.name
    assert (sdk["sequence_number"], sdk["last_traded_price"] / div) == (ours.seq, ours.ltp)
    if mode is angel.AngelMode.LTP:
        return
    assert (sdk["last_traded_quantity"], sdk["volume_trade_for_the_day"]) == (ours.ltq, ours.volume)
    assert sdk["average_traded_price"] / div == ours.atp
    assert (sdk["total_buy_quantity"], sdk["total_sell_quantity"]) == (
        ours.total_buy_qty, ours.total_sell_qty,
    )  # fmt: skip
    ohlc = (
        "open_price_of_the_day",
        "high_price_of_the_day",
        "low_price_of_the_day",
        "closed_price",
    )
    assert [sdk[k] / div for k in ohlc] == [ours.open, ours.high, ours.low, ours.close]
    if mode is angel.AngelMode.SNAP_QUOTE:
        _check_angel_snap(sdk, ours, div)


def _check_angel_snap(sdk: dict[str, Any], ours: Tick, div: float) -> None:
    ltt = 0 if ours.ts_last_trade is None else ours.ts_last_trade // NS_PER_SEC
    assert (sdk["last_traded_timestamp"], sdk["open_interest"]) == (ltt, ours.oi)
    limits = (
        "upper_circuit_limit",
        "lower_circuit_limit",
        "52_week_high_price",
        "52_week_low_price",
    )
    assert [sdk[k] / div for k in limits] == [
        ours.upper_circuit, ours.lower_circuit, ours.high_52w, ours.low_52w,
    ]  # fmt: skip
    # The SDK's helper files flag-0 levels under "buy" (crosswise) and _parse_binary_data swaps
    # the two lists back, so the *published* best_5_buy_data holds the flag-1 = true buy levels:
    # our bids. test_angel_sdk_best5_helper_files_sides_crosswise pins the helper's swap itself.
    bids = _levels(sdk["best_5_buy_data"], "price", "quantity", "no of orders", div)
    asks = _levels(sdk["best_5_sell_data"], "price", "quantity", "no of orders", div)
    assert all(r["flag"] == 1 for r in sdk["best_5_buy_data"])
    assert (bids, asks) == _ours(ours.depth)


@pytest.mark.parametrize("mode", list(angel.AngelMode))
@settings(ORACLE, max_examples=ANGEL_EXAMPLES)
@given(seed=SEEDS)
def test_angel_sdk_parser_agrees_with_our_decode(mode: angel.AngelMode, seed: int) -> None:
    # Arrange
    for tick, et, token in angel_batch(seed, mode, ANGEL_PACKETS_PER_EXAMPLE):
        packet = angel.encode_packet(tick, mode, exchange_type=et, token=token)
        # Act
        ours = angel.decode_packet(packet, ts_recv=tick.ts_recv)
        sdk = ANGEL_SDK._parse_binary_data(packet)
        # Assert
        assert ours.rejects == [] and ours.ticks == [tick]
        _check_angel(sdk, ours.ticks[0], mode, et, token)


def test_angel_sdk_best5_helper_files_sides_crosswise() -> None:
    # Arrange: one buy level (flag 1) and one sell level (flag 0).
    tick, et, token = _snap_case()
    packet = angel.encode_packet(tick, angel.AngelMode.SNAP_QUOTE, exchange_type=et, token=token)
    # Act
    helper = ANGEL_SDK._parse_best_5_buy_and_sell_data(packet[147:347])
    published = ANGEL_SDK._parse_binary_data(packet)
    ours = angel.decode_packet(packet, ts_recv=1).ticks[0]
    # Assert: the helper's "sell" list is the buy side; the caller's swap makes "buy" right again.
    assert [r["price"] for r in helper["best_5_sell_data"] if r["quantity"]] == [61230]
    assert [r["price"] for r in helper["best_5_buy_data"] if r["quantity"]] == [61240]
    assert published["best_5_buy_data"] == helper["best_5_sell_data"]
    assert (ours.bid, ours.ask) == (612.3, 612.4)


def _snap_case() -> tuple[Tick, int, str]:
    tick = Tick(
        exchange="NSE", token=3045, symbol="3045", source="angelone",
        ts_exchange=1_700_000_000_000 * 1_000_000, ts_recv=1, seq=1, ltp=612.35, ltq=1,
        atp=612.0, volume=10, total_buy_qty=5, total_sell_qty=7, open=600.0, high=615.0,
        low=599.0, close=605.0, oi=0, upper_circuit=665.5, lower_circuit=544.5,
        high_52w=700.0, low_52w=400.0,
        depth=Depth(bids=(DepthLevel(612.3, 5, 1),), asks=(DepthLevel(612.4, 7, 2),)),
        mode=Mode.FULL,
    )  # fmt: skip
    return tick, 1, "3045"
