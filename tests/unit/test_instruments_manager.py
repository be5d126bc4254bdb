"""The InstrumentManager over the real public masters in ../shared/data (see its SOURCES.md)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tickstream.feeds.angelone.instruments import parse_scrip_master
from tickstream.feeds.instruments import InstrumentManager, MasterError
from tickstream.feeds.kite.instruments import parse_kite_instruments

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
KITE_NSE = DATA / "kite" / "kite_instruments_nse_2023-09-17.csv"
KITE_NFO = DATA / "kite" / "kite_instruments_nfo_bfo_2026-08-18.csv"
ANGEL_EQ = DATA / "angel" / "angel_scripmaster_nse_eq_2025-06-29.json"
ANGEL_IDX = DATA / "angel" / "angel_OpenAPIScripMaster_verbatim_first72.json"
NIFTY500 = DATA / "nse" / "ind_nifty500list.csv"

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason="shared data folder not present")

# Nifty 500 (Nov 2024) symbols absent from both the 2023 Kite dump and the 2025 Angel subset.
EXCLUDED = ("ABREL", "AEGISLOG", "ARE&M", "GVT&D", "LTF", "SAMMAANCAP", "UNITDSPR", "WELSPUNLIV")


@pytest.fixture(scope="module")
def manager() -> InstrumentManager:
    m = InstrumentManager()
    m.load_files(universe=NIFTY500, angel=ANGEL_EQ, kite=[KITE_NSE])
    return m


def test_instruments_real_masters_cross_reference_reliance(manager: InstrumentManager) -> None:
    inst = manager.get_instrument("reliance")

    assert inst is not None
    assert (inst.exchange, inst.token, inst.symbol) == ("NSE", 2885, "RELIANCE")
    assert (inst.kite_token, inst.angel_token) == (738561, "2885")
    assert (inst.lot_size, inst.tick_size, inst.isin) == (1, 0.05, "INE002A01018")
    assert inst.name == "Reliance Industries Ltd."


def test_instruments_report_counts_and_missing_symbols(manager: InstrumentManager) -> None:
    report = manager.report

    assert (report.kite, report.angel, report.universe) == (5669, 2069, 492)
    assert report.excluded == EXCLUDED
    assert len(report.missing_kite) == 21 and "TATATECH" in report.missing_kite
    assert len(report.missing_angel) == 3 and "TTML" in report.missing_angel
    assert len(manager.get_all_tokens("kite")) == 492 - 21
    assert len(manager.get_all_tokens("angelone")) == 492 - 3


def test_instruments_every_unfound_symbol_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    m = InstrumentManager()

    with caplog.at_level(logging.WARNING, logger="tickstream.feeds.instruments"):
        report = m.load_files(universe=NIFTY500, angel=ANGEL_EQ, kite=[KITE_NSE])

    logged = {r.getMessage().split()[1] for r in caplog.records}
    assert logged == set(report.excluded) | set(report.missing_kite) | set(report.missing_angel)


def test_instruments_token_lookups_both_brokers(manager: InstrumentManager) -> None:
    assert manager.get_symbol_by_token(738561) == "RELIANCE"
    assert manager.get_symbol_by_token("1594", broker="angelone") == "INFY"
    assert manager.get_symbol_by_token(1333, broker="exchange") == "HDFCBANK"
    assert manager.get_symbol_by_token(1, broker="kite") is None


def test_instruments_search_prefix_then_name_then_fuzzy(manager: InstrumentManager) -> None:
    assert manager.search("RELI")[0].symbol == "RELIANCE"
    assert manager.search("infosys")[0].symbol == "INFY"  # company-name prefix
    assert manager.search("HDFCBNK")[0].symbol == "HDFCBANK"  # fuzzy
    assert [i.symbol for i in manager.search("TCS", limit=1)] == ["TCS"]
    assert manager.search("  ") == []


def test_instruments_indices_matched_by_symbol_across_brokers() -> None:
    m = InstrumentManager()
    m.load_kite(KITE_NSE.read_text())

    m.load_angel(ANGEL_IDX.read_bytes())
    nifty = m.get_instrument("NIFTY 50", "INDICES")
    bank = m.get_instrument("NIFTY BANK", "INDICES")

    assert nifty is not None and (nifty.token, nifty.kite_token, nifty.angel_token) == (
        1001, 256265, "99926000",
    )  # fmt: skip
    assert bank is not None and (bank.kite_token, bank.angel_token) == (260105, "99926009")


@pytest.mark.parametrize(
    ("loader", "payload"),
    [
        ("load_kite", ""),
        ("load_kite", "instrument_token,exchange_token\n1,2\n"),
        ("load_kite", KITE_NSE.read_text().splitlines()[0] + "\n"),
        ("load_angel", b"[]"),
        ("load_angel", b'{"token": "1"'),
        ("load_angel", b'[{"token": "x1", "symbol": "A-EQ", "name": "A", "expiry": "", '
                       b'"strike": "-1", "lotsize": "1", "instrumenttype": "", '
                       b'"exch_seg": "NSE", "tick_size": "5"}]'),
        ("load_universe", "Symbol\n"),
    ],
)  # fmt: skip
def test_instruments_bad_master_rejected_last_good_kept(
    manager: InstrumentManager, loader: str, payload: str | bytes
) -> None:
    before = manager.instruments()

    with pytest.raises(MasterError):
        getattr(manager, loader)(payload)

    assert manager.instruments() == before
    assert manager.get_symbol_by_token(738561) == "RELIANCE"


def test_kite_parser_real_nfo_option_row() -> None:
    rows = parse_kite_instruments(KITE_NFO.read_text())
    opt = next(i for i in rows if i.symbol == "NIFTY2681824350CE")

    assert len(rows) == 39941
    assert (opt.exchange, opt.token, opt.kite_token) == ("NFO", 45104, 11546626)
    assert (opt.expiry, opt.strike, opt.lot_size, opt.tick_size) == (
        "2026-08-18",
        24350.0,
        65,
        0.05,
    )
    assert opt.instrument_type == "CE"


def test_angel_parser_paise_fields_and_expiry() -> None:
    rows = parse_scrip_master(
        (DATA / "angel" / "angel_scripmaster_idx_nfo_2025-04-08.json").read_bytes()
    )
    opt = next(i for i in rows if i.symbol == "NIFTY09APR2521550PE")

    assert (opt.exchange, opt.token, opt.angel_token) == ("NFO", 43821, "43821")
    assert (opt.expiry, opt.strike, opt.lot_size, opt.tick_size) == (
        "2025-04-09",
        21550.0,
        75,
        0.05,
    )
