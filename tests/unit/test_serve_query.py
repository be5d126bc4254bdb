"""Pure parsing of historical-query parameters and instrument references."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tickstream.calendar import ist_datetime
from tickstream.model import NS_PER_SEC, Instrument
from tickstream.serve.query import parse_key, parse_time, search_universe, time_range
from tickstream.serve.resolve import Resolver
from tickstream.serve.wire import ist_iso

T0 = 1_733_111_100 * NS_PER_SEC  # 2024-12-02T09:15:00+05:30


@pytest.mark.parametrize(
    "text",
    [
        str(T0),
        "2024-12-02T09:15:00+05:30",
        "2024-12-02T09:15:00",  # no offset: IST
        "2024-12-02T03:45:00Z",
        "2024-12-02 03:45:00+00:00",
    ],
)
def test_parse_time_forms_give_same_instant(text: str) -> None:
    assert parse_time(text) == T0


def test_parse_time_keeps_microseconds() -> None:
    assert parse_time("2024-12-02T09:15:00.250000+05:30") == T0 + 250_000_000


@pytest.mark.parametrize("text", ["yesterday", "12", "2024-13-01", "-5"])
def test_parse_time_rejects_with_message(text: str) -> None:
    with pytest.raises(ValueError, match="time"):
        parse_time(text)


def test_time_range_defaults_to_one_day_before_now() -> None:
    assert time_range(None, None, 7 * 86400 * NS_PER_SEC, now_ns=T0) == (
        T0 - 86400 * NS_PER_SEC,
        T0,
    )


def test_time_range_default_start_respects_smaller_cap() -> None:
    assert time_range(None, None, 60 * NS_PER_SEC, now_ns=T0) == (T0 - 60 * NS_PER_SEC, T0)


def test_time_range_too_long_names_the_cap() -> None:
    with pytest.raises(ValueError, match="at most 2 days"):
        time_range(str(T0), str(T0 + 3 * 86400 * NS_PER_SEC), 2 * 86400 * NS_PER_SEC, now_ns=T0)


@given(st.integers(0, 10**6))
def test_time_range_accepts_any_span_within_cap(span_s: int) -> None:
    start, end = str(T0), str(T0 + (span_s + 1) * NS_PER_SEC)
    assert time_range(start, end, 10**7 * NS_PER_SEC, now_ns=0) == (int(start), int(end))


def test_parse_key_known_exchange_only() -> None:
    assert parse_key("nse:2885") == ("NSE", 2885)
    assert parse_key("LSE:1") is None
    assert parse_key("NSE:abc") is None
    assert parse_key("2885") is None


UNIVERSE = [
    Instrument(exchange="NSE", token=2885, symbol="RELIANCE", name="Reliance Industries"),
    Instrument(exchange="BSE", token=500325, symbol="RELIANCE", name="Reliance Industries"),
    Instrument(exchange="NSE", token=1594, symbol="INFY", name="Infosys"),
    Instrument(exchange="NSE", token=7, symbol="RELINFRA", name="Reliance Infrastructure"),
]


def test_search_universe_exact_then_prefix_then_substring() -> None:
    hits = search_universe(UNIVERSE, "rel", None, 10)
    assert [(i.symbol, i.exchange) for i in hits] == [
        ("RELIANCE", "BSE"),
        ("RELIANCE", "NSE"),
        ("RELINFRA", "NSE"),
    ]
    assert [i.symbol for i in search_universe(UNIVERSE, "infosys", "NSE", 10)] == ["INFY"]


def test_resolver_forms_and_ambiguity() -> None:
    r = Resolver(UNIVERSE)
    assert r.resolve(1594) == UNIVERSE[2]
    assert r.resolve("1594") == UNIVERSE[2]
    assert r.resolve("NSE:2885") == UNIVERSE[0]
    assert r.resolve("bse:reliance") == UNIVERSE[1]
    assert (
        r.resolve("RELIANCE") == "ambiguous 'RELIANCE' (BSE:500325, NSE:2885); use EXCHANGE:TOKEN"
    )
    assert r.resolve("NSE:9") == "unknown instrument 'NSE:9'"
    assert r.resolve(True) == "expected a token (int), EXCHANGE:TOKEN or a symbol"
    assert r.resolve({"x": 1}) == "expected a token (int), EXCHANGE:TOKEN or a symbol"


@given(st.one_of(st.integers(), st.text(max_size=80), st.none(), st.floats()))
def test_resolver_never_raises(ref: object) -> None:
    out = Resolver(UNIVERSE).resolve(ref)
    assert isinstance(out, str | Instrument)


@given(st.integers(0, 4_102_444_800 * NS_PER_SEC))
def test_ist_iso_equals_aware_datetime_isoformat(ts_ns: int) -> None:
    assert ist_iso(ts_ns) == ist_datetime(ts_ns).isoformat()
