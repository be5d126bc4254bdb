"""API keys (stored hashed, with scopes) and per-key token-bucket rate limits.

A key looks like ``tsk_<id>_<secret>``. The key file keeps, per id, a random salt and the scrypt
digest of the secret, never the key itself: the plaintext exists only in the response to
:meth:`KeyStore.create` (and the one-time console line of the embedded default). Verification is
one scrypt per key per process; afterwards a keyed BLAKE2b of the presented key (with a per-process
random key, memory only) finds the verified record without paying scrypt on every request.

Scopes: ``read`` (REST queries, WebSocket) and ``admin`` (subscribing feeds, any admin action);
``admin`` implies ``read``. Each key has a token bucket (``rate_per_sec``, ``burst``); an empty
bucket answers 429 with ``Retry-After``. Failed verifications are limited per client address too,
so guessing keys cannot burn the CPU on scrypt.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import logging
import math
import os
import secrets
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Final

import msgspec

__all__ = [
    "ApiKey",
    "AuthError",
    "Authenticator",
    "KeyStore",
    "RateLimiter",
    "Scope",
    "TokenBucket",
    "bootstrap_keys",
    "parse_key",
]

log = logging.getLogger(__name__)

_PREFIX: Final = "tsk"
_SCRYPT_N: Final = 2**14
_SCRYPT_R: Final = 8
_SCRYPT_P: Final = 1
_CACHE_MAX: Final = 4096


class Scope(enum.StrEnum):
    READ = "read"
    ADMIN = "admin"


class ApiKey(msgspec.Struct, frozen=True, kw_only=True):
    """One stored key: its id, scopes and limits, and the salted scrypt digest of the secret."""

    key_id: str
    name: str
    scopes: tuple[Scope, ...]
    salt: str
    digest: str
    created_ns: int
    rate_per_sec: float = 20.0
    burst: int = 40

    def __repr__(self) -> str:  # the digest is not a secret, but it has no business in logs
        return f"ApiKey(key_id={self.key_id!r}, name={self.name!r}, scopes={self.scopes!r})"

    def allows(self, scope: Scope) -> bool:
        return scope in self.scopes or Scope.ADMIN in self.scopes


class _KeyFile(msgspec.Struct):
    keys: list[ApiKey] = msgspec.field(default_factory=list)


def _scrypt(secret: str, salt: bytes) -> bytes:
    return hashlib.scrypt(
        secret.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32
    )


def parse_key(key: str) -> tuple[str, str] | None:
    """``tsk_<id>_<secret>`` -> (id, secret); None for anything else."""
    prefix, _, rest = key.partition("_")
    key_id, _, secret = rest.partition("_")
    if prefix != _PREFIX or not key_id or not secret or len(key) > 200:
        return None
    return key_id, secret


class KeyStore:
    """The set of API keys, optionally persisted to a JSON file (mode 0600)."""

    def __init__(self, keys: Iterable[ApiKey] = (), path: Path | None = None) -> None:
        self.path = path
        self._keys: dict[str, ApiKey] = {k.key_id: k for k in keys}
        self._pepper = secrets.token_bytes(32)  # per process, memory only
        self._verified: dict[bytes, str] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"KeyStore(path={self.path!s}, keys={len(self._keys)})"

    @classmethod
    def load(cls, path: Path) -> KeyStore:
        """Read a key file; a missing file is an empty store bound to that path."""
        if not path.is_file():
            return cls(path=path)
        data = msgspec.json.decode(path.read_bytes(), type=_KeyFile)
        return cls(data.keys, path)

    def save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(msgspec.json.format(msgspec.json.encode(_KeyFile(list(self._keys.values())))))
        tmp.replace(self.path)

    def keys(self) -> list[ApiKey]:
        return list(self._keys.values())

    def create(
        self,
        scopes: Iterable[Scope | str],
        *,
        name: str = "key",
        rate_per_sec: float = 20.0,
        burst: int = 40,
        save: bool = True,
    ) -> tuple[str, ApiKey]:
        """Make a key; returns (plaintext, record). The plaintext is never stored."""
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(24)
        salt = secrets.token_bytes(16)
        record = ApiKey(
            key_id=key_id,
            name=name,
            scopes=tuple(sorted({Scope(s) for s in scopes})),
            salt=salt.hex(),
            digest=_scrypt(secret, salt).hex(),
            created_ns=time.time_ns(),
            rate_per_sec=rate_per_sec,
            burst=burst,
        )
        self._keys[key_id] = record
        if save:
            self.save()
        return f"{_PREFIX}_{key_id}_{secret}", record

    def revoke(self, key_id: str) -> bool:
        found = self._keys.pop(key_id, None) is not None
        self._verified = {h: k for h, k in self._verified.items() if k != key_id}
        if found:
            self.save()
        return found

    def _fingerprint(self, key: str) -> bytes:
        return hmac.new(self._pepper, key.encode(), hashlib.blake2b).digest()

    def lookup(self, key: str) -> ApiKey | None:
        """The record of an already verified key, without scrypt (None if not verified yet)."""
        key_id = self._verified.get(self._fingerprint(key))
        return None if key_id is None else self._keys.get(key_id)

    def verify(self, key: str) -> ApiKey | None:
        """The record for a presented key, or None (unknown id, wrong secret, malformed)."""
        cached = self.lookup(key)
        if cached is not None:
            return cached
        parsed = parse_key(key)
        if parsed is None:
            return None
        record = self._keys.get(parsed[0])
        if record is None:
            return None
        digest = _scrypt(parsed[1], bytes.fromhex(record.salt))
        if not hmac.compare_digest(digest, bytes.fromhex(record.digest)):
            return None
        if len(self._verified) >= _CACHE_MAX:
            self._verified.clear()
        self._verified[self._fingerprint(key)] = record.key_id
        return record


def bootstrap_keys(path: Path, *, loopback: bool) -> tuple[KeyStore, str | None]:
    """Load the key file; on a loopback server with no keys yet, create one admin key.

    Returns the store and the new key's plaintext (None when nothing was created): the caller
    shows it once, and it cannot be recovered afterwards.
    """
    store = KeyStore.load(path)
    if len(store) or not loopback:
        return store, None
    plaintext, record = store.create([Scope.ADMIN, Scope.READ], name="local-admin")
    log.info("created API key %s (admin) in %s", record.key_id, path)
    return store, plaintext


class TokenBucket:
    """``rate`` tokens per second up to ``burst``; :meth:`take` says how long to wait if empty."""

    __slots__ = ("burst", "last", "rate", "tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("need rate > 0 and burst >= 1")
        self.rate, self.burst = rate, float(burst)
        self.tokens, self.last = float(burst), now

    def take(self, now: float, cost: float = 1.0) -> float:
        """Take ``cost`` tokens: 0.0 when allowed, else the seconds until they would be there."""
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= cost:
            self.tokens -= cost
            return 0.0
        return (cost - self.tokens) / self.rate


class RateLimiter:
    """One bucket per name (key id, client address), created on first use; bounded in count."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_buckets: int = 10_000):
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}
        self._max = max_buckets

    def check(self, name: str, rate: float, burst: float) -> int:
        """0 when allowed, else the whole seconds to put in ``Retry-After`` (at least 1)."""
        now = self._clock()
        bucket = self._buckets.get(name)
        if bucket is None:
            if len(self._buckets) >= self._max:
                self._buckets.clear()
            bucket = self._buckets[name] = TokenBucket(rate, burst, now)
        wait = bucket.take(now)
        return 0 if wait == 0.0 else max(1, math.ceil(wait))


class AuthError(Exception):
    """Why a request was refused: HTTP ``status`` (401, 403, 429) and ``retry_after`` seconds."""

    def __init__(self, status: int, message: str, retry_after: int = 0) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


class Authenticator:
    """Checks a presented key for a scope and charges its rate limit; raises :class:`AuthError`."""

    def __init__(
        self,
        keys: KeyStore,
        limiter: RateLimiter | None = None,
        *,
        failures_per_sec: float = 2.0,
        failure_burst: int = 10,
    ) -> None:
        self.keys = keys
        self.limiter = limiter or RateLimiter()
        self._fail_rate, self._fail_burst = failures_per_sec, failure_burst

    def authenticate(self, key: str | None, scope: Scope, client: str) -> ApiKey:
        if not key:
            raise AuthError(401, "missing API key (send the X-API-Key header)")
        record = self.keys.lookup(key)
        if record is None:
            # Unverified key: scrypt is costly, so first charge the client's failure budget.
            wait = self.limiter.check(f"auth:{client}", self._fail_rate, self._fail_burst)
            if wait:
                raise AuthError(429, "too many authentication attempts", wait)
            record = self.keys.verify(key)
            if record is None:
                raise AuthError(401, "invalid API key")
        if not record.allows(scope):
            raise AuthError(403, f"this API key lacks the {scope.value!r} scope")
        wait = self.limiter.check(f"key:{record.key_id}", record.rate_per_sec, record.burst)
        if wait:
            raise AuthError(429, "rate limit exceeded for this API key", wait)
        return record
