from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import msgspec
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tickstream.model import Tick
from tickstream.storage.base import (
    CANDLE_COLUMNS,
    TICK_COLUMNS,
    candle_row,
    tick_columns,
    tick_id_of,
    tick_rows,
)
from tickstream.storage.columnar import (
    candle_table,
    encode_ticks,
    first_of_each_key,
    key_order,
    tick_records,
    tick_table,
    unique_tick_records,
)

from conformance.store_suite import make_candle, make_tick


def _batch(indexes: list[int], bare: bool) -> list[Tick]:
    ticks = [make_tick(i) for i in indexes]
    if bare:
        ticks.append(make_tick(7, seq=None, depth=None, ltp=None, volume=None, source="replay"))
    return ticks


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 300), min_size=1, max_size=40), st.booleans())
def test_columnar_tick_table_any_batch_equals_tick_columns(indexes: list[int], bare: bool) -> None:
    ticks = _batch(indexes, bare)
    expected = tick_columns(ticks)
    table = tick_table(ticks)
    assert tuple(table.column_names) == TICK_COLUMNS
    assert [table.column(c).to_pylist() for c in TICK_COLUMNS] == list(expected)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 300), min_size=1, max_size=40), st.booleans())
def test_columnar_tick_records_any_batch_equal_tick_rows(indexes: list[int], bare: bool) -> None:
    ticks = _batch(indexes, bare)
    records = tick_records(ticks)
    assert records == tick_rows(ticks)


def test_columnar_encode_ticks_payloads_and_ids_match_single_encoding() -> None:
    ticks = [make_tick(i) for i in range(20)]  # > 15 elements: a 3-byte msgpack array header
    enc = encode_ticks(tuple(ticks))
    singles = [msgspec.msgpack.encode(t) for t in ticks]
    assert [bytes(p) for p in enc.payloads] == singles
    assert enc.tick_ids.tolist() == [tick_id_of(p) for p in singles]
    assert enc.tick_ids.dtype == np.int64


def test_columnar_first_of_each_key_distinct_batch_returns_none() -> None:
    ticks = [make_tick(i) for i in range(5)]
    assert first_of_each_key(ticks, encode_ticks(ticks).tick_ids) is None


def test_columnar_first_of_each_key_repeats_keeps_first_positions() -> None:
    a, b, c = make_tick(0), make_tick(1), make_tick(2)
    ticks = [a, b, a, c, b, a]
    assert first_of_each_key(ticks, encode_ticks(ticks).tick_ids) == [0, 1, 3]


def _key(row: tuple[object, ...]) -> tuple[object, ...]:
    return row[:5]


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 30), st.sampled_from([2885, 11536, 7]), st.sampled_from("NB")),
        min_size=1,
        max_size=40,
    )
)
def test_columnar_unique_tick_records_any_batch_first_of_each_key_in_key_order(
    specs: list[tuple[int, int, str]],
) -> None:
    ticks = [make_tick(i, token=tok, exchange=ex + "SE") for i, tok, ex in specs]
    expected: dict[tuple[object, ...], tuple[object, ...]] = {}
    for row in tick_rows(ticks):
        expected.setdefault(_key(row), row)
    got = unique_tick_records(ticks)
    assert got == [expected[k] for k in sorted(expected)]


def test_columnar_key_order_sorts_exchange_then_token_then_times() -> None:
    ticks = [
        make_tick(3, token=9),
        make_tick(1, token=9),
        make_tick(2, token=5),
        make_tick(0, exchange="BSE", token=99),
    ]
    assert key_order(ticks, encode_ticks(ticks).tick_ids).tolist() == [3, 2, 1, 0]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=70))
def test_columnar_tick_table_nulls_anywhere_and_non_ascii_equal_tick_columns(
    bare: list[bool],
) -> None:
    ticks = [
        make_tick(i, seq=None, ltp=None, volume=None, source="réplay·β") if b else make_tick(i)
        for i, b in enumerate(bare)
    ]
    table = tick_table(ticks)
    assert [table.column(c).to_pylist() for c in TICK_COLUMNS] == list(tick_columns(ticks))


def test_columnar_store_write_does_not_import_pandas(tmp_path: Path) -> None:
    script = (
        "import asyncio, sys\n"
        "from tickstream.storage.duckdb_store import DuckDBStore\n"
        "from conformance.store_suite import make_candle, make_tick\n"
        "async def main():\n"
        f"    s = DuckDBStore({str(tmp_path / 't.duckdb')!r})\n"
        "    await s.open()\n"
        "    n = await s.write_ticks([make_tick(i) for i in range(50)])\n"
        "    n += await s.write_candles([make_candle(i) for i in range(5)])\n"
        "    await s.close()\n"
        "    print(n, 'pandas' in sys.modules)\n"
        "asyncio.run(main())\n"
    )
    tests_dir = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True, text=True, check=True, cwd=tests_dir,
        env={**os.environ, "PYTHONPATH": str(tests_dir)},
    )  # fmt: skip
    assert out.stdout.split() == ["55", "False"]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=40))
def test_columnar_candle_table_any_rows_equal_pyarrow_from_pylist(
    flags: list[tuple[bool, bool]],
) -> None:
    candles = [
        make_candle(i, oi=None, indicators=None, partial=p)
        if bare
        else make_candle(i, oi=500 + i, partial=p)
        for i, (bare, p) in enumerate(flags)
    ]
    rows = [candle_row(c) for c in candles]
    table = candle_table(rows)
    assert tuple(table.column_names) == CANDLE_COLUMNS
    assert table.to_pylist() == [r._asdict() for r in rows]
