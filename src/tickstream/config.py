"""Typed, frozen settings from the environment (``TICKSTREAM_*``), ``.env`` and a TOML file.

Precedence, highest first: explicit keyword arguments, environment, ``.env``, TOML (``--config``),
defaults. Units are in the field names. Unknown keys are errors everywhere: a misspelt
``TICKSTREAM_CANDLE_LATENESS_MS`` in the environment, ``.env`` or TOML stops start-up with the name,
instead of being silently ignored.

The three backend selectors keep their conventional, unprefixed names: ``REDIS_URL``,
``DATABASE_URL`` and ``KAFKA_BOOTSTRAP`` (absent means the embedded default: in-memory bus and
DuckDB). Every credential is a ``SecretStr``: it prints as ``**********`` in reprs, logs and
validation errors, and is registered with the log scrubber when settings load.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from tickstream.logs import register_secrets
from tickstream.model import Interval

__all__ = ["ConfigError", "Settings", "load_settings", "redact_url"]

ENV_PREFIX = "TICKSTREAM_"
_UNPREFIXED = {
    "REDIS_URL": "redis_url",
    "DATABASE_URL": "database_url",
    "KAFKA_BOOTSTRAP": "kafka_bootstrap",
}


class ConfigError(ValueError):
    """A configuration problem, with the offending key named and no secret value shown."""


class Settings(BaseSettings):
    """Everything tickstream reads from its environment."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="forbid",
        frozen=True,
        case_sensitive=False,
        hide_input_in_errors=True,
    )
    _toml_path: ClassVar[Path | None] = None

    # Where things live
    data_dir: Path = Path("data")
    # Backends (absent: embedded defaults)
    redis_url: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("REDIS_URL", "TICKSTREAM_REDIS_URL", "redis_url"),
    )
    database_url: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "TICKSTREAM_DATABASE_URL", "database_url"),
    )
    kafka_bootstrap: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "KAFKA_BOOTSTRAP", "TICKSTREAM_KAFKA_BOOTSTRAP", "kafka_bootstrap"
        ),
    )
    # Server
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    api_key_file: Path | None = None
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ()
    # Feed selection: "auto" uses a real broker when its credentials are set, else the simulator.
    feed: Literal["auto", "sim", "kite", "angelone"] = "auto"
    symbols: Annotated[tuple[str, ...], NoDecode] = ()
    sim_seed: int = 0
    sim_tick_interval_ms: int = Field(default=100, ge=1, le=60_000)
    # JSONL of every tick the simulator sent, for `tickstream check`
    sim_emission_log: Path | None = None
    # Pipeline
    candle_intervals: Annotated[tuple[Interval, ...], NoDecode] = (
        Interval.S1,
        Interval.M1,
        Interval.M5,
    )
    candle_lateness_ms: int = Field(default=2_000, ge=0)
    dedup_window_secs: float = Field(default=60.0, gt=0)
    stale_after_secs: float = Field(default=30.0, gt=0)
    health_no_data_secs: float = Field(default=30.0, gt=0)
    # Connections
    reconnect_delay_initial_secs: float = Field(default=0.5, gt=0)
    reconnect_delay_max_secs: float = Field(default=30.0, gt=0)
    heartbeat_timeout_factor: float = Field(default=3.0, ge=1)
    # Buffers
    feed_queue_max_batches: int = Field(default=10_000, ge=1)
    ws_client_queue_max: int = Field(default=1_000, ge=1)
    ring_buffer_ticks: int = Field(default=500, ge=1)
    # Broker credentials (never printed)
    kite_api_key: SecretStr | None = None
    kite_api_secret: SecretStr | None = None
    kite_access_token: SecretStr | None = None
    kite_access_token_file: Path | None = None
    angel_api_key: SecretStr | None = None
    angel_client_code: SecretStr | None = None
    angel_pin: SecretStr | None = None
    angel_totp_secret: SecretStr | None = None

    @field_validator("candle_intervals", mode="before")
    @classmethod
    def _parse_intervals(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [v for v in value.replace(" ", "").split(",") if v]
        if isinstance(value, list | tuple):
            return tuple(Interval.parse(v) if isinstance(v, str) else v for v in value)
        return value

    @field_validator("symbols", "cors_origins", mode="before")
    @classmethod
    def _parse_csv(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, dotenv_settings]
        if cls._toml_path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=cls._toml_path))
        return tuple(sources)

    # Derived views ---------------------------------------------------------------------------
    def secret(self, name: str) -> str | None:
        """The plain value of a secret field (for the one place that must send it)."""
        value = getattr(self, name)
        return value.get_secret_value() if isinstance(value, SecretStr) else None

    def secret_values(self) -> list[str]:
        return [
            v.get_secret_value()
            for v in (getattr(self, f) for f in type(self).model_fields)
            if isinstance(v, SecretStr)
        ]

    @property
    def kite_configured(self) -> bool:
        return self.kite_api_key is not None and (
            self.kite_access_token is not None or self.kite_access_token_file is not None
        )

    @property
    def angel_configured(self) -> bool:
        return all(
            v is not None
            for v in (
                self.angel_api_key,
                self.angel_client_code,
                self.angel_pin,
                self.angel_totp_secret,
            )
        )

    def resolved_feed(self) -> str:
        """The feed ``auto`` resolves to: a configured broker, else the simulator."""
        if self.feed != "auto":
            return self.feed
        if self.kite_configured:
            return "kite"
        if self.angel_configured:
            return "angelone"
        return "sim"

    def describe(self) -> dict[str, Any]:
        """A loggable summary: backends with credentials redacted, never a secret."""
        return {
            "feed": self.resolved_feed(),
            "bus": "redis" if self.redis_url else ("kafka" if self.kafka_bootstrap else "memory"),
            "store": "postgres" if self.database_url else "duckdb",
            "redis_url": redact_url(self.secret("redis_url")),
            "database_url": redact_url(self.secret("database_url")),
            "kafka_bootstrap": self.kafka_bootstrap,
            "data_dir": str(self.data_dir),
            "http": f"http://{self.host}:{self.port}",
            "candle_intervals": [i.value for i in self.candle_intervals],
        }


def redact_url(url: str | None) -> str | None:
    """``postgresql://user:pw@host/db`` → ``postgresql://user:***@host/db``."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _check_unknown_env(environ: Mapping[str, str]) -> None:
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    for key in environ:
        upper = key.upper()
        if upper.startswith(ENV_PREFIX) and upper not in known:
            hint = difflib.get_close_matches(upper, known, n=1)
            suffix = f"; did you mean {hint[0]}?" if hint else ""
            raise ConfigError(f"unknown setting {key}{suffix}")


def load_settings(
    config_file: Path | None = None, environ: Mapping[str, str] | None = None, **overrides: Any
) -> Settings:
    """Load settings, failing fast on unknown keys and invalid values (secrets never shown)."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    _check_unknown_env(os.environ if environ is None else environ)
    if config_file is not None and not config_file.is_file():
        raise ConfigError(f"config file not found: {config_file}")
    Settings._toml_path = config_file
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '?'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from None
    except SettingsError as exc:
        raise ConfigError(f"invalid configuration: {exc}") from None
    except ValueError as exc:  # our own field validators (e.g. an unknown interval)
        raise ConfigError(f"invalid configuration: {exc}") from None
    finally:
        Settings._toml_path = None
    register_secrets(settings.secret_values())
    return settings
