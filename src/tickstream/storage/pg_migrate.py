"""Versioned migrations for the PostgreSQL store.

Files in :mod:`tickstream.storage.migrations` are named ``NNNN_name.sql`` (every flavor) or
``NNNN_name.plain.sql`` / ``NNNN_name.timescale.sql`` (one flavor). All pending migrations are
applied in one transaction under a transaction-scoped advisory lock and recorded in
``schema_migrations``: two processes starting at once apply each migration exactly once (the
second waits for the lock, then finds nothing to do).

The flavor is ``timescale`` when ``pg_available_extensions`` lists ``timescaledb`` (and the caller
allows it), ``plain`` otherwise; once version 2 is recorded its flavor is kept.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final

__all__ = ["MIGRATION_LOCK_ID", "Migration", "detect_flavor", "load_migrations", "migrate"]

log = logging.getLogger(__name__)

MIGRATION_LOCK_ID: Final = 0x7469636B  # "tick"
_NAME_RE = re.compile(r"^(\d{4})_([a-z0-9_]+?)(?:\.(plain|timescale))?\.sql$")
_FLAVORS = ("plain", "timescale")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations(flavor: str) -> list[Migration]:
    """The packaged migrations for one flavor, by version; a version must not repeat."""
    if flavor not in _FLAVORS:
        raise ValueError(f"unknown flavor {flavor!r}")
    found: dict[int, Migration] = {}
    for entry in resources.files("tickstream.storage.migrations").iterdir():
        m = _NAME_RE.match(entry.name)
        if m is None or (m.group(3) not in (None, flavor)):
            continue
        version = int(m.group(1))
        if version in found:
            raise RuntimeError(f"two migrations with version {version}")
        found[version] = Migration(version, m.group(2), entry.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


async def detect_flavor(conn: Any, allow_timescale: bool = True) -> str:
    if await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL"):
        recorded = await conn.fetchval("SELECT flavor FROM schema_migrations WHERE version = 2")
        if recorded:
            return str(recorded)
    if not allow_timescale:
        return "plain"
    available = await conn.fetchval(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
    )
    return "timescale" if available == 1 else "plain"


async def migrate(conn: Any, flavor: str) -> list[int]:
    """Apply pending migrations atomically; returns the versions applied now."""
    applied_now: list[int] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_ID)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL, flavor text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r[0] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for mig in load_migrations(flavor):
            if mig.version in done:
                continue
            await conn.execute(mig.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, flavor) VALUES ($1, $2, $3)",
                mig.version,
                mig.name,
                flavor,
            )
            applied_now.append(mig.version)
    if applied_now:
        log.info("applied migrations %s (%s)", applied_now, flavor)
    return applied_now
