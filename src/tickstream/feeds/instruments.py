"""InstrumentManager: Kite's dump, Angel's scrip master and the Nifty 500 list, cross-referenced.

Records are keyed by ``(exchange, exchange token)``: for NSE/BSE/NFO/BFO Kite's
``exchange_token`` is Angel's ``token``, so one record carries both brokers' tokens. Indices have
broker-specific tokens and are matched by symbol (Kite ``NIFTY 50`` = Angel ``Nifty 50``). The
Nifty 500 list, when loaded, is the *universe*: each of its symbols is looked up among the NSE
records, and every symbol missing from a master is logged (missing from both: excluded).

Each master is validated as a whole before it replaces the previous one: an empty or malformed
master raises :class:`MasterError` and the last good one stays in use.
"""

from __future__ import annotations

import csv
import difflib
import io
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import msgspec

from tickstream.feeds.angelone.instruments import parse_scrip_master
from tickstream.feeds.kite.instruments import MasterError, parse_kite_instruments
from tickstream.model import Instrument

__all__ = ["InstrumentManager", "LoadReport", "MasterError", "cross_reference", "parse_nifty500"]

log = logging.getLogger(__name__)

_NIFTY500_HEADER = ["Company Name", "Industry", "Symbol", "Series", "ISIN Code"]


class UniverseRow(msgspec.Struct, frozen=True):
    symbol: str
    name: str
    series: str
    isin: str


class LoadReport(msgspec.Struct, frozen=True, kw_only=True):
    """What a load produced: record counts and the universe symbols a master lacks."""

    kite: int
    angel: int
    merged: int
    universe: int
    missing_kite: tuple[str, ...] = ()
    missing_angel: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()


def parse_nifty500(text: str) -> list[UniverseRow]:
    """NSE's ``ind_nifty500list.csv``; MasterError for a wrong header or no rows."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    if next(reader, None) != _NIFTY500_HEADER:
        raise MasterError("nifty 500 list: unexpected header")
    rows = []
    for n, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != 5 or not row[2].strip():
            raise MasterError(f"nifty 500 list line {n}: malformed")
        name, _, symbol, series, isin = (v.strip() for v in row)
        rows.append(UniverseRow(symbol, name, series, isin))
    if not rows:
        raise MasterError("nifty 500 list: no rows")
    return rows


def _index_name(symbol: str) -> str:
    return " ".join(symbol.upper().split())


def cross_reference(kite: Iterable[Instrument], angel: Iterable[Instrument]) -> list[Instrument]:
    """Kite records with Angel's token added (by exchange token, indices by symbol), plus the
    records only one broker has."""
    merged: dict[tuple[str, int], Instrument] = {(i.exchange, i.token): i for i in kite}
    indices = {_index_name(i.symbol): k for k, i in merged.items() if i.exchange == "INDICES"}
    for a in angel:
        key = indices.get(_index_name(a.symbol)) if a.exchange == "INDICES" else None
        key = key or (a.exchange, a.token)
        k = merged.get(key)
        if k is None or (a.exchange == "INDICES") != (k.exchange == "INDICES"):
            merged.setdefault((a.exchange, a.token), a)
            continue
        if k.symbol != a.symbol and k.exchange != "INDICES":
            log.debug("instruments: %s:%d is %s on Kite, %s on Angel", *key, k.symbol, a.symbol)
        merged[key] = msgspec.structs.replace(
            k, angel_token=a.angel_token, lot_size=k.lot_size or a.lot_size,
            tick_size=k.tick_size or a.tick_size,
        )  # fmt: skip
    return list(merged.values())


class InstrumentManager:
    """Cross-referenced instruments and look-ups; see the module docstring."""

    def __init__(self) -> None:
        self._kite: list[Instrument] = []
        self._angel: list[Instrument] = []
        self._universe_rows: list[UniverseRow] = []
        self._records: list[Instrument] = []
        self._universe: list[Instrument] = []
        self._by_symbol: dict[tuple[str, str], Instrument] = {}
        self._by_kite: dict[int, Instrument] = {}
        self._by_angel: dict[tuple[str, str], Instrument] = {}
        self._by_key: dict[tuple[str, int], Instrument] = {}
        self.report = LoadReport(kite=0, angel=0, merged=0, universe=0)

    # ------------------------------------------------------------------------------ loading
    def load_kite(self, *texts: str) -> LoadReport:
        """Kite dumps (one per exchange, or the full one); all must parse or none is used."""
        rows = [inst for text in texts for inst in parse_kite_instruments(text)]
        self._kite = rows
        return self._rebuild()

    def load_angel(self, data: bytes | str) -> LoadReport:
        self._angel = parse_scrip_master(data)
        return self._rebuild()

    def load_universe(self, text: str) -> LoadReport:
        self._universe_rows = parse_nifty500(text)
        return self._rebuild()

    def load_files(
        self, *, universe: Path | None = None, angel: Path | None = None,
        kite: Sequence[Path] = (),
    ) -> LoadReport:  # fmt: skip
        """Load whichever files are given (each validated before it replaces the old one)."""
        new_kite = [i for p in kite for i in parse_kite_instruments(p.read_text("utf-8"))]
        new_angel = parse_scrip_master(angel.read_bytes()) if angel is not None else None
        new_rows = parse_nifty500(universe.read_text("utf-8")) if universe is not None else None
        self._kite = new_kite or self._kite
        self._angel = self._angel if new_angel is None else new_angel
        self._universe_rows = self._universe_rows if new_rows is None else new_rows
        return self._rebuild()

    def _rebuild(self) -> LoadReport:
        records = cross_reference(self._kite, self._angel)
        by_symbol = {(i.exchange, i.symbol.upper()): i for i in records}
        for inst in records:
            by_symbol.setdefault(("", inst.symbol.upper()), inst)
        self._records, self._by_symbol = records, by_symbol
        self._by_key = {(i.exchange, i.token): i for i in records}
        self._by_kite = {i.kite_token: i for i in records if i.kite_token is not None}
        self._by_angel = {
            ("INDICES" if i.exchange == "INDICES" else i.exchange, i.angel_token): i
            for i in records
            if i.angel_token is not None
        }
        self._universe, self.report = self._resolve_universe()
        for inst in self._universe:
            self._by_symbol[(inst.exchange, inst.symbol.upper())] = inst
            self._by_key[(inst.exchange, inst.token)] = inst
        return self.report

    def _resolve_universe(self) -> tuple[list[Instrument], LoadReport]:
        found: list[Instrument] = []
        missing_kite, missing_angel, excluded = [], [], []
        for row in self._universe_rows:
            inst = self._by_symbol.get(("NSE", row.symbol.upper()))
            if inst is None:
                log.warning(
                    "instruments: %s (Nifty 500) is in neither master; excluded", row.symbol
                )
                excluded.append(row.symbol)
                continue
            if inst.kite_token is None and self._kite:
                log.warning("instruments: %s is not in the Kite dump", row.symbol)
                missing_kite.append(row.symbol)
            if inst.angel_token is None and self._angel:
                log.warning("instruments: %s is not in the Angel scrip master", row.symbol)
                missing_angel.append(row.symbol)
            found.append(msgspec.structs.replace(inst, name=row.name, isin=row.isin or None))
        report = LoadReport(
            kite=len(self._kite), angel=len(self._angel), merged=len(self._records),
            universe=len(found), missing_kite=tuple(missing_kite),
            missing_angel=tuple(missing_angel), excluded=tuple(excluded),
        )  # fmt: skip
        return found, report

    # ------------------------------------------------------------------------------ queries
    def instruments(self) -> list[Instrument]:
        """The universe when a Nifty 500 list is loaded, else every record."""
        return list(self._universe if self._universe_rows else self._records)

    def all_records(self) -> list[Instrument]:
        return list(self._records)

    def get_all_tokens(self, broker: str = "kite") -> list[int] | list[str]:
        """Every broker token of :meth:`instruments`: Kite instrument tokens or Angel tokens."""
        if broker == "kite":
            return [i.kite_token for i in self.instruments() if i.kite_token is not None]
        if broker == "angelone":
            return [i.angel_token for i in self.instruments() if i.angel_token is not None]
        raise ValueError(f"unknown broker {broker!r}; expected kite or angelone")

    def get_symbol_by_token(
        self, token: int | str, *, broker: str = "kite", exchange: str = "NSE"
    ) -> str | None:
        """The symbol of a Kite instrument token, an Angel token, or an exchange token."""
        inst: Instrument | None
        if broker == "kite":
            inst = self._by_kite.get(int(token))
        elif broker == "angelone":
            inst = self._by_angel.get((exchange, str(token)))
        else:
            inst = self._by_key.get((exchange, int(token)))
        return inst.symbol if inst is not None else None

    def get_instrument(self, symbol: str, exchange: str | None = None) -> Instrument | None:
        """The record of ``symbol`` (case-insensitive) on ``exchange`` (any, NSE first)."""
        key = symbol.strip().upper()
        if exchange is not None:
            return self._by_symbol.get((exchange, key))
        return self._by_symbol.get(("NSE", key)) or self._by_symbol.get(("", key))

    def symbols(self) -> list[str]:
        return sorted({i.symbol for i in self.instruments()})

    def search(self, query: str, limit: int = 10) -> list[Instrument]:
        """Prefix matches on symbol then name (shortest first), then fuzzy symbol matches."""
        q = query.strip().upper()
        if not q:
            return []
        pool = self.instruments()
        prefix = [i for i in pool if i.symbol.upper().startswith(q)]
        prefix.sort(key=lambda i: (len(i.symbol), i.symbol))
        taken = {id(i) for i in prefix}
        named = [i for i in pool if id(i) not in taken and (i.name or "").upper().startswith(q)]
        out = (prefix + named)[:limit]
        if len(out) < limit:
            by_upper = {i.symbol.upper(): i for i in pool}
            for match in difflib.get_close_matches(q, list(by_upper), n=limit, cutoff=0.6):
                if all(by_upper[match] is not o for o in out):
                    out.append(by_upper[match])
        return out[:limit]
