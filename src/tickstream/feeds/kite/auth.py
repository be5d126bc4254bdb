"""Kite Connect authentication: login URL, request_token -> access_token, token from env or file.

Kite's flow needs a browser once a day: the user opens :func:`login_url`, Kite redirects to the
app's redirect URL with a ``request_token``, and :meth:`KiteAuth.exchange` trades it (with
``checksum = sha256(api_key + request_token + api_secret)``) for an ``access_token``. The token is
valid until the next 06:00 IST (:func:`next_expiry_ns`); after that every call and every ticker
handshake answers 403. Without a browser at hand the token comes from the environment or a file
that an operator (or a login helper) rewrites each morning; :meth:`KiteAuth.refresh` re-reads it.

Secrets (api secret, access token) are registered with the log scrubber and never appear in a
repr, a log line or an exception message.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlencode

import httpx

from tickstream.calendar import ist_date, ist_ns
from tickstream.feeds.base import AuthError
from tickstream.logs import register_secret

if TYPE_CHECKING:
    from tickstream.config import Settings

__all__ = [
    "KITE_API_ROOT",
    "KITE_LOGIN_ROOT",
    "KiteAuth",
    "KiteSession",
    "checksum",
    "login_url",
    "next_expiry_ns",
]

log = logging.getLogger(__name__)

KITE_API_ROOT: Final = "https://api.kite.trade"
KITE_LOGIN_ROOT: Final = "https://kite.zerodha.com"
EXPIRY_HOUR_IST: Final = 6
_HEADERS: Final = {"X-Kite-Version": "3"}


def login_url(api_key: str, *, root: str = KITE_LOGIN_ROOT) -> str:
    """Where the user logs in; Kite then redirects with ``?request_token=...``."""
    return f"{root}/connect/login?{urlencode({'v': 3, 'api_key': api_key})}"


def checksum(api_key: str, request_token: str, api_secret: str) -> str:
    """``sha256(api_key + request_token + api_secret)`` in hex, as /session/token wants it."""
    return hashlib.sha256((api_key + request_token + api_secret).encode()).hexdigest()


def next_expiry_ns(issued_ns: int) -> int:
    """The first 06:00 IST strictly after ``issued_ns`` (when a Kite token stops working)."""
    day = ist_date(issued_ns)
    expiry = ist_ns(day, EXPIRY_HOUR_IST)
    return expiry if expiry > issued_ns else ist_ns(day + dt.timedelta(days=1), EXPIRY_HOUR_IST)


def fingerprint(secret: str) -> str:
    """A short, non-reversible id of a secret (to tell tokens apart without showing them)."""
    return hashlib.blake2s(secret.encode(), digest_size=6).hexdigest()


@dataclass(frozen=True, slots=True)
class KiteSession:
    """An access token and when it was issued / stops working."""

    access_token: str = field(repr=False)
    issued_ns: int
    expires_ns: int
    user_id: str = ""


class KiteAuth:
    """The access token of one Kite Connect app; see the module docstring."""

    def __init__(
        self,
        api_key: str,
        *,
        api_secret: str | None = None,
        access_token: str | None = None,
        token_file: Path | None = None,
        root: str = KITE_API_ROOT,
        client: httpx.AsyncClient | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.api_key = api_key
        self._secret = api_secret
        self.token_file = token_file
        self.root = root.rstrip("/")
        self._client = client
        self._clock = clock_ns
        register_secret(api_secret)
        self.session: KiteSession | None = None
        if access_token:
            self._use(access_token)
        elif token_file is not None and token_file.is_file():
            self._use_file()

    def __repr__(self) -> str:
        return f"KiteAuth(api_key={self.api_key!r}, token_file={self.token_file!s})"

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> KiteAuth:
        api_key = settings.secret("kite_api_key")
        if not api_key:
            raise AuthError("Kite needs TICKSTREAM_KITE_API_KEY")
        return cls(
            api_key,
            api_secret=settings.secret("kite_api_secret"),
            access_token=settings.secret("kite_access_token"),
            token_file=settings.kite_access_token_file,
            **kwargs,
        )

    def _use(self, token: str, issued_ns: int | None = None, user_id: str = "") -> None:
        register_secret(token)
        issued = self._clock() if issued_ns is None else issued_ns
        self.session = KiteSession(token, issued, next_expiry_ns(issued), user_id)

    def _use_file(self) -> bool:
        assert self.token_file is not None
        try:
            token = self.token_file.read_text("utf-8").strip()
            mtime_ns = self.token_file.stat().st_mtime_ns
        except OSError as exc:
            log.warning("kite: cannot read the access token file: %s", type(exc).__name__)
            return False
        if not token or (self.session is not None and token == self.session.access_token):
            return False
        self._use(token, min(mtime_ns, self._clock()))
        return True

    def access_token(self) -> str:
        """The current token; AuthError when there is none or it has passed 06:00 IST."""
        if self.session is None:
            raise AuthError(
                "no Kite access token: set TICKSTREAM_KITE_ACCESS_TOKEN or "
                "TICKSTREAM_KITE_ACCESS_TOKEN_FILE, or log in (tickstream kite login URL)"
            )
        if self.expired():
            raise AuthError("the Kite access token expired at 06:00 IST; log in again")
        return self.session.access_token

    def expired(self, now_ns: int | None = None) -> bool:
        now = self._clock() if now_ns is None else now_ns
        return self.session is not None and now >= self.session.expires_ns

    def credential_id(self) -> str:
        return fingerprint(self.session.access_token) if self.session else "none"

    def headers(self) -> dict[str, str]:
        """REST headers: ``Authorization: token api_key:access_token``."""
        return {**_HEADERS, "Authorization": f"token {self.api_key}:{self.access_token()}"}

    async def refresh(self) -> bool:
        """Re-read the token file; True when it holds a new token."""
        if self.token_file is None:
            return False
        changed = self._use_file()
        if changed:
            log.info("kite: new access token read from file (%s)", self.credential_id())
        return changed

    async def exchange(self, request_token: str) -> KiteSession:
        """Trade a login's ``request_token`` for an access token (saved to the file, if set)."""
        if not self._secret:
            raise AuthError("Kite login needs TICKSTREAM_KITE_API_SECRET")
        register_secret(request_token)
        form = {
            "api_key": self.api_key,
            "request_token": request_token,
            "checksum": checksum(self.api_key, request_token, self._secret),
        }
        data = await self._post("/session/token", form)
        token = data.get("access_token")
        if not isinstance(token, str) or not token:
            raise AuthError("Kite session response has no access_token")
        self._use(token, user_id=str(data.get("user_id", "")))
        self._save(token)
        log.info("kite: logged in (%s)", self.credential_id())
        assert self.session is not None
        return self.session

    async def _post(self, path: str, form: dict[str, str]) -> dict[str, Any]:
        client = self._client or httpx.AsyncClient(timeout=10.0)
        try:
            response = await client.post(self.root + path, data=form, headers=_HEADERS)
        except httpx.HTTPError as exc:
            raise AuthError(f"Kite login request failed: {type(exc).__name__}") from None
        finally:
            if self._client is None:
                await client.aclose()
        try:
            body = response.json()
        except ValueError:
            raise AuthError(f"Kite login: HTTP {response.status_code}, not JSON") from None
        if response.status_code != 200 or body.get("status") != "success":
            kind, message = body.get("error_type", "?"), str(body.get("message", ""))[:200]
            raise AuthError(f"Kite login refused: HTTP {response.status_code} {kind}: {message}")
        data = body.get("data")
        return data if isinstance(data, dict) else {}

    def _save(self, token: str) -> None:
        if self.token_file is None:
            return
        self.token_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(token + "\n")
