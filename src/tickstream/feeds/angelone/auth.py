"""Angel One SmartAPI authentication: TOTP login, token renewal, expiry at 05:00 IST.

``loginByPassword`` takes the client code, the PIN and a TOTP computed here with pyotp; it is
tried 3 times with exponential backoff (the API fails transiently around the morning reset). The
session's jwt, refresh and feed tokens are kept; ``generateTokens`` (with the refresh token)
renews them before they stop working at 05:00 IST and whenever a socket or a call is refused
with 401, falling back to a fresh login when the refresh token itself has gone. Our own
``httpx.AsyncClient`` is used, so nothing blocks the event loop.

No secret (PIN, TOTP secret or code, tokens) ever appears in a repr, a log line or an exception:
they are registered with the log scrubber, and errors carry only the API's error code and message.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import httpx
import pyotp

from tickstream.calendar import ist_date, ist_ns
from tickstream.feeds.base import AuthError
from tickstream.feeds.kite.auth import fingerprint
from tickstream.logs import register_secret

if TYPE_CHECKING:
    from tickstream.config import Settings

__all__ = ["ANGEL_API_ROOT", "AngelAuth", "AngelSession", "angel_headers", "next_expiry_ns"]

log = logging.getLogger(__name__)

ANGEL_API_ROOT: Final = "https://apiconnect.angelone.in"
LOGIN_PATH: Final = "/rest/auth/angelbroking/user/v1/loginByPassword"
TOKENS_PATH: Final = "/rest/auth/angelbroking/jwt/v1/generateTokens"
EXPIRY_HOUR_IST: Final = 5
RENEW_MARGIN_NS: Final = 10 * 60 * 1_000_000_000  # renew 10 minutes before the expiry


def next_expiry_ns(issued_ns: int) -> int:
    """The first 05:00 IST strictly after ``issued_ns``."""
    day = ist_date(issued_ns)
    expiry = ist_ns(day, EXPIRY_HOUR_IST)
    return expiry if expiry > issued_ns else ist_ns(day + dt.timedelta(days=1), EXPIRY_HOUR_IST)


def angel_headers(api_key: str, jwt: str | None = None) -> dict[str, str]:
    """The headers SmartAPI expects on every REST call (``Bearer`` jwt on secure routes)."""
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "X-UserType": "USER",
        "X-SourceID": "WEB",
        "X-ClientLocalIP": "127.0.0.1",
        "X-ClientPublicIP": "127.0.0.1",
        "X-MACAddress": "00:00:00:00:00:00",
        "X-PrivateKey": api_key,
    }
    if jwt is not None:
        headers["Authorization"] = f"Bearer {jwt}"
    return headers


@dataclass(frozen=True, slots=True)
class AngelSession:
    """The three tokens of a SmartAPI login and their validity."""

    jwt: str = field(repr=False)
    refresh_token: str = field(repr=False)
    feed_token: str = field(repr=False)
    issued_ns: int
    expires_ns: int


class AngelAuth:
    """One SmartAPI account's session; see the module docstring."""

    def __init__(
        self,
        api_key: str,
        client_code: str,
        pin: str,
        totp_secret: str,
        *,
        root: str = ANGEL_API_ROOT,
        client: httpx.AsyncClient | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
        retries: int = 3,
        backoff_secs: float = 1.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.api_key = api_key
        self.client_code = client_code
        self._pin = pin
        self._totp = pyotp.TOTP(totp_secret)
        for secret in (pin, totp_secret):
            register_secret(secret)
        self.root = root.rstrip("/")
        self._client = client
        self._clock = clock_ns
        self.retries = retries
        self.backoff_secs = backoff_secs
        self._sleep = sleep
        self.session: AngelSession | None = None
        self.logins = 0
        self.renewals = 0
        self._lock = asyncio.Lock()  # one login/renewal at a time (shards, renewal task, history)

    def __repr__(self) -> str:
        return f"AngelAuth(api_key={self.api_key!r}, client_code={self.client_code!r})"

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> AngelAuth:
        names = ("angel_api_key", "angel_client_code", "angel_pin", "angel_totp_secret")
        values = [settings.secret(n) for n in names]
        missing = [f"TICKSTREAM_{n.upper()}" for n, v in zip(names, values, strict=True) if not v]
        if missing:
            raise AuthError(f"Angel One needs {', '.join(missing)}")
        api_key, code, pin, totp = (v or "" for v in values)
        return cls(api_key, code, pin, totp, **kwargs)

    def credential_id(self) -> str:
        return fingerprint(self.session.feed_token + self.session.jwt) if self.session else "none"

    def headers(self) -> dict[str, str]:
        """REST headers with the current jwt (AuthError before login)."""
        return angel_headers(self.api_key, self._require().jwt)

    def _require(self) -> AngelSession:
        if self.session is None:
            raise AuthError("Angel One: not logged in")
        return self.session

    def expires_soon(self, now_ns: int | None = None) -> bool:
        now = self._clock() if now_ns is None else now_ns
        return self.session is None or now >= self.session.expires_ns - RENEW_MARGIN_NS

    async def ensure_fresh(self) -> AngelSession:
        """A session valid for a while yet: login, or renewal close to 05:00 IST."""
        async with self._lock:
            if self.session is None:
                return await self.login()
            if self.expires_soon():
                return await self.renew()
            return self.session

    async def reauthenticate(self) -> bool:
        """After a 401: renew (or log in again); True when the tokens changed."""
        before = self.credential_id()
        async with self._lock:
            if self.session is None:
                await self.login()
            else:
                await self.renew()
        return self.credential_id() != before

    async def login(self) -> AngelSession:
        """``loginByPassword`` with a fresh TOTP, up to ``retries`` times with backoff."""
        last = "no attempt"
        for attempt in range(self.retries):
            if attempt:
                await self._sleep(self.backoff_secs * 2 ** (attempt - 1))
            body = {"clientcode": self.client_code, "password": self._pin, "totp": self._totp.now()}
            try:
                data = await self._post(LOGIN_PATH, body, angel_headers(self.api_key))
            except AuthError as exc:
                last = str(exc)
                log.warning(
                    "angel: login attempt %d/%d failed: %s", attempt + 1, self.retries, last
                )
                continue
            self.logins += 1
            return self._use(data)
        raise AuthError(f"Angel One login failed after {self.retries} attempts: {last}")

    async def renew(self) -> AngelSession:
        """``generateTokens`` with the refresh token; a fresh login when that is refused."""
        session = self._require()
        body = {"refreshToken": session.refresh_token}
        try:
            data = await self._post(TOKENS_PATH, body, angel_headers(self.api_key, session.jwt))
        except AuthError as exc:
            log.info("angel: token renewal refused (%s); logging in again", exc)
            return await self.login()
        self.renewals += 1
        return self._use(data)

    def _use(self, data: dict[str, Any]) -> AngelSession:
        try:
            jwt, refresh, feed = (str(data[k]) for k in ("jwtToken", "refreshToken", "feedToken"))
        except KeyError as exc:
            raise AuthError(f"Angel One session response lacks {exc.args[0]}") from None
        jwt = jwt.removeprefix("Bearer ").strip()
        for secret in (jwt, refresh, feed):
            register_secret(secret)
        now = self._clock()
        self.session = AngelSession(jwt, refresh, feed, now, next_expiry_ns(now))
        log.info("angel: session ready (%s)", self.credential_id())
        return self.session

    async def _post(self, path: str, body: dict[str, str], headers: dict[str, str]) -> Any:
        client = self._client or httpx.AsyncClient(timeout=10.0)
        try:
            response = await client.post(self.root + path, json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise AuthError(f"request failed: {type(exc).__name__}") from None
        finally:
            if self._client is None:
                await client.aclose()
        try:
            payload = response.json()
        except ValueError:
            raise AuthError(f"HTTP {response.status_code}, not JSON") from None
        if not isinstance(payload, dict) or payload.get("status") is not True:
            get = payload.get if isinstance(payload, dict) else {}.get
            code = get("errorcode") or get("errorCode") or "?"
            raise AuthError(f"HTTP {response.status_code} {code}: {str(get('message', ''))[:200]}")
        data = payload.get("data")
        if not isinstance(data, dict):
            raise AuthError("response has no data")
        return data

    async def keep_fresh(self) -> None:
        """Run forever: renew the session 10 minutes before each 05:00 IST expiry."""
        while True:
            session = await self.ensure_fresh()
            wait_ns = session.expires_ns - RENEW_MARGIN_NS - self._clock()
            await self._sleep(max(1.0, wait_ns / 1e9))
