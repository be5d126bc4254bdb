"""API keys (hashed at rest, scopes), token buckets and the authenticator."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickstream.serve.security import (
    Authenticator,
    AuthError,
    KeyStore,
    RateLimiter,
    Scope,
    TokenBucket,
    bootstrap_keys,
    parse_key,
)


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_key_file_holds_digest_never_plaintext(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    store = KeyStore(path=path)
    key, record = store.create([Scope.READ], name="ui")
    text = path.read_text()
    secret = key.split("_", 2)[2]
    assert secret not in text
    assert json.loads(text)["keys"][0]["digest"] == record.digest
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_key_reloaded_from_file_verifies_to_same_record(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    key, record = KeyStore(path=path).create([Scope.ADMIN], name="ops")
    found = KeyStore.load(path).verify(key)
    assert found == record
    assert found is not None and found.allows(Scope.READ)


def test_key_wrong_secret_or_malformed_is_rejected() -> None:
    store = KeyStore()
    key, record = store.create([Scope.READ], save=False)
    assert store.verify(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert store.verify(f"tsk_{record.key_id}_") is None
    assert store.verify("Bearer nonsense") is None
    assert store.verify("tsk_000000000000_abc") is None


def test_key_revoked_no_longer_verifies() -> None:
    store = KeyStore()
    key, record = store.create([Scope.READ], save=False)
    assert store.verify(key) is not None
    assert store.revoke(record.key_id) is True
    assert store.verify(key) is None


def test_key_repr_shows_no_digest() -> None:
    _, record = KeyStore().create([Scope.READ], name="x", save=False)
    assert record.digest not in repr(record)


@given(st.text(max_size=80))
def test_parse_key_never_raises_and_roundtrips_ids(text: str) -> None:
    parsed = parse_key(text)
    if parsed is not None:
        assert text == f"tsk_{parsed[0]}_{parsed[1]}"


def test_bootstrap_on_loopback_creates_one_admin_key_once(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    store, key = bootstrap_keys(path, loopback=True)
    again, key2 = bootstrap_keys(path, loopback=True)
    assert key is not None
    assert key2 is None
    record = again.verify(key)
    assert record is not None and record.allows(Scope.ADMIN)
    assert len(store) == len(again) == 1


def test_bootstrap_off_loopback_creates_nothing(tmp_path: Path) -> None:
    store, key = bootstrap_keys(tmp_path / "k.json", loopback=False)
    assert key is None
    assert len(store) == 0
    assert not (tmp_path / "k.json").exists()


def test_token_bucket_burst_then_waits_for_refill() -> None:
    bucket = TokenBucket(rate=2.0, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.5)
    assert bucket.take(0.5) == 0.0


@settings(max_examples=60)
@given(
    rate=st.floats(0.5, 50),
    burst=st.integers(1, 20),
    gaps=st.lists(st.floats(0, 2), min_size=1, max_size=60),
)
def test_token_bucket_never_allows_more_than_burst_plus_refill(
    rate: float, burst: int, gaps: list[float]
) -> None:
    bucket = TokenBucket(rate, burst, now=0.0)
    now, allowed = 0.0, 0
    for gap in gaps:
        now += gap
        allowed += bucket.take(now) == 0.0
    assert allowed <= burst + rate * now + 1e-9


def test_rate_limiter_retry_after_is_whole_seconds_at_least_one() -> None:
    clock = Clock()
    limiter = RateLimiter(clock)
    assert limiter.check("k", rate=0.25, burst=1) == 0
    assert limiter.check("k", rate=0.25, burst=1) == 4
    clock.t += 4
    assert limiter.check("k", rate=0.25, burst=1) == 0


def test_authenticator_statuses_by_case() -> None:
    store = KeyStore()
    read, _ = store.create([Scope.READ], rate_per_sec=1, burst=1, save=False)
    auth = Authenticator(store, RateLimiter(Clock()))
    with pytest.raises(AuthError) as missing:
        auth.authenticate(None, Scope.READ, "1.2.3.4")
    with pytest.raises(AuthError) as wrong:
        auth.authenticate("tsk_x_y", Scope.READ, "1.2.3.4")
    with pytest.raises(AuthError) as scope:
        auth.authenticate(read, Scope.ADMIN, "1.2.3.4")
    assert (missing.value.status, wrong.value.status, scope.value.status) == (401, 401, 403)
    record = auth.authenticate(read, Scope.READ, "1.2.3.4")
    with pytest.raises(AuthError) as limited:
        auth.authenticate(read, Scope.READ, "1.2.3.4")
    assert record.name == "key"
    assert (limited.value.status, limited.value.retry_after) == (429, 1)


def test_authenticator_failed_guesses_are_limited_per_address() -> None:
    auth = Authenticator(KeyStore(), RateLimiter(Clock()), failures_per_sec=1, failure_burst=2)
    codes = []
    for _ in range(3):
        with pytest.raises(AuthError) as exc:
            auth.authenticate("tsk_abc_def", Scope.READ, "9.9.9.9")
        codes.append(exc.value.status)
    assert codes == [401, 401, 429]
