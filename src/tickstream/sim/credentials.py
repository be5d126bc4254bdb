"""Simulator credentials: generated per run, checked at the WebSocket handshakes, never logged.

These are credentials of the local simulator only, not of any real broker account. The REST
simulator issues fresh tokens through :meth:`SimAuthority.issue_kite_token` /
:meth:`SimAuthority.issue_angel_tokens` when a login happens;
:meth:`SimAuthority.expire_tokens` makes every later handshake fail (HTTP 403 for Kite, 401 for
Angel) until new tokens are issued.
"""

from __future__ import annotations

import base64
import dataclasses
import hmac
import secrets
from dataclasses import dataclass, field

__all__ = ["AngelAccount", "KiteApp", "SimAuthority", "SimCredentials"]

_SECRET_FIELDS = frozenset(
    {"kite_api_secret", "kite_access_token", "angel_pin", "angel_totp_secret", "angel_jwt",
     "angel_feed_token"}
)  # fmt: skip


def _token(n: int = 24) -> str:
    return secrets.token_hex(n // 2)


@dataclass(frozen=True)
class SimCredentials:
    """Every credential the two simulated brokers know; ``generate()`` makes a fresh set."""

    kite_api_key: str
    kite_api_secret: str
    kite_access_token: str
    angel_api_key: str
    angel_client_code: str
    angel_pin: str
    angel_totp_secret: str
    angel_jwt: str
    angel_feed_token: str

    @classmethod
    def generate(cls) -> SimCredentials:
        return cls(
            kite_api_key=f"simkite{_token(10)}",
            kite_api_secret=_token(32),
            kite_access_token=_token(32),
            angel_api_key=f"simangel{_token(8)}",
            angel_client_code=f"S{secrets.randbelow(10**6):06d}",
            angel_pin=f"{secrets.randbelow(10**4):04d}",
            angel_totp_secret=base64.b32encode(secrets.token_bytes(20)).decode(),
            angel_jwt=f"eyJzaW0iOnRydWV9.{_token(40)}.{_token(16)}",
            angel_feed_token=_token(32),
        )

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{f.name}={'***' if f.name in _SECRET_FIELDS else getattr(self, f.name)!r}"
            for f in dataclasses.fields(self)
        )
        return f"SimCredentials({shown})"

    __str__ = __repr__


def _same(a: str | None, b: str) -> bool:
    return a is not None and hmac.compare_digest(a.encode(), b.encode())


@dataclass(frozen=True, slots=True)
class KiteApp:
    """The simulated Kite Connect app (what a login is checked against)."""

    api_key: str
    api_secret: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class AngelAccount:
    """The simulated Angel One SmartAPI account (what a login is checked against)."""

    api_key: str
    client_code: str
    pin: str = field(repr=False)
    totp_secret: str = field(repr=False)


class SimAuthority:
    """Issued tokens and their validity; what the handshakes and the REST logins check.

    Matches the REST simulator's ``TokenAuthority`` protocol (structurally): tokens issued stay
    valid until :meth:`expire_tokens`, after which every handshake fails (Kite HTTP 403, Angel
    401) until a fresh token is issued. The initial tokens of ``credentials`` are valid at start.
    """

    def __init__(self, credentials: SimCredentials) -> None:
        c = credentials
        self._credentials = c
        self._kite = KiteApp(c.kite_api_key, c.kite_api_secret)
        self._angel = AngelAccount(c.angel_api_key, c.angel_client_code, c.angel_pin,
                                   c.angel_totp_secret)  # fmt: skip
        self._kite_tokens = {c.kite_access_token}
        self._jwts = {c.angel_jwt}
        self._feeds = {c.angel_feed_token}
        self._refresh: set[str] = set()

    def __repr__(self) -> str:
        return f"SimAuthority(kite={self._kite!r}, angel={self._angel!r})"

    @property
    def credentials(self) -> SimCredentials:
        """The credentials with the most recently issued tokens."""
        return self._credentials

    @property
    def kite(self) -> KiteApp:
        return self._kite

    @property
    def angel(self) -> AngelAccount:
        return self._angel

    def issue_kite_token(self) -> str:
        token = _token(32)
        self._kite_tokens.add(token)
        self._credentials = dataclasses.replace(self._credentials, kite_access_token=token)
        return token

    def issue_angel_tokens(self) -> tuple[str, str, str]:
        """A fresh ``(jwt, refresh_token, feed_token)``."""
        jwt, refresh, feed = f"eyJzaW0iOnRydWV9.{_token(40)}.{_token(16)}", _token(32), _token(32)
        self._jwts.add(jwt)
        self._refresh.add(refresh)
        self._feeds.add(feed)
        self._credentials = dataclasses.replace(self._credentials, angel_jwt=jwt,
                                                angel_feed_token=feed)  # fmt: skip
        return jwt, refresh, feed

    def kite_token_valid(self, access_token: str) -> bool:
        return any(_same(access_token, t) for t in self._kite_tokens)

    def angel_jwt_valid(self, jwt: str) -> bool:
        return any(_same(jwt.removeprefix("Bearer ").strip(), t) for t in self._jwts)

    def angel_refresh_valid(self, refresh_token: str) -> bool:
        return any(_same(refresh_token, t) for t in self._refresh)

    def angel_feed_valid(self, feed_token: str) -> bool:
        return any(_same(feed_token, t) for t in self._feeds)

    def expire_tokens(self) -> None:
        """Invalidate every issued token (as the brokers do at their daily reset)."""
        self._kite_tokens.clear()
        self._jwts.clear()
        self._feeds.clear()
        self._refresh.clear()

    def check_kite(self, api_key: str | None, access_token: str | None) -> bool:
        """A Kite ticker handshake's ``api_key`` and ``access_token`` query parameters."""
        return _same(api_key, self._kite.api_key) and self.kite_token_valid(access_token or "")

    def check_angel(
        self, authorization: str | None, api_key: str | None, client_code: str | None,
        feed_token: str | None,
    ) -> bool:  # fmt: skip
        """An Angel SmartStream handshake's headers (``Bearer`` prefix optional on the jwt)."""
        return (
            _same(api_key, self._angel.api_key)
            and _same(client_code, self._angel.client_code)
            and self.angel_jwt_valid(authorization or "")
            and self.angel_feed_valid(feed_token or "")
        )
