"""What the simulator's REST apps need from whoever owns the simulator's credentials and tokens.

The REST apps (:mod:`tickstream.sim.kite_rest`, :mod:`tickstream.sim.angel_rest`) log users in and
check tokens; the tokens they issue must also open the simulator's WebSocket servers, so issuing
and validating lives in one :class:`TokenAuthority`. :class:`LocalAuthority` is the small in-memory
implementation (used standalone and in tests); the simulator's server adapts to the same protocol.
Secrets never appear in a repr.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "AngelSecrets",
    "AngelSecretsLike",
    "KiteSecrets",
    "KiteSecretsLike",
    "LocalAuthority",
    "TokenAuthority",
]


class KiteSecretsLike(Protocol):
    @property
    def api_key(self) -> str: ...
    @property
    def api_secret(self) -> str: ...


class AngelSecretsLike(Protocol):
    @property
    def api_key(self) -> str: ...
    @property
    def client_code(self) -> str: ...
    @property
    def pin(self) -> str: ...
    @property
    def totp_secret(self) -> str: ...


class TokenAuthority(Protocol):
    """Credentials to check logins against, token issuing, and token validity."""

    @property
    def kite(self) -> KiteSecretsLike: ...
    @property
    def angel(self) -> AngelSecretsLike: ...
    def issue_kite_token(self) -> str: ...
    def issue_angel_tokens(self) -> tuple[str, str, str]:
        """A fresh (jwt, refresh token, feed token)."""
        ...

    def kite_token_valid(self, access_token: str) -> bool: ...
    def angel_jwt_valid(self, jwt: str) -> bool: ...
    def angel_refresh_valid(self, refresh_token: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class KiteSecrets:
    api_key: str
    api_secret: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class AngelSecrets:
    api_key: str
    client_code: str
    pin: str = field(repr=False)
    totp_secret: str = field(repr=False)


def _token() -> str:
    return secrets.token_urlsafe(24)


class LocalAuthority:
    """In-memory :class:`TokenAuthority`: issued tokens stay valid until :meth:`expire_tokens`."""

    def __init__(self, kite: KiteSecrets, angel: AngelSecrets) -> None:
        self._kite = kite
        self._angel = angel
        self._kite_tokens: set[str] = set()
        self._jwts: set[str] = set()
        self._refresh: set[str] = set()

    @classmethod
    def generate(cls) -> LocalAuthority:
        """Random credentials (a base32 TOTP secret, a 4-digit PIN) for a throwaway simulator."""
        kite = KiteSecrets(api_key=secrets.token_hex(8), api_secret=secrets.token_hex(16))
        angel = AngelSecrets(
            api_key=secrets.token_hex(4),
            client_code="S" + str(secrets.randbelow(10**6)).zfill(6),
            pin=str(secrets.randbelow(10**4)).zfill(4),
            totp_secret="".join(
                secrets.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(32)
            ),
        )
        return cls(kite, angel)

    def __repr__(self) -> str:
        return f"LocalAuthority(kite={self._kite!r}, angel={self._angel!r})"

    @property
    def kite(self) -> KiteSecrets:
        return self._kite

    @property
    def angel(self) -> AngelSecrets:
        return self._angel

    def issue_kite_token(self) -> str:
        token = _token()
        self._kite_tokens.add(token)
        return token

    def issue_angel_tokens(self) -> tuple[str, str, str]:
        jwt, refresh, feed = _token(), _token(), _token()
        self._jwts.add(jwt)
        self._refresh.add(refresh)
        return jwt, refresh, feed

    def kite_token_valid(self, access_token: str) -> bool:
        return access_token in self._kite_tokens

    def angel_jwt_valid(self, jwt: str) -> bool:
        return jwt in self._jwts

    def angel_refresh_valid(self, refresh_token: str) -> bool:
        return refresh_token in self._refresh

    def expire_tokens(self) -> None:
        """Invalidate every issued token (as the brokers do at their daily session reset)."""
        self._kite_tokens.clear()
        self._jwts.clear()
        self._refresh.clear()
