"""Logging set up once per process: text or JSON lines, with secrets scrubbed from every record."""

from __future__ import annotations

import enum
import json
import logging
import sys
import time
from collections.abc import Iterable
from typing import Final

__all__ = ["LogFormat", "SecretFilter", "register_secret", "setup_logging"]

_REDACTED: Final = "***"
_secrets: set[str] = set()


class LogFormat(enum.StrEnum):
    TEXT = "text"
    JSON = "json"


def register_secret(value: str | None) -> None:
    """Remember a secret so that no log record ever prints it (defence in depth)."""
    if value and len(value) >= 4:
        _secrets.add(value)


def register_secrets(values: Iterable[str | None]) -> None:
    for v in values:
        register_secret(v)


def scrub(text: str) -> str:
    """Replace every registered secret in ``text``."""
    for s in _secrets:
        if s in text:
            text = text.replace(s, _REDACTED)
    return text


class SecretFilter(logging.Filter):
    """Formats the record's message once, scrubs registered secrets, and freezes the result."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _secrets:
            msg = scrub(record.getMessage())
            record.msg, record.args = msg, None
            if record.exc_info and record.exc_info[1] is not None:
                record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
                record.exc_info = None
        return True


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc"] = record.exc_text
        return json.dumps(out, ensure_ascii=False)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at emit time (test runners swap it out and close it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # a read-only view of the current sys.stderr
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


def setup_logging(level: str = "INFO", fmt: LogFormat = LogFormat.TEXT) -> None:
    """Configure the root logger once (idempotent: replaces our own handler on a second call)."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}; expected DEBUG, INFO, WARNING or ERROR")
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_tickstream", False):
            root.removeHandler(h)
    handler = _StderrHandler()
    handler._tickstream = True  # type: ignore[attr-defined]  # marks our handler for idempotence
    handler.addFilter(SecretFilter())
    if fmt is LogFormat.JSON:
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        )
    root.addHandler(handler)
    root.setLevel(numeric)
