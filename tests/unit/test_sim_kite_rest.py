"""Simulated Kite Connect REST over ASGI: login, envelopes, instruments, history, limits."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tickstream.calendar import ist_midnight_ns, ist_ns
from tickstream.sim.history import bars, reference_price
from tickstream.sim.kite_rest import KITE_CSV_HEADER, KITE_MAX_DAYS, create_kite_app
from tickstream.sim.rest_auth import AngelSecrets, KiteSecrets, LocalAuthority
from tickstream.sim.universe import default_universe, reference_prices

UNIVERSE = default_universe()
PRICES = reference_prices()
RELIANCE = next(i for i in UNIVERSE if i.symbol == "RELIANCE")
OPTION = next(i for i in UNIVERSE if i.instrument_type == "CE")
KITE_DUMP = Path("/work/shared/data/kite/kite_instruments_nse_2023-09-17.csv")
REAL_HEADER = KITE_DUMP.read_text().splitlines()[0].split(",") if KITE_DUMP.exists() else None
REDIRECT = "http://127.0.0.1/cb"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def authority() -> LocalAuthority:
    return LocalAuthority(
        KiteSecrets(api_key="kitekey", api_secret="kite-secret-xyz"),
        AngelSecrets(
            api_key="ak",
            client_code="C1",
            pin="1234",
            totp_secret="JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
        ),
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def client(authority: LocalAuthority, clock: FakeClock) -> AsyncIterator[httpx.AsyncClient]:
    app = create_kite_app(authority, UNIVERSE, prices=PRICES, redirect_url=REDIRECT, clock=clock)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://kite.test") as c:
        yield c


def _auth(authority: LocalAuthority) -> dict[str, str]:
    token = authority.issue_kite_token()
    return {"X-Kite-Version": "3", "Authorization": f"token kitekey:{token}"}


async def _request_token(client: httpx.AsyncClient) -> str:
    resp = await client.get("/connect/login", params={"api_key": "kitekey", "v": "3"})
    return parse_qs(urlsplit(resp.headers["location"]).query)["request_token"][0]


def _checksum(request_token: str, secret: str = "kite-secret-xyz") -> str:
    return hashlib.sha256(f"kitekey{request_token}{secret}".encode()).hexdigest()


async def test_login_valid_api_key_redirects_with_request_token(client: httpx.AsyncClient) -> None:
    # Act
    resp = await client.get("/connect/login", params={"api_key": "kitekey", "v": "3"})
    # Assert
    assert resp.status_code == 302
    location = urlsplit(resp.headers["location"])
    query = parse_qs(location.query)
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    assert query["action"] == ["login"]
    assert query["status"] == ["success"]
    assert len(query["request_token"][0]) >= 20


async def test_login_unknown_api_key_input_exception(client: httpx.AsyncClient) -> None:
    resp = await client.get("/connect/login", params={"api_key": "nope", "v": "3"})
    assert resp.status_code == 400
    assert resp.json()["error_type"] == "InputException"


async def test_session_token_valid_checksum_issues_working_access_token(
    client: httpx.AsyncClient, authority: LocalAuthority
) -> None:
    request_token = await _request_token(client)
    form = {"api_key": "kitekey", "request_token": request_token}
    # Act
    resp = await client.post("/session/token", data={**form, "checksum": _checksum(request_token)})
    # Assert
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "success"
    data = body["data"]
    assert data["api_key"] == "kitekey"
    assert authority.kite_token_valid(data["access_token"])
    assert len(data["login_time"]) == 19
    assert "kite-secret-xyz" not in resp.text


async def test_session_token_wrong_checksum_403_token_exception(
    client: httpx.AsyncClient, authority: LocalAuthority
) -> None:
    request_token = await _request_token(client)
    bad = _checksum(request_token, secret="wrong")
    # Act
    resp = await client.post(
        "/session/token",
        data={"api_key": "kitekey", "request_token": request_token, "checksum": bad},
    )
    # Assert
    assert resp.status_code == 403
    assert resp.json() == {
        "status": "error",
        "message": "Invalid `checksum`.",
        "data": None,
        "error_type": "TokenException",
    }


async def test_session_token_reused_request_token_403(client: httpx.AsyncClient) -> None:
    request_token = await _request_token(client)
    form = {"api_key": "kitekey", "request_token": request_token}
    form["checksum"] = _checksum(request_token)
    first = await client.post("/session/token", data=form)
    # Act
    second = await client.post("/session/token", data=form)
    # Assert
    assert first.status_code == 200
    assert second.status_code == 403
    assert second.json()["message"] == "Token is invalid or has expired."


async def test_instruments_all_csv_header_and_rows_match_universe(
    client: httpx.AsyncClient, authority: LocalAuthority
) -> None:
    # Act
    resp = await client.get("/instruments", headers=_auth(authority))
    # Assert
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(resp.text)))
    assert tuple(rows[0]) == KITE_CSV_HEADER
    assert REAL_HEADER is None or rows[0] == REAL_HEADER
    assert [int(r[0]) for r in rows[1:]] == [i.kite_token for i in UNIVERSE]
    by_symbol = {r[2]: r for r in rows[1:]}
    assert by_symbol["RELIANCE"] == [
        "738561", "2885", "RELIANCE", RELIANCE.name, "0.0", "", "0.0", "0.05", "1", "EQ", "NSE",
        "NSE",
    ]  # fmt: skip
    assert by_symbol["NIFTY 50"] == [
        "256265", "1001", "NIFTY 50", "NIFTY 50", "0.0", "", "0.0", "0.0", "0", "EQ", "INDICES",
        "NSE",
    ]  # fmt: skip
    opt = by_symbol[OPTION.symbol]
    assert opt[5:] == [OPTION.expiry, str(OPTION.strike), "0.05", "65", "CE", "NFO-OPT", "NFO"]


async def test_instruments_by_exchange_only_that_exchange(
    client: httpx.AsyncClient, authority: LocalAuthority
) -> None:
    resp = await client.get("/instruments/NFO", headers=_auth(authority))
    rows = list(csv.reader(io.StringIO(resp.text)))[1:]
    assert len(rows) == sum(1 for i in UNIVERSE if i.exchange == "NFO")
    assert {r[-1] for r in rows} == {"NFO"}


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "token kitekey:forged"}, {"Authorization": "Bearer x"}],
    ids=["missing", "forged", "wrong-scheme"],
)
async def test_data_routes_bad_token_403_token_exception(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    for path in ("/instruments", "/user/profile", "/instruments/historical/738561/minute"):
        resp = await client.get(path, headers=headers)
        assert resp.status_code == 403
        assert resp.json()["error_type"] == "TokenException"
        assert resp.json()["message"] == "Incorrect `api_key` or `access_token`."


async def test_data_routes_expired_token_403(
    client: httpx.AsyncClient, authority: LocalAuthority
) -> None:
    headers = _auth(authority)
    assert (await client.get("/user/profile", headers=headers)).status_code == 200
    # Act
    authority.expire_tokens()
    resp = await client.get("/user/profile", headers=headers)
    # Assert
    assert resp.status_code == 403
    assert resp.json()["error_type"] == "TokenException"


async def test_historical_minute_equals_history_with_kite_timestamps(
    client: httpx.AsyncClient, authority: LocalAuthority
) -> None:
    params = {"from": "2025-09-01 09:15:00", "to": "2025-09-01 09:20:00", "continuous": "0"}
    # Act
    resp = await client.get(
        "/instruments/historical/738561/minute",
        params={**params, "oi": "0"},
        headers=_auth(authority),
    )
    # Assert
    assert resp.status_code == 200
    candles = resp.json()["data"]["candles"]
    expected = bars(
        RELIANCE,
        60,
        ist_ns(dt.date(2025, 9, 1), 9, 15),
        ist_ns(dt.date(2025, 9, 1), 9, 20),
        PRICES[RELIANCE.key],
    )
    assert len(candles) == 6
    assert candles[0][0] == "2025-09-01T09:15:00+0530"
    assert candles[-1][0] == "2025-09-01T09:20:00+0530"
    assert [c[1:] for c in candles] == [
        [b.open, b.high, b.low, b.close, b.volume] for b in expected
    ]


async def test_historical_day_with_oi_has_seven_columns_midnight_stamps(
    client: httpx.AsyncClient, authority: LocalAuthority
) -> None:
    params = {"from": "2025-09-01", "to": "2025-09-05", "oi": "1"}
    # Act
    resp = await client.get(
        f"/instruments/historical/{OPTION.kite_token}/day", params=params, headers=_auth(authority)
    )
    # Assert
    candles = resp.json()["data"]["candles"]
    expected = bars(
        OPTION,
        86_400,
        ist_midnight_ns(dt.date(2025, 9, 1)),
        ist_midnight_ns(dt.date(2025, 9, 5)),
        reference_price(OPTION, PRICES),
    )
    assert [c[0] for c in candles] == [f"2025-09-0{d}T00:00:00+0530" for d in range(1, 6)]
    assert [c[1:] for c in candles] == [
        [b.open, b.high, b.low, b.close, b.volume, b.oi] for b in expected
    ]
    assert all(c[6] > 0 for c in candles)


@pytest.mark.parametrize("interval", sorted(KITE_MAX_DAYS))
async def test_historical_over_max_days_400_input_exception(
    client: httpx.AsyncClient, authority: LocalAuthority, interval: str
) -> None:
    max_days = KITE_MAX_DAYS[interval][1]
    start = dt.date(2020, 1, 1)
    end = start + dt.timedelta(days=max_days + 1)
    params = {"from": f"{start} 09:15:00", "to": f"{end} 09:15:00"}
    # Act
    resp = await client.get(
        f"/instruments/historical/738561/{interval}", params=params, headers=_auth(authority)
    )
    # Assert
    assert resp.status_code == 400
    assert resp.json() == {
        "status": "error",
        "message": f"interval exceeds max limit: {max_days} days",
        "data": None,
        "error_type": "InputException",
    }


async def test_historical_exactly_max_days_accepted(
    client: httpx.AsyncClient, authority: LocalAuthority
) -> None:
    params = {"from": "2024-01-01 00:00:00", "to": "2025-02-04 00:00:00"}  # 400 days
    resp = await client.get(
        "/instruments/historical/738561/60minute", params=params, headers=_auth(authority)
    )
    candles = resp.json()["data"]["candles"]
    assert resp.status_code == 200
    assert candles[0][0] == "2024-01-01T09:15:00+0530"
    assert {c[0][11:16] for c in candles} == {f"{h:02d}:15" for h in range(9, 16)}


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("/instruments/historical/738561/2minute", {}, "invalid interval"),
        ("/instruments/historical/1/minute", {}, "invalid token"),
        ("/instruments/historical/738561/minute", {"from": "yesterday"}, "invalid `from` date"),
    ],
)
async def test_historical_bad_input_400(
    client: httpx.AsyncClient,
    authority: LocalAuthority,
    path: str,
    params: dict[str, str],
    message: str,
) -> None:
    resp = await client.get(path, params=params, headers=_auth(authority))
    assert resp.status_code == 400
    assert resp.json()["error_type"] == "InputException"
    assert resp.json()["message"].startswith(message)


async def test_historical_fourth_request_in_a_second_429_then_recovers(
    client: httpx.AsyncClient, authority: LocalAuthority, clock: FakeClock
) -> None:
    headers = _auth(authority)
    params = {"from": "2025-09-01 09:15:00", "to": "2025-09-01 09:16:00"}
    path = "/instruments/historical/738561/minute"
    # Act
    codes = [(await client.get(path, params=params, headers=headers)).status_code for _ in range(4)]
    limited = await client.get(path, params=params, headers=headers)
    clock.now += 1.0
    recovered = await client.get(path, params=params, headers=headers)
    # Assert
    assert codes == [200, 200, 200, 429]
    assert limited.json() == {
        "status": "error",
        "message": "Too many requests",
        "data": None,
        "error_type": "NetworkException",
    }
    assert recovered.status_code == 200


async def test_unknown_route_404_kite_envelope(client: httpx.AsyncClient) -> None:
    resp = await client.get("/nothing/here")
    assert resp.status_code == 404
    assert resp.json()["status"] == "error"
    assert resp.json()["error_type"] == "GeneralException"


async def test_login_pending_request_tokens_bounded_oldest_dropped(
    client: httpx.AsyncClient,
) -> None:
    first = await _request_token(client)
    for _ in range(1024):
        await _request_token(client)
    form = {"api_key": "kitekey", "request_token": first, "checksum": _checksum(first)}
    # Act
    resp = await client.post("/session/token", data=form)
    # Assert
    assert resp.status_code == 403
    assert resp.json()["message"] == "Token is invalid or has expired."
