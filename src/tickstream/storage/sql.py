"""SQL fragments shared by the DuckDB and PostgreSQL stores (both accept ``$n`` parameters).

Constants only: no SQL here is ever built from a value; values are always bound parameters.
"""

from __future__ import annotations

from collections.abc import Sequence

from tickstream.model import Candle

__all__ = ["CANDLE_UPSERT_SET", "INSTRUMENT_SEARCH", "latest_candles"]

_CANDLE_VALUE_COLUMNS = (
    "symbol",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "oi",
    "ticks",
    "partial",
    "incomplete",
    "revision",
    "indicators",
)
CANDLE_UPSERT_SET = ", ".join(f"{c} = excluded.{c}" for c in _CANDLE_VALUE_COLUMNS)

# $1 = query text, $2 = exchange or NULL, $3 = limit. Case-insensitive substring of symbol or
# name; exact symbol first, then symbol prefix, then shorter symbols, then alphabetical.
INSTRUMENT_SEARCH = """
SELECT payload FROM instruments
WHERE (strpos(lower(symbol), lower($1)) > 0 OR strpos(lower(coalesce(name, '')), lower($1)) > 0)
  AND (CAST($2 AS TEXT) IS NULL OR exchange = $2)
ORDER BY (lower(symbol) = lower($1)) DESC, (strpos(lower(symbol), lower($1)) = 1) DESC,
         length(symbol), symbol, exchange
LIMIT $3
"""


def latest_candles(candles: Sequence[Candle]) -> list[Candle]:
    """One candle per (exchange, token, interval, start): the highest revision, the last on ties.

    An upsert statement may not touch the same row twice, so a batch is reduced first.
    """
    best: dict[tuple[str, int, str, int], Candle] = {}
    for c in candles:
        k = (c.exchange, c.token, c.interval.value, c.start)
        prev = best.get(k)
        if prev is None or c.revision >= prev.revision:
            best[k] = c
    return list(best.values())
