"""THE PROOF: the official KiteConnect and SmartConnect clients, unchanged but for the root URL,
log in to the running simulator and read instruments and candles equal to the simulator's history.

The SDKs are synchronous (requests); they run in threads while the servers run in the test's loop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pyotp
import pytest
import requests
from kiteconnect import KiteConnect
from kiteconnect import exceptions as kite_ex

from tickstream.calendar import ist_datetime, ist_ns
from tickstream.sim.history import bars
from tickstream.sim.rest import SimRestServer
from tickstream.sim.rest_auth import LocalAuthority
from tickstream.sim.universe import default_universe, reference_prices

UNIVERSE = default_universe()
PRICES = reference_prices()
RELIANCE = next(i for i in UNIVERSE if i.symbol == "RELIANCE")
DAY = dt.date(2025, 9, 1)
# SmartConnect() sets ssl.OP_NO_TLSv1 on its (unused) SSL context, which Python 3.11 deprecates.
pytestmark = pytest.mark.filterwarnings("ignore:ssl.OP_NO_SSL:DeprecationWarning")
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@pytest.fixture
def authority() -> LocalAuthority:
    return LocalAuthority.generate()


@pytest.fixture
async def rest(
    authority: LocalAuthority, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[SimRestServer]:
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    async with SimRestServer(authority, UNIVERSE, prices=PRICES) as server:
        yield server


@pytest.fixture
def smart_connect(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    """The SmartConnect class, imported without its public-IP lookup and logging under tmp."""

    def no_network(*args: object, **kwargs: object) -> None:
        raise requests.ConnectionError("no outbound network in tests")

    monkeypatch.setattr(requests, "get", no_network)  # SmartConnect looks up its IP on import
    monkeypatch.chdir(tmp_path)  # SmartConnect() creates logs/<date>/app.log in the cwd
    import logzero
    from SmartApi.smartConnect import SmartConnect

    yield SmartConnect
    # SmartConnect() installs a file handler on logzero's logger; logzero removes it unclosed
    for handler in logzero.logger.handlers:
        if isinstance(handler, logging.FileHandler):
            handler.close()
    logzero.logfile(None)


async def _request_token(rest: SimRestServer, api_key: str) -> str:
    async with httpx.AsyncClient() as http:
        resp = await http.get(
            f"{rest.kite_root}/connect/login", params={"api_key": api_key, "v": 3}
        )
    assert resp.status_code == 302
    return parse_qs(urlsplit(resp.headers["location"]).query)["request_token"][0]


async def _kite_session(rest: SimRestServer, authority: LocalAuthority) -> KiteConnect:
    kite = KiteConnect(authority.kite.api_key, root=rest.kite_root)
    request_token = await _request_token(rest, authority.kite.api_key)
    await asyncio.to_thread(kite.generate_session, request_token, authority.kite.api_secret)
    return kite


def _secrets(authority: LocalAuthority) -> list[str]:
    return [authority.kite.api_secret, authority.angel.pin, authority.angel.totp_secret]


async def test_kite_sdk_session_instruments_history_match_simulator(
    rest: SimRestServer, authority: LocalAuthority, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    kite = KiteConnect(authority.kite.api_key, root=rest.kite_root)
    request_token = await _request_token(rest, authority.kite.api_key)
    # Act
    session = await asyncio.to_thread(
        kite.generate_session, request_token, authority.kite.api_secret
    )
    rows = await asyncio.to_thread(kite.instruments)
    nfo = await asyncio.to_thread(kite.instruments, "NFO")
    candles = await asyncio.to_thread(
        kite.historical_data,
        RELIANCE.kite_token,
        "2025-09-01 09:15:00",
        "2025-09-01 15:29:00",
        "minute",
    )
    # Assert: session
    assert kite.access_token == session["access_token"]
    assert authority.kite_token_valid(session["access_token"])
    assert isinstance(session["login_time"], dt.datetime)
    # Assert: instruments, row by row, against the universe
    assert len(rows) == len(UNIVERSE)
    for row, inst in zip(rows, UNIVERSE, strict=True):
        assert row["instrument_token"] == inst.kite_token
        assert int(row["exchange_token"]) == inst.token
        assert row["tradingsymbol"] == inst.symbol
        assert row["segment"] == inst.segment
        assert row["strike"] == (inst.strike or 0.0)
        expiry = dt.date.fromisoformat(inst.expiry) if inst.expiry else ""
        assert row["expiry"] == expiry
    assert [r["tradingsymbol"] for r in nfo] == [i.symbol for i in UNIVERSE if i.exchange == "NFO"]
    # Assert: candles equal the simulator's history, with aware IST timestamps
    expected = bars(RELIANCE, 60, ist_ns(DAY, 9, 15), ist_ns(DAY, 15, 29), PRICES[RELIANCE.key])
    assert len(candles) == 375
    assert [c["date"] for c in candles] == [ist_datetime(b.start_ns) for b in expected]
    assert [(c["open"], c["high"], c["low"], c["close"], c["volume"]) for c in candles] == [
        (b.open, b.high, b.low, b.close, b.volume) for b in expected
    ]
    assert candles[0]["date"].utcoffset() == dt.timedelta(hours=5, minutes=30)
    # Assert: our side logged the login, and no secret anywhere in the captured logs
    assert any(
        r.name.startswith("tickstream") and "kite session" in r.message for r in caplog.records
    )
    assert all(secret not in caplog.text for secret in _secrets(authority))


async def test_kite_sdk_burst_raises_network_exception_429(
    rest: SimRestServer, authority: LocalAuthority
) -> None:
    kite = await _kite_session(rest, authority)
    succeeded = 0

    def burst() -> kite_ex.NetworkException:
        nonlocal succeeded
        for _ in range(30):
            try:
                kite.historical_data(
                    RELIANCE.kite_token, "2025-09-01 09:15:00", "2025-09-01 09:15:00", "minute"
                )
            except kite_ex.NetworkException as exc:
                return exc
            succeeded += 1
        raise AssertionError("no rate limit within 30 requests")

    # Act
    exc = await asyncio.to_thread(burst)
    # Assert
    assert exc.code == 429
    assert str(exc) == "Too many requests"
    assert succeeded >= 3


async def test_kite_sdk_expired_token_raises_token_exception_and_calls_hook(
    rest: SimRestServer, authority: LocalAuthority
) -> None:
    kite = await _kite_session(rest, authority)
    hook_calls: list[bool] = []
    kite.set_session_expiry_hook(lambda: hook_calls.append(True))
    assert (await asyncio.to_thread(kite.profile))["user_id"]
    authority.expire_tokens()
    # Act
    with pytest.raises(kite_ex.TokenException) as info:
        await asyncio.to_thread(kite.profile)
    # Assert
    assert info.value.code == 403
    assert hook_calls == [True]


async def test_kite_sdk_wrong_secret_raises_token_exception(
    rest: SimRestServer, authority: LocalAuthority
) -> None:
    kite = KiteConnect(authority.kite.api_key, root=rest.kite_root)
    request_token = await _request_token(rest, authority.kite.api_key)
    with pytest.raises(kite_ex.TokenException, match="Invalid `checksum`"):
        await asyncio.to_thread(kite.generate_session, request_token, "not-the-secret")


async def _angel_session(smart_connect: Any, rest: SimRestServer, authority: LocalAuthority) -> Any:
    angel = authority.angel
    smart = smart_connect(api_key=angel.api_key, root=rest.angel_root)
    totp = pyotp.TOTP(angel.totp_secret).now()
    session = await asyncio.to_thread(smart.generateSession, angel.client_code, angel.pin, totp)
    assert session["status"] is True
    return smart


async def test_smartapi_sdk_session_candles_search_match_simulator(
    rest: SimRestServer,
    authority: LocalAuthority,
    smart_connect: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    angel = authority.angel
    smart = smart_connect(api_key=angel.api_key, root=rest.angel_root)
    params = {
        "exchange": "NSE",
        "symboltoken": "2885",
        "interval": "FIVE_MINUTE",
        "fromdate": "2025-09-01 09:15",
        "todate": "2025-09-01 15:30",
    }
    # Act
    totp = pyotp.TOTP(angel.totp_secret).now()
    session = await asyncio.to_thread(smart.generateSession, angel.client_code, angel.pin, totp)
    login_jwt = smart.access_token
    candles = await asyncio.to_thread(smart.getCandleData, params)
    found = await asyncio.to_thread(smart.searchScrip, "NSE", "RELIANCE")
    refreshed = await asyncio.to_thread(smart.generateToken, smart.refresh_token)
    # Assert: session (the SDK fetched the profile with the new jwt)
    assert session["status"] is True
    assert session["data"]["clientcode"] == angel.client_code
    assert session["data"]["jwtToken"] == f"Bearer {login_jwt}"
    assert authority.angel_jwt_valid(login_jwt)
    assert smart.access_token == refreshed["data"]["jwtToken"] != login_jwt
    assert smart.getfeedToken() == refreshed["data"]["feedToken"]
    # Assert: candles equal the simulator's history, Angel's timestamp format
    expected = bars(RELIANCE, 300, ist_ns(DAY, 9, 15), ist_ns(DAY, 15, 30), PRICES[RELIANCE.key])
    assert candles["status"] is True
    assert len(candles["data"]) == 75
    assert candles["data"][0][0] == "2025-09-01T09:15:00+05:30"
    assert candles["data"] == [
        [ist_datetime(b.start_ns).isoformat(), b.open, b.high, b.low, b.close, b.volume]
        for b in expected
    ]
    assert found["data"] == [
        {"exchange": "NSE", "tradingsymbol": "RELIANCE-EQ", "symboltoken": "2885"}
    ]
    # Assert: our side logged the login, and no secret anywhere in the captured logs
    assert any(
        r.name.startswith("tickstream") and "angel session" in r.message for r in caplog.records
    )
    assert all(secret not in caplog.text for secret in _secrets(authority))


async def test_smartapi_sdk_burst_gets_plain_text_403_as_data_exception(
    rest: SimRestServer, authority: LocalAuthority, smart_connect: Any
) -> None:
    from SmartApi.smartExceptions import DataException

    smart = await _angel_session(smart_connect, rest, authority)
    params = {
        "exchange": "NSE",
        "symboltoken": "2885",
        "interval": "ONE_MINUTE",
        "fromdate": "2025-09-01 09:15",
        "todate": "2025-09-01 09:15",
    }
    succeeded = 0

    def burst() -> Exception:
        nonlocal succeeded
        for _ in range(30):
            try:
                smart.getCandleData(dict(params))
            except DataException as exc:
                caught: Exception = exc
                return caught
            succeeded += 1
        raise AssertionError("no rate limit within 30 requests")

    # Act
    exc = await asyncio.to_thread(burst)
    # Assert: the SDK cannot parse the plain-text body, exactly as against the real API
    assert "Access denied because of exceeding access rate" in str(exc)
    assert "Couldn't parse the JSON response" in str(exc)
    assert succeeded >= 3


async def test_smartapi_sdk_expired_jwt_returns_invalid_token_envelope(
    rest: SimRestServer, authority: LocalAuthority, smart_connect: Any
) -> None:
    smart = await _angel_session(smart_connect, rest, authority)
    authority.expire_tokens()
    params = {
        "exchange": "NSE",
        "symboltoken": "2885",
        "interval": "ONE_DAY",
        "fromdate": "2025-09-01 00:00",
        "todate": "2025-09-01 00:00",
    }
    # Act
    got = await asyncio.to_thread(smart.getCandleData, params)
    # Assert: the gateway's own keys (searchScrip in the SDK even crashes on them: KeyError)
    assert got == {"success": False, "message": "Invalid Token", "errorCode": "AG8001", "data": ""}


async def test_smartapi_sdk_wrong_totp_returns_status_false(
    rest: SimRestServer, authority: LocalAuthority, smart_connect: Any
) -> None:
    angel = authority.angel
    smart = smart_connect(api_key=angel.api_key, root=rest.angel_root)
    stale = pyotp.TOTP(angel.totp_secret).at(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5))
    # Act
    got = await asyncio.to_thread(smart.generateSession, angel.client_code, angel.pin, stale)
    # Assert
    assert got == {"status": False, "message": "Invalid totp", "errorcode": "AB1050", "data": None}
    assert smart.access_token is None


async def test_sim_rest_server_roots_are_distinct_loopback_origins(rest: SimRestServer) -> None:
    kite, angel = urlsplit(rest.kite_root), urlsplit(rest.angel_root)
    assert (kite.scheme, kite.hostname, kite.path) == ("http", "127.0.0.1", "")
    assert (angel.scheme, angel.hostname, angel.path) == ("http", "127.0.0.1", "")
    assert kite.port != angel.port
    async with httpx.AsyncClient() as http:
        master = await http.get(f"{rest.angel_root}/OpenAPI_File/files/OpenAPIScripMaster.json")
    assert len(master.json()) == len(UNIVERSE)


async def test_sim_rest_server_not_running_root_raises(authority: LocalAuthority) -> None:
    server = SimRestServer(authority, UNIVERSE)
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.kite_root


async def test_sdk_logins_tokens_open_the_simulators_websocket_servers(
    smart_connect: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    from tickstream.sim.server import SimConfig, SimServer

    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    async with SimServer(SimConfig(autostep=False)) as sim:
        universe = sim.market.instruments
        async with SimRestServer(sim.authority, universe, prices=PRICES) as rest:
            creds = sim.credentials
            # Act: log in through the official clients only
            kite = KiteConnect(creds.kite_api_key, root=rest.kite_root)
            request_token = await _request_token(rest, creds.kite_api_key)
            session = await asyncio.to_thread(
                kite.generate_session, request_token, creds.kite_api_secret
            )
            smart = smart_connect(api_key=creds.angel_api_key, root=rest.angel_root)
            totp = pyotp.TOTP(creds.angel_totp_secret).now()
            await asyncio.to_thread(
                smart.generateSession, creds.angel_client_code, creds.angel_pin, totp
            )
            kite_url = f"{sim.kite_ws_url}?api_key={creds.kite_api_key}&access_token="
            angel_headers = {
                "Authorization": f"Bearer {smart.access_token}",
                "x-api-key": creds.angel_api_key,
                "x-client-code": creds.angel_client_code,
                "x-feed-token": smart.getfeedToken(),
            }
            # Assert: the REST-issued tokens open both WebSocket servers
            async with connect(kite_url + session["access_token"]) as ws:
                assert ws.response is not None and ws.response.status_code == 101
            async with connect(sim.angel_ws_url, additional_headers=angel_headers) as ws:
                assert ws.response is not None and ws.response.status_code == 101
            # Assert: after the simulator expires tokens, REST and WebSocket both refuse them
            sim.expire_tokens()
            with pytest.raises(kite_ex.TokenException):
                await asyncio.to_thread(kite.profile)
            with pytest.raises(InvalidStatus) as refused:
                async with connect(kite_url + session["access_token"]):
                    pass
            assert refused.value.response.status_code == 403
