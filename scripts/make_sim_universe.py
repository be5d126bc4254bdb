"""Generate ``src/tickstream/sim/universe.json`` from the real public data in ``../shared/data``.

Run once (``.venv/bin/python scripts/make_sim_universe.py [DATA_DIR]``); the JSON is committed and
the package loads it at run time, so nothing outside the package is read by the simulator.

What goes in:

* NIFTY 50 and NIFTY BANK indices (Kite instrument_token / exchange_token from the Kite NSE dump,
  Angel tokens 99926000 / 99926009 from the Angel master).
* The NIFTY 50 constituents (Nov 2024 list) that appear in all three of the NSE Nifty 500 list, the
  Kite NSE dump (2023-09-17) and the Angel NSE equity master (2025-06-29). For every NSE equity
  the script checks that Kite's ``exchange_token`` equals Angel's ``token`` and refuses to write
  the file otherwise (all 50 match). Tick sizes differ between the two dumps for most names (NSE
  revised them in 2025); Kite's are kept.
* One NIFTY option chain: the nearest expiry of the Kite NFO dump, ``STRIKES`` strikes centred on
  the NIFTY reference level, CE and PE, lot and tick size from the file. No Angel NFO master of that
  date is public, so the Angel token of an option is Kite's exchange_token (the documented identity
  for NFO).

Reference previous-close prices: the last close of the real 1-minute OHLCV files (2023-06-01) where
there is one, otherwise a plausible fixed level (a table below, ~2023 levels, rounded), otherwise a
deterministic level derived from the symbol. NIFTY's reference is the centre of the 2026 option
chain so that the chain is around the money.
"""

from __future__ import annotations

import csv
import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "src" / "tickstream" / "sim" / "universe.json"
STRIKES = 20

NIFTY50 = [
    "ADANIENT",
    "ADANIPORTS",
    "APOLLOHOSP",
    "ASIANPAINT",
    "AXISBANK",
    "BAJAJ-AUTO",
    "BAJFINANCE",
    "BAJAJFINSV",
    "BEL",
    "BHARTIARTL",
    "BPCL",
    "BRITANNIA",
    "CIPLA",
    "COALINDIA",
    "DRREDDY",
    "EICHERMOT",
    "GRASIM",
    "HCLTECH",
    "HDFCBANK",
    "HDFCLIFE",
    "HEROMOTOCO",
    "HINDALCO",
    "HINDUNILVR",
    "ICICIBANK",
    "INDUSINDBK",
    "INFY",
    "ITC",
    "JSWSTEEL",
    "KOTAKBANK",
    "LT",
    "M&M",
    "MARUTI",
    "NESTLEIND",
    "NTPC",
    "ONGC",
    "POWERGRID",
    "RELIANCE",
    "SBILIFE",
    "SBIN",
    "SHRIRAMFIN",
    "SUNPHARMA",
    "TATACONSUM",
    "TATAMOTORS",
    "TATASTEEL",
    "TCS",
    "TECHM",
    "TITAN",
    "TRENT",
    "ULTRACEMCO",
    "WIPRO",
]

# Plausible previous-close levels (rupees, rounded) for names without a real OHLCV file.
LEVELS = {
    "ADANIENT": 2400,
    "ADANIPORTS": 800,
    "APOLLOHOSP": 5000,
    "ASIANPAINT": 3200,
    "BAJAJ-AUTO": 4700,
    "BAJFINANCE": 7200,
    "BAJAJFINSV": 1550,
    "BEL": 130,
    "BHARTIARTL": 880,
    "BPCL": 350,
    "BRITANNIA": 4700,
    "CIPLA": 1250,
    "COALINDIA": 280,
    "DRREDDY": 5500,
    "EICHERMOT": 3400,
    "GRASIM": 1900,
    "HCLTECH": 1250,
    "HDFCLIFE": 650,
    "HEROMOTOCO": 3000,
    "HINDALCO": 480,
    "HINDUNILVR": 2500,
    "INDUSINDBK": 1450,
    "INFY": 1500,
    "ITC": 450,
    "JSWSTEEL": 800,
    "LT": 2900,
    "M&M": 1550,
    "MARUTI": 10300,
    "NESTLEIND": 22000,
    "NTPC": 230,
    "ONGC": 185,
    "POWERGRID": 200,
    "RELIANCE": 2400,
    "SBILIFE": 1350,
    "SHRIRAMFIN": 1900,
    "SUNPHARMA": 1150,
    "TATACONSUM": 850,
    "TATAMOTORS": 620,
    "TATASTEEL": 125,
    "TCS": 3500,
    "TECHM": 1250,
    "TITAN": 3200,
    "TRENT": 2000,
    "ULTRACEMCO": 8400,
    "WIPRO": 410,
}
NIFTY_LEVEL = 24600.0


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _last_close(path: Path) -> float:
    rows = _read_csv(path)
    return float(rows[-1]["close"])


def _fallback_level(symbol: str) -> float:
    digest = hashlib.sha256(symbol.encode()).digest()
    return float(100 + int.from_bytes(digest[:4], "big") % 2900)


def _reference(symbol: str, data: Path) -> float:
    files = sorted((data / "ohlcv_1min").glob(f"{symbol}_1min_*.csv"))
    if files:
        return _last_close(files[0])
    return float(LEVELS.get(symbol, _fallback_level(symbol)))


def _indices(
    kite_nse: dict[str, dict[str, str]], data: Path
) -> list[tuple[dict[str, object], float]]:
    out = []
    for sym, angel, ref in (
        ("NIFTY 50", "99926000", NIFTY_LEVEL),
        ("NIFTY BANK", "99926009", _reference("BANKNIFTY", data)),
    ):
        row = kite_nse[sym]
        out.append(
            (
                {
                    "exchange": "INDICES",
                    "token": int(row["exchange_token"]),
                    "symbol": sym,
                    "name": row["name"],
                    "instrument_type": "INDEX",
                    "segment": "INDICES",
                    "kite_token": int(row["instrument_token"]),
                    "angel_token": angel,
                    "tick_size": 0.05,
                },
                ref,
            )
        )
    return out


def _equities(
    kite_nse: dict[str, dict[str, str]], data: Path
) -> list[tuple[dict[str, object], float]]:
    n500 = {r["Symbol"]: r for r in _read_csv(data / "nse" / "ind_nifty500list.csv")}
    angel = {
        r["symbol"]: r
        for r in json.loads(
            (data / "angel" / "angel_scripmaster_nse_eq_2025-06-29.json").read_text()
        )
    }
    out = []
    for sym in NIFTY50:
        k, a, n = kite_nse.get(sym), angel.get(f"{sym}-EQ"), n500.get(sym)
        if k is None or a is None or n is None or k["segment"] != "NSE":
            print(f"skip {sym}: kite={k is not None} angel={a is not None} n500={n is not None}")
            continue
        if int(k["exchange_token"]) != int(a["token"]):
            raise SystemExit(
                f"{sym}: kite exchange_token {k['exchange_token']} != angel {a['token']}"
            )
        tick = float(k["tick_size"])
        if abs(float(a["tick_size"]) / 100 - tick) > 1e-9:
            # tick sizes are revised over time (the two dumps are 2023 and 2025): keep Kite's
            print(f"note {sym}: tick size kite {tick} angel {float(a['tick_size']) / 100}")
        inst = {
            "exchange": "NSE",
            "token": int(k["exchange_token"]),
            "symbol": sym,
            "name": n["Company Name"],
            "instrument_type": "EQ",
            "segment": "NSE",
            "kite_token": int(k["instrument_token"]),
            "angel_token": a["token"],
            "lot_size": int(k["lot_size"]),
            "tick_size": tick,
            "isin": n["ISIN Code"],
        }
        out.append((inst, _reference(sym, data)))
    return out


def _options(data: Path) -> list[tuple[dict[str, object], float]]:
    rows = [
        r
        for r in _read_csv(data / "kite" / "kite_instruments_nfo_bfo_2026-08-18.csv")
        if r["name"] == "NIFTY" and r["segment"] == "NFO-OPT"
    ]
    expiry = min(r["expiry"] for r in rows)
    chain = [r for r in rows if r["expiry"] == expiry]
    strikes = sorted({float(r["strike"]) for r in chain}, key=lambda s: (abs(s - NIFTY_LEVEL), s))
    chosen = set(strikes[:STRIKES])
    out = []
    for r in sorted(chain, key=lambda r: (float(r["strike"]), r["instrument_type"])):
        if float(r["strike"]) not in chosen:
            continue
        inst = {
            "exchange": "NFO",
            "token": int(r["exchange_token"]),
            "symbol": r["tradingsymbol"],
            "name": "NIFTY",
            "instrument_type": r["instrument_type"],
            "segment": "NFO-OPT",
            "kite_token": int(r["instrument_token"]),
            "angel_token": r["exchange_token"],
            "lot_size": int(r["lot_size"]),
            "tick_size": float(r["tick_size"]),
            "expiry": expiry,
            "strike": float(r["strike"]),
        }
        out.append((inst, 0.0))  # options are priced from the underlying by the market model
    return out


def main(data: Path) -> None:
    kite_nse = {
        r["tradingsymbol"]: r
        for r in _read_csv(data / "kite" / "kite_instruments_nse_2023-09-17.csv")
    }
    rows = _indices(kite_nse, data) + _equities(kite_nse, data) + _options(data)
    doc = {
        "sources": "see scripts/make_sim_universe.py and shared/data/SOURCES.md",
        "instruments": [inst for inst, _ in rows],
        "reference_prices": {f"{i['exchange']}:{i['token']}": p for i, p in rows if p > 0},
    }
    OUT.write_text(json.dumps(doc, separators=(",", ":"), ensure_ascii=False) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, {len(rows)} instruments)")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "data")
