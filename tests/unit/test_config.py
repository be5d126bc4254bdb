from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tickstream.config import ConfigError, load_settings, redact_url
from tickstream.logs import setup_logging
from tickstream.model import Interval

SECRETS = {
    "TICKSTREAM_KITE_API_KEY": "kite-key-7f3a9c",
    "TICKSTREAM_KITE_API_SECRET": "kite-secret-b81d2e",
    "TICKSTREAM_KITE_ACCESS_TOKEN": "kite-access-0c4f55",
    "TICKSTREAM_ANGEL_API_KEY": "angel-key-19ab33",
    "TICKSTREAM_ANGEL_CLIENT_CODE": "A1234567",
    "TICKSTREAM_ANGEL_PIN": "4321-pin",
    "TICKSTREAM_ANGEL_TOTP_SECRET": "JBSWY3DPEHPK3PXP",
    "DATABASE_URL": "postgresql://ts:pg-pass-991@127.0.0.1:5440/ts",
    "REDIS_URL": "redis://:redis-pass-42@127.0.0.1:6390/0",
}
SECRET_VALUES = [
    "kite-key-7f3a9c",
    "kite-secret-b81d2e",
    "kite-access-0c4f55",
    "angel-key-19ab33",
    "A1234567",
    "4321-pin",
    "JBSWY3DPEHPK3PXP",
    "pg-pass-991",
    "redis-pass-42",
]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    import os

    for key in list(os.environ):
        if key.startswith("TICKSTREAM_") or key in ("DATABASE_URL", "REDIS_URL", "KAFKA_BOOTSTRAP"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)  # no stray .env from the developer's checkout
    return monkeypatch


def test_settings_no_env_defaults_to_embedded_backends(clean_env: pytest.MonkeyPatch) -> None:
    s = load_settings()
    assert s.describe()["bus"] == "memory"
    assert s.describe()["store"] == "duckdb"
    assert s.resolved_feed() == "sim"
    assert s.candle_intervals == (Interval.S1, Interval.M1, Interval.M5)
    assert (s.host, s.port) == ("127.0.0.1", 8000)


def test_settings_backend_urls_select_backends(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("REDIS_URL", "redis://127.0.0.1:6390/0")
    clean_env.setenv("DATABASE_URL", "postgresql://a:b@127.0.0.1/x")
    clean_env.setenv("KAFKA_BOOTSTRAP", "127.0.0.1:9093")
    s = load_settings()
    assert s.secret("redis_url") == "redis://127.0.0.1:6390/0"
    assert s.kafka_bootstrap == "127.0.0.1:9093"
    assert s.describe()["store"] == "postgres"


def test_settings_secrets_never_in_repr_str_or_describe(clean_env: pytest.MonkeyPatch) -> None:
    for k, v in SECRETS.items():
        clean_env.setenv(k, v)
    s = load_settings()
    text = repr(s) + str(s) + repr(s.describe()) + repr(s.model_dump())
    for value in SECRET_VALUES:
        assert value not in text
    assert s.secret("kite_api_secret") == "kite-secret-b81d2e"
    assert s.resolved_feed() == "kite"


def test_settings_invalid_value_error_hides_secrets(clean_env: pytest.MonkeyPatch) -> None:
    for k, v in SECRETS.items():
        clean_env.setenv(k, v)
    clean_env.setenv("TICKSTREAM_PORT", "not-a-port")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "port" in str(info.value)
    for value in SECRET_VALUES:
        assert value not in str(info.value)
        assert value not in repr(info.value)


def test_settings_secret_in_log_line_is_scrubbed(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for k, v in SECRETS.items():
        clean_env.setenv(k, v)
    s = load_settings()
    setup_logging("DEBUG")
    log = logging.getLogger("tickstream.test")
    log.debug("token=%s pin=%s", s.secret("kite_access_token"), s.secret("angel_pin"))
    try:
        raise RuntimeError(f"login failed for {s.secret('kite_api_secret')}")
    except RuntimeError:
        log.exception("boom")
    err = capsys.readouterr().err
    assert "token=*** pin=***" in err
    assert "login failed for ***" in err
    for value in SECRET_VALUES:
        assert value not in err


def test_settings_unknown_env_key_is_error_with_suggestion(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("TICKSTREAM_CANDLE_LATENESS_MSS", "5")
    with pytest.raises(ConfigError, match="did you mean TICKSTREAM_CANDLE_LATENESS_MS"):
        load_settings()


def test_settings_unknown_dotenv_key_is_error(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("TICKSTREAM_PORT=9001\nTICKSTREAM_PROT=1\n")
    with pytest.raises(ConfigError, match="tickstream_prot"):
        load_settings()


def test_settings_dotenv_value_is_read(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("TICKSTREAM_PORT=9001\n")
    assert load_settings().port == 9001


def test_settings_toml_file_values_and_env_precedence(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cfg = tmp_path / "tickstream.toml"
    cfg.write_text('port = 9100\ncandle_intervals = ["1m", "15m"]\nhost = "0.0.0.0"\n')
    clean_env.setenv("TICKSTREAM_PORT", "9200")
    s = load_settings(cfg)
    assert s.port == 9200  # environment beats the file
    assert s.host == "0.0.0.0"
    assert s.candle_intervals == (Interval.M1, Interval.M15)


def test_settings_toml_unknown_key_is_error(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = tmp_path / "tickstream.toml"
    cfg.write_text("prot = 9100\n")
    with pytest.raises(ConfigError, match="prot"):
        load_settings(cfg)


def test_settings_missing_toml_file_is_error(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.toml")


def test_settings_interval_list_from_env_parsed(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("TICKSTREAM_CANDLE_INTERVALS", "1s, 5m")
    assert load_settings().candle_intervals == (Interval.S1, Interval.M5)
    clean_env.setenv("TICKSTREAM_CANDLE_INTERVALS", "1m,7m")
    with pytest.raises(ConfigError, match="unknown interval '7m'"):
        load_settings()


def test_settings_are_frozen(clean_env: pytest.MonkeyPatch) -> None:
    s = load_settings()
    with pytest.raises(ValueError, match="frozen"):
        s.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u:pw@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("redis://:pw@127.0.0.1:6390/0", "redis://:***@127.0.0.1:6390/0"),
        ("redis://127.0.0.1:6390/0", "redis://127.0.0.1:6390/0"),
        (None, None),
    ],
)
def test_redact_url_password_replaced(url: str | None, expected: str | None) -> None:
    assert redact_url(url) == expected
