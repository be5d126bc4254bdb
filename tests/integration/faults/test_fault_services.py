"""Backing services failing under ``tickstream run`` (real Redis and PostgreSQL), with the verdict.

Redis killed (SIGKILL) and restarted while it carries the bus; PostgreSQL restarted
(``-m immediate``) while it is the tick store. Each restores the service in ``finally`` and then
asserts the checker's verdict over the whole run: zero missing, zero duplicated.

Reused, not repeated here (they already assert exactly-once on their own path):
``tests/integration/test_kafka_restart.py`` (Kafka broker stopped and started under the idempotent
producer), ``tests/integration/test_process_workers.py`` (a process worker killed mid-batch),
``tests/integration/test_redis_restart.py`` (the Redis streams consumer group across a SIGKILL) and
``tests/integration/test_postgres_restart.py`` (a sink writing through a restart).
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conformance.store_suite import create_temp_database, drop_temp_database

# The whole fault suite runs under TZ=UTC and TZ=Asia/Kolkata: verdicts must not depend on it.
pytestmark = pytest.mark.usefixtures("tz")


@pytest.fixture
def pg_dsn(database_url: str) -> Iterator[str]:
    dsn = create_temp_database(database_url, "ts_faults")
    yield dsn
    drop_temp_database(database_url, dsn)


@pytest.mark.filterwarnings(  # the redis client leaks a connection across the kill (reported)
    "ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning"
)
def test_fault_redis_killed_and_restarted_no_tick_lost(
    fault_kit: Any,
    no_loss: Callable[..., None],
    services_sh: Callable[..., Awaitable[None]],
    redis_url: str,
    tmp_path: Path,
) -> None:
    # Arrange: Redis carries the live fan-out; the durable path stays in-process (TeeBus)
    async def scenario() -> Any:
        run = await fault_kit.start_run(fault_kit.fault_settings(tmp_path, redis_url=redis_url))
        try:
            # Act
            try:
                await services_sh("kill", "redis")
                await asyncio.sleep(1.0)
            finally:
                await services_sh("start", "redis")
            await run.wait_more_ticks(300, timeout=30)
            return await run.finish()
        finally:
            await run.asm.runtime.stop()

    verdict = asyncio.run(scenario())
    gc.collect()  # the client's leaked connections surface here, under this test's filter
    # Assert
    no_loss(verdict)


async def test_fault_postgres_restarted_mid_write_no_tick_lost(
    fault_run: Callable[..., Any],
    no_loss: Callable[..., None],
    services_sh: Callable[..., Awaitable[None]],
    pg_dsn: str,
) -> None:
    # Arrange: PostgreSQL is the tick and candle store
    run = await fault_run(database_url=pg_dsn)
    await run.wait_more_ticks(500)
    # Act: restart until a write is really interrupted (whether one is in flight is timing)
    for _ in range(3):
        try:
            await services_sh("restart", "postgres")
        finally:
            await services_sh("start", "postgres")
        await run.wait_more_ticks(300, timeout=30)
        if run.asm.stats()["accounting"]["storage"]["write_retries"] >= 1:
            break
    verdict = await run.finish()
    # Assert: the sink retried (the restart really interrupted writes) and lost nothing
    no_loss(verdict)
    assert verdict.accounting["storage"]["write_retries"] >= 1
