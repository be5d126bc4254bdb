"""Stores behind one protocol; backends register by name in :data:`BACKENDS`.

``create_store(settings_or_url)`` picks the backend: PostgreSQL when a ``postgresql://`` URL is
given (``settings.database_url``, i.e. ``DATABASE_URL``), DuckDB otherwise, in
``<data_dir>/tickstream.duckdb`` with the local Parquet archive ``<data_dir>/archive``.
``open_store`` does the same and awaits ``store.open()``.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from tickstream.storage.base import StoreUnavailableError, TickPage, TickStore

__all__ = [
    "BACKENDS",
    "StoreUnavailableError",
    "TickPage",
    "TickStore",
    "create_store",
    "default_data_dir",
    "open_store",
]

# name -> "module:Class"; imported lazily so optional extras (asyncpg) stay optional.
BACKENDS: dict[str, str] = {
    "duckdb": "tickstream.storage.duckdb_store:DuckDBStore",
    "postgres": "tickstream.storage.postgres:PostgresStore",
}


def backend_class(name: str) -> type[Any]:
    try:
        module, _, cls = BACKENDS[name].partition(":")
    except KeyError:
        raise ValueError(
            f"unknown store backend {name!r}; expected one of {sorted(BACKENDS)}"
        ) from None
    return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]


def default_data_dir() -> Path:
    return Path(os.environ.get("TICKSTREAM_DATA_DIR", "data"))


def _secret(value: Any) -> str | None:
    if value is None:
        return None
    getter = getattr(value, "get_secret_value", None)
    return str(getter() if callable(getter) else value) or None


def create_store(settings_or_url: Any = None) -> TickStore:
    """An unopened store for a URL (``postgresql://...``, ``duckdb:///path``, a ``.duckdb`` path)
    or for a settings object (attributes ``database_url``, ``data_dir``, ``archive_dir``).
    ``None`` reads ``DATABASE_URL`` and ``TICKSTREAM_DATA_DIR`` from the environment.

    A DuckDB file's local archive is ``archive/`` beside it (settings may name another)."""
    if settings_or_url is None:
        settings_or_url = os.environ.get("DATABASE_URL") or default_data_dir() / "tickstream.duckdb"
    archive: Path | None = None
    if isinstance(settings_or_url, str | Path):
        url = str(settings_or_url)
    else:
        data_dir = Path(getattr(settings_or_url, "data_dir", None) or default_data_dir())
        url = _secret(getattr(settings_or_url, "database_url", None)) or str(
            data_dir / "tickstream.duckdb"
        )
        archive = getattr(settings_or_url, "archive_dir", None)
    if url.startswith(("postgresql://", "postgres://")):
        store: TickStore = backend_class("postgres")(url)
        return store
    path = url.removeprefix("duckdb://")  # duckdb:///abs/file.duckdb, duckdb://:memory:, a path
    if archive is None and path != ":memory:":
        archive = Path(path).parent / "archive"
    store = backend_class("duckdb")(path, archive_dir=archive)
    return store


async def open_store(settings_or_url: Any = None) -> TickStore:
    """:func:`create_store`, then ``await store.open()`` (connect, migrate)."""
    store = create_store(settings_or_url)
    await store.open()
    return store
