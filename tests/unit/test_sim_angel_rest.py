"""Simulated Angel One SmartAPI REST over ASGI: login, tokens, history, limits, scrip master."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest

from tickstream.calendar import ist_ns
from tickstream.sim.angel_rest import ANGEL_MAX_DAYS, RATE_LIMIT_TEXT, create_angel_app
from tickstream.sim.history import bars, reference_price
from tickstream.sim.rest_auth import AngelSecrets, KiteSecrets, LocalAuthority
from tickstream.sim.universe import default_universe, reference_prices

UNIVERSE = default_universe()
PRICES = reference_prices()
RELIANCE = next(i for i in UNIVERSE if i.symbol == "RELIANCE")
OPTION = next(i for i in UNIVERSE if i.instrument_type == "CE")
SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
WALL = 1_756_700_000.0  # a fixed wall time for the TOTP checks
LOGIN = "/rest/auth/angelbroking/user/v1/loginByPassword"
TOKENS = "/rest/auth/angelbroking/jwt/v1/generateTokens"
SECURE = "/rest/secure/angelbroking"
CANDLES = f"{SECURE}/historical/v1/getCandleData"
REAL_MASTER = Path("/work/shared/data/angel/angel_scripmaster_idx_nfo_2025-04-08.json")
REAL_KEYS = list(json.loads(REAL_MASTER.read_text())[0]) if REAL_MASTER.exists() else None


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def authority() -> LocalAuthority:
    return LocalAuthority(
        KiteSecrets(api_key="kitekey", api_secret="kite-secret"),
        AngelSecrets(api_key="angelkey", client_code="C100", pin="4321", totp_secret=SECRET),
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def client(authority: LocalAuthority, clock: FakeClock) -> AsyncIterator[httpx.AsyncClient]:
    app = create_angel_app(authority, UNIVERSE, prices=PRICES, clock=clock, wall_clock=lambda: WALL)
    transport = httpx.ASGITransport(app=app)
    headers = {"X-PrivateKey": "angelkey", "X-UserType": "USER", "X-SourceID": "WEB"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://angel.test", headers=headers
    ) as c:
        yield c


def _bearer(authority: LocalAuthority) -> dict[str, str]:
    jwt, _, _ = authority.issue_angel_tokens()
    return {"Authorization": f"Bearer {jwt}"}


def _login_body(totp: str | None = None, pin: str = "4321") -> dict[str, str]:
    return {"clientcode": "C100", "password": pin, "totp": totp or pyotp.TOTP(SECRET).at(WALL)}


def _candle_body(**over: str) -> dict[str, str]:
    body = {
        "exchange": "NSE",
        "symboltoken": "2885",
        "interval": "ONE_MINUTE",
        "fromdate": "2025-09-01 09:15",
        "todate": "2025-09-01 09:20",
    }
    return {**body, **over}


async def test_login_valid_pin_and_totp_issues_tokens(
    client: httpx.AsyncClient, authority: LocalAuthority
) -> None:
    # Act
    resp = await client.post(LOGIN, json=_login_body())
    # Assert
    body = resp.json()
    assert resp.status_code == 200
    assert (body["status"], body["message"], body["errorcode"]) == (True, "SUCCESS", "")
    assert set(body["data"]) == {"jwtToken", "refreshToken", "feedToken"}
    assert not body["data"]["jwtToken"].startswith("Bearer")
    assert authority.angel_jwt_valid(body["data"]["jwtToken"])
    assert authority.angel_refresh_valid(body["data"]["refreshToken"])


async def test_login_previous_totp_step_accepted(client: httpx.AsyncClient) -> None:
    resp = await client.post(LOGIN, json=_login_body(totp=pyotp.TOTP(SECRET).at(WALL - 30)))
    assert resp.json()["status"] is True


async def test_login_wrong_totp_invalid_totp_envelope(client: httpx.AsyncClient) -> None:
    stale = pyotp.TOTP(SECRET).at(WALL - 120)
    # Act
    resp = await client.post(LOGIN, json=_login_body(totp=stale))
    # Assert
    assert resp.status_code == 200
    assert resp.json() == {
        "status": False,
        "message": "Invalid totp",
        "errorcode": "AB1050",
        "data": None,
    }


async def test_login_wrong_pin_ab1000_and_no_secret_echoed(client: httpx.AsyncClient) -> None:
    resp = await client.post(LOGIN, json=_login_body(pin="0000"))
    assert resp.json()["errorcode"] == "AB1000"
    assert resp.json()["status"] is False
    assert "4321" not in resp.text and SECRET not in resp.text


async def test_login_wrong_private_key_invalid_api_key(client: httpx.AsyncClient) -> None:
    resp = await client.post(LOGIN, json=_login_body(), headers={"X-PrivateKey": "other"})
    assert resp.json()["message"] == "Invalid API Key"
    assert resp.json()["errorCode"] == "AG8004"


async def test_generate_tokens_valid_refresh_new_working_jwt(
    client: httpx.AsyncClient, authority: LocalAuthority
) -> None:
    login = (await client.post(LOGIN, json=_login_body())).json()["data"]
    # Act
    resp = await client.post(TOKENS, json={"refreshToken": login["refreshToken"]})
    # Assert
    data = resp.json()["data"]
    assert data["jwtToken"] != login["jwtToken"]
    assert authority.angel_jwt_valid(data["jwtToken"])
    assert data["feedToken"]


async def test_generate_tokens_unknown_refresh_ab8050(client: httpx.AsyncClient) -> None:
    resp = await client.post(TOKENS, json={"refreshToken": "nope"})
    assert resp.json() == {
        "status": False,
        "message": "Invalid Refresh Token",
        "errorcode": "AB8050",
        "data": None,
    }


async def test_profile_valid_jwt_returns_client_code(
    client: httpx.AsyncClient, authority: LocalAuthority
) -> None:
    resp = await client.get(f"{SECURE}/user/v1/getProfile", headers=_bearer(authority))
    assert resp.json()["status"] is True
    assert resp.json()["data"]["clientcode"] == "C100"
    assert "MIS" in resp.json()["data"]["products"]


@pytest.mark.parametrize("auth", [None, "Bearer forged", "Token x"])
async def test_secure_routes_bad_jwt_401_invalid_token(
    client: httpx.AsyncClient, auth: str | None
) -> None:
    headers = {"Authorization": auth} if auth else {}
    for method, path in (
        ("GET", f"{SECURE}/user/v1/getProfile"),
        ("POST", CANDLES),
        ("POST", f"{SECURE}/order/v1/searchScrip"),
    ):
        resp = await client.request(method, path, headers=headers, json={})
        assert resp.status_code == 401
        assert resp.json() == {
            "success": False,
            "message": "Invalid Token",
            "errorCode": "AG8001",
            "data": "",
        }


async def test_secure_routes_expired_jwt_401(
    client: httpx.AsyncClient, authority: LocalAuthority
) -> None:
    headers = _bearer(authority)
    assert (await client.post(CANDLES, json=_candle_body(), headers=headers)).status_code == 200
    # Act
    authority.expire_tokens()
    resp = await client.post(CANDLES, json=_candle_body(), headers=headers)
    # Assert
    assert resp.status_code == 401
    assert resp.json()["errorCode"] == "AG8001"


async def test_candles_equal_history_with_angel_timestamps(
    client: httpx.AsyncClient, authority: LocalAuthority
) -> None:
    # Act
    resp = await client.post(CANDLES, json=_candle_body(), headers=_bearer(authority))
    # Assert
    body = resp.json()
    day = dt.date(2025, 9, 1)
    expected = bars(RELIANCE, 60, ist_ns(day, 9, 15), ist_ns(day, 9, 20), PRICES[RELIANCE.key])
    assert (body["status"], body["message"], body["errorcode"]) == (True, "SUCCESS", "")
    assert [c[0] for c in body["data"]] == [f"2025-09-01T09:{m}:00+05:30" for m in range(15, 21)]
    assert [c[1:] for c in body["data"]] == [
        [b.open, b.high, b.low, b.close, b.volume] for b in expected
    ]


async def test_candles_option_day_interval_midnight_stamps(
    client: httpx.AsyncClient, authority: LocalAuthority
) -> None:
    body = _candle_body(
        exchange="NFO",
        symboltoken=str(OPTION.angel_token),
        interval="ONE_DAY",
        fromdate="2025-09-01 00:00",
        todate="2025-09-03 00:00",
    )
    # Act
    resp = await client.post(CANDLES, json=body, headers=_bearer(authority))
    # Assert
    data = resp.json()["data"]
    ref = reference_price(OPTION, PRICES)
    expected = bars(
        OPTION, 86_400, ist_ns(dt.date(2025, 9, 1), 0), ist_ns(dt.date(2025, 9, 3), 0), ref
    )
    assert [c[0] for c in data] == [f"2025-09-0{d}T00:00:00+05:30" for d in (1, 2, 3)]
    assert [c[4] for c in data] == [b.close for b in expected]


@pytest.mark.parametrize("interval", sorted(ANGEL_MAX_DAYS))
async def test_candles_over_max_days_rejected(
    client: httpx.AsyncClient, authority: LocalAuthority, interval: str
) -> None:
    max_days = ANGEL_MAX_DAYS[interval][1]
    end = dt.date(2025, 9, 1)
    start = end - dt.timedelta(days=max_days + 1)
    body = _candle_body(interval=interval, fromdate=f"{start} 09:15", todate=f"{end} 09:15")
    # Act
    resp = await client.post(CANDLES, json=body, headers=_bearer(authority))
    # Assert
    assert resp.json()["status"] is False
    assert resp.json()["errorcode"] == "AB1004"
    assert resp.json()["message"] == f"Invalid date range: {interval} allows {max_days} days"


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"interval": "TWO_MINUTE"}, "Invalid interval"),
        ({"symboltoken": "99999999"}, "Invalid symboltoken"),
        ({"fromdate": "2025-09-01T09:15"}, "Invalid fromdate"),
    ],
)
async def test_candles_bad_parameters_status_false(
    client: httpx.AsyncClient, authority: LocalAuthority, over: dict[str, str], message: str
) -> None:
    resp = await client.post(CANDLES, json=_candle_body(**over), headers=_bearer(authority))
    assert resp.json()["status"] is False
    assert resp.json()["message"].startswith(message)


async def test_candles_fourth_request_in_a_second_403_plain_text(
    client: httpx.AsyncClient, authority: LocalAuthority, clock: FakeClock
) -> None:
    headers = _bearer(authority)
    # Act
    codes = [
        (await client.post(CANDLES, json=_candle_body(), headers=headers)).status_code
        for _ in range(3)
    ]
    limited = await client.post(CANDLES, json=_candle_body(), headers=headers)
    clock.now += 1.0
    recovered = await client.post(CANDLES, json=_candle_body(), headers=headers)
    # Assert
    assert codes == [200, 200, 200]
    assert limited.status_code == 403
    assert limited.headers["content-type"].startswith("text/plain")
    assert limited.text == RATE_LIMIT_TEXT
    assert recovered.status_code == 200


async def test_search_scrip_finds_equity_by_name(
    client: httpx.AsyncClient, authority: LocalAuthority
) -> None:
    body = {"exchange": "NSE", "searchscrip": "reliance"}
    # Act
    resp = await client.post(
        f"{SECURE}/order/v1/searchScrip", json=body, headers=_bearer(authority)
    )
    # Assert
    assert resp.json()["data"] == [
        {"exchange": "NSE", "tradingsymbol": "RELIANCE-EQ", "symboltoken": "2885"}
    ]


async def test_search_scrip_no_match_empty_success(
    client: httpx.AsyncClient, authority: LocalAuthority
) -> None:
    body = {"exchange": "NSE", "searchscrip": "ZZZZZ"}
    resp = await client.post(
        f"{SECURE}/order/v1/searchScrip", json=body, headers=_bearer(authority)
    )
    assert resp.json()["status"] is True
    assert resp.json()["data"] == []


async def test_scrip_master_angel_schema_for_the_universe(client: httpx.AsyncClient) -> None:
    # Act
    resp = await client.get("/OpenAPI_File/files/OpenAPIScripMaster.json")
    # Assert
    records: list[dict[str, Any]] = resp.json()
    assert len(records) == len(UNIVERSE)
    assert REAL_KEYS is None or all(list(r) == REAL_KEYS for r in records)
    by_token = {(r["exch_seg"], r["token"]): r for r in records}
    assert by_token[("NSE", "2885")] == {
        "token": "2885",
        "symbol": "RELIANCE-EQ",
        "name": "RELIANCE",
        "expiry": "",
        "strike": "-1.000000",
        "lotsize": "1",
        "instrumenttype": "",
        "exch_seg": "NSE",
        "tick_size": "5.000000",
    }
    assert by_token[("NSE", "99926000")]["symbol"] == "Nifty 50"
    assert by_token[("NSE", "99926000")]["instrumenttype"] == "AMXIDX"
    opt = by_token[("NFO", str(OPTION.angel_token))]
    assert opt["expiry"] == "18AUG2026"
    assert opt["symbol"] == f"NIFTY18AUG26{int(OPTION.strike or 0)}CE"
    assert opt["strike"] == f"{(OPTION.strike or 0) * 100:.6f}"
    assert (opt["instrumenttype"], opt["lotsize"], opt["name"]) == ("OPTIDX", "65", "NIFTY")


async def test_candles_index_token_under_nse_zero_volume(
    client: httpx.AsyncClient, authority: LocalAuthority
) -> None:
    body = _candle_body(
        symboltoken="99926000", interval="FIFTEEN_MINUTE", todate="2025-09-01 15:30"
    )
    # Act
    resp = await client.post(CANDLES, json=body, headers=_bearer(authority))
    # Assert
    data = resp.json()["data"]
    assert len(data) == 25
    assert data[-1][0] == "2025-09-01T15:15:00+05:30"
    assert {c[5] for c in data} == {0}
