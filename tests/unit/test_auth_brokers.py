"""Broker authentication against the simulated REST APIs: logins, renewal, expiry, no leaks."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pyotp
import pytest

from tickstream.calendar import ist_ns
from tickstream.feeds.angelone.auth import AngelAuth
from tickstream.feeds.angelone.auth import next_expiry_ns as angel_expiry
from tickstream.feeds.base import AuthError
from tickstream.feeds.kite.auth import KiteAuth, checksum, login_url
from tickstream.feeds.kite.auth import next_expiry_ns as kite_expiry
from tickstream.sim.rest import SimRestServer
from tickstream.sim.rest_auth import LocalAuthority
from tickstream.sim.universe import load_universe

pytestmark = pytest.mark.timeout(60)

Rest = tuple[SimRestServer, LocalAuthority]


@pytest.fixture
async def rest() -> AsyncIterator[Rest]:
    authority = LocalAuthority.generate()
    async with SimRestServer(authority, load_universe()) as server:
        yield server, authority


def all_log_text(caplog: pytest.LogCaptureFixture) -> str:
    parts = []
    for record in caplog.records:
        parts.append(record.getMessage())
        if record.exc_info:
            parts.append(logging.Formatter().formatException(record.exc_info))
    return "\n".join(parts)


async def test_auth_angel_failed_login_logs_and_errors_hold_no_secret(
    rest: Rest, caplog: pytest.LogCaptureFixture
) -> None:
    server, authority = rest
    a = authority.angel
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    auth = AngelAuth(a.api_key, a.client_code, "9999" if a.pin != "9999" else "0000",
                     a.totp_secret, root=server.angel_root, sleep=sleep)  # fmt: skip
    with caplog.at_level(logging.DEBUG), pytest.raises(AuthError) as failed:
        await auth.login()

    text = all_log_text(caplog) + "\n" + str(failed.value) + "\n" + repr(auth)
    code_now = pyotp.TOTP(a.totp_secret).now()
    for secret in (a.pin, a.totp_secret, code_now, auth._pin):
        assert secret not in text
    assert "AB1000" in str(failed.value) and "after 3 attempts" in str(failed.value)
    assert delays == [1.0, 2.0]  # three attempts, exponential backoff between them
    assert auth.session is None


async def test_auth_angel_login_renew_and_fallback_to_login(rest: Rest) -> None:
    server, authority = rest
    a = authority.angel
    auth = AngelAuth(a.api_key, a.client_code, a.pin, a.totp_secret, root=server.angel_root)

    first = await auth.login()
    renewed = await auth.renew()
    authority.expire_tokens()  # the refresh token dies at the daily reset too
    relogged = await auth.reauthenticate()

    assert authority.angel_jwt_valid(first.jwt) is False
    assert renewed.jwt != first.jwt and renewed.feed_token != first.feed_token
    assert relogged is True and authority.angel_jwt_valid(auth.session.jwt)  # type: ignore[union-attr]
    assert (auth.logins, auth.renewals) == (2, 1)
    assert first.jwt not in repr(first) and first.refresh_token not in repr(first)


async def test_auth_angel_ensure_fresh_renews_close_to_0500_ist(rest: Rest) -> None:
    server, authority = rest
    a = authority.angel
    now = [ist_ns(dt.date(2025, 11, 20), 9, 0)]
    auth = AngelAuth(a.api_key, a.client_code, a.pin, a.totp_secret, root=server.angel_root,
                     clock_ns=lambda: now[0])  # fmt: skip

    session = await auth.ensure_fresh()
    same = await auth.ensure_fresh()
    now[0] = ist_ns(dt.date(2025, 11, 21), 4, 55)  # 5 minutes before the expiry
    renewed = await auth.ensure_fresh()

    assert session.expires_ns == ist_ns(dt.date(2025, 11, 21), 5)
    assert same is session
    assert renewed.jwt != session.jwt and auth.renewals == 1


def test_auth_expiries_in_ist_whatever_the_local_zone() -> None:
    day = dt.date(2025, 11, 20)

    assert kite_expiry(ist_ns(day, 9, 15)) == ist_ns(day + dt.timedelta(days=1), 6)
    assert kite_expiry(ist_ns(day, 5, 59)) == ist_ns(day, 6)
    assert kite_expiry(ist_ns(day, 6)) == ist_ns(day + dt.timedelta(days=1), 6)
    assert angel_expiry(ist_ns(day, 4, 0)) == ist_ns(day, 5)
    assert angel_expiry(ist_ns(day, 23, 0)) == ist_ns(day + dt.timedelta(days=1), 5)


def test_auth_kite_login_url_and_checksum() -> None:
    url = login_url("abc123", root="https://kite.example")

    assert urlsplit(url).path == "/connect/login"
    assert parse_qs(urlsplit(url).query) == {"v": ["3"], "api_key": ["abc123"]}
    assert checksum("k", "r", "s") == hashlib.sha256(b"krs").hexdigest()


async def test_auth_kite_request_token_exchange_saves_token_file(
    rest: Rest, tmp_path: Path
) -> None:
    server, authority = rest
    k = authority.kite
    token_file = tmp_path / "kite" / "access_token"
    async with httpx.AsyncClient(follow_redirects=False) as client:
        redirect = await client.get(
            f"{server.kite_root}/connect/login", params={"api_key": k.api_key, "v": 3}
        )
        request_token = parse_qs(urlsplit(redirect.headers["location"]).query)["request_token"][0]
        auth = KiteAuth(k.api_key, api_secret=k.api_secret, token_file=token_file,
                        root=server.kite_root, client=client)  # fmt: skip
        session = await auth.exchange(request_token)

    assert authority.kite_token_valid(session.access_token)
    assert token_file.read_text().strip() == session.access_token
    assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
    assert KiteAuth(k.api_key, token_file=token_file).access_token() == session.access_token
    assert session.access_token not in repr(session) and session.access_token not in repr(auth)


async def test_auth_kite_wrong_secret_refused_without_leaking(
    rest: Rest, caplog: pytest.LogCaptureFixture
) -> None:
    server, authority = rest
    k = authority.kite
    wrong = "s3cr3t-" + k.api_secret[::-1]
    auth = KiteAuth(k.api_key, api_secret=wrong, root=server.kite_root)

    with caplog.at_level(logging.DEBUG), pytest.raises(AuthError) as refused:
        await auth.exchange("some-request-token")

    text = all_log_text(caplog) + str(refused.value) + repr(auth)
    assert wrong not in text and k.api_secret not in text
    assert "Invalid `checksum`" in str(refused.value)


def test_auth_kite_token_expired_after_0600_ist() -> None:
    now = [ist_ns(dt.date(2025, 11, 20), 9, 0)]
    auth = KiteAuth("key", access_token="tok-abcdef", clock_ns=lambda: now[0])

    assert auth.access_token() == "tok-abcdef"
    now[0] = ist_ns(dt.date(2025, 11, 21), 6, 0)
    with pytest.raises(AuthError, match="expired at 06:00 IST") as expired:
        auth.access_token()
    assert "tok-abcdef" not in str(expired.value)
