"""Shared fixtures for tests that talk to the real services.

The services (Redis, PostgreSQL, Kafka) are started by ``scripts/services.sh start``, which writes
``<repo>/.services/env``. Everything under ``tests/integration`` is marked ``integration``. If the
env file is missing or a service does not answer, the tests FAIL (they are never skipped) with a
message that says how to fix it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tickstream.bus.redis_bus import RedisBus

INTEGRATION_DIR = Path(__file__).resolve().parent
REPO_ROOT = INTEGRATION_DIR.parents[1]
SERVICES_ENV_FILE = REPO_ROOT / ".services" / "env"
START_HINT = "run `scripts/services.sh start` from the repo root, then re-run the tests"
REQUIRED_KEYS = ("REDIS_URL", "DATABASE_URL", "KAFKA_BOOTSTRAP")
CONNECT_TIMEOUT_S = 5.0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(INTEGRATION_DIR):
            item.add_marker(pytest.mark.integration)
    # The fault suite kills and restarts the shared services: run it after every other test, so
    # no other test starts right after a SIGKILL (stable sort keeps the order within each group).
    faults = INTEGRATION_DIR / "faults"
    items.sort(key=lambda item: item.path.is_relative_to(faults))


def read_services_env(path: Path = SERVICES_ENV_FILE) -> dict[str, str]:
    """Parse the KEY=VALUE lines of ``.services/env``."""
    env: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        env[key.strip()] = value.strip()
    return env


def _check_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(
        url, socket_connect_timeout=CONNECT_TIMEOUT_S, socket_timeout=CONNECT_TIMEOUT_S
    )
    try:
        if client.ping() is not True:
            raise RuntimeError("PING did not return PONG")
    finally:
        client.close()


def _check_postgres(dsn: str) -> None:
    import asyncpg

    async def probe() -> None:
        conn = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT_S)
        try:
            if await conn.fetchval("SELECT 1") != 1:
                raise RuntimeError("SELECT 1 did not return 1")
        finally:
            await conn.close()

    asyncio.run(probe())


KAFKA_WARMUP_TOPIC = "tickstream.readiness"
KAFKA_WARMUP_TIMEOUT_S = 90.0


def _check_kafka(bootstrap: str) -> None:
    """Metadata, then one acknowledged write from an idempotent producer.

    A freshly formatted KRaft broker answers metadata before it can hand out producer ids
    ("Coordinator load in progress"); the first idempotent write can then wait many seconds on a
    slow machine. Waiting for one acknowledged write here keeps that start-up delay out of the
    tests' own deadlines. A broker that never acknowledges fails the session.
    """
    from confluent_kafka import KafkaError, Producer
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(
        {"bootstrap.servers": bootstrap, "socket.connection.setup.timeout.ms": 5000}
    )
    metadata = admin.list_topics(timeout=CONNECT_TIMEOUT_S)
    if not metadata.brokers:
        raise RuntimeError("metadata response lists no brokers")
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    errors: list[KafkaError] = []
    delivered: list[bool] = []

    def on_delivery(err: KafkaError | None, _msg: object) -> None:
        (errors.append(err) if err is not None else delivered.append(True))

    producer.produce(KAFKA_WARMUP_TOPIC, b"ready", on_delivery=on_delivery)
    left = producer.flush(KAFKA_WARMUP_TIMEOUT_S)
    if left or errors or not delivered:
        raise RuntimeError(
            f"an idempotent write was not acknowledged within {KAFKA_WARMUP_TIMEOUT_S:.0f}s"
            f" (undelivered={left}, errors={errors})"
        )


@pytest.fixture(scope="session")
def services_env() -> Iterator[dict[str, str]]:
    """``.services/env`` as a dict, verified by a real connection to each service.

    The values are also exported to ``os.environ`` for the duration of the session.
    """
    if not SERVICES_ENV_FILE.is_file():
        pytest.fail(f"{SERVICES_ENV_FILE} does not exist: {START_HINT}", pytrace=False)
    env = read_services_env()
    missing = [key for key in REQUIRED_KEYS if not env.get(key)]
    if missing:
        pytest.fail(f"{SERVICES_ENV_FILE} lacks {', '.join(missing)}: {START_HINT}", pytrace=False)

    checks = (
        ("redis", _check_redis, env["REDIS_URL"]),
        ("postgres", _check_postgres, env["DATABASE_URL"]),
        ("kafka", _check_kafka, env["KAFKA_BOOTSTRAP"]),
    )
    problems = []
    for name, check, target in checks:
        try:
            check(target)
        except Exception as exc:
            problems.append(f"{name} at {target}: {type(exc).__name__}: {exc}")
    if problems:
        pytest.fail(
            "integration services are not reachable:\n  "
            + "\n  ".join(problems)
            + f"\n{START_HINT} (`scripts/services.sh status` shows what is down)",
            pytrace=False,
        )

    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        yield env


@pytest.fixture(scope="session")
def redis_url(services_env: dict[str, str]) -> str:
    return services_env["REDIS_URL"]


@pytest.fixture(scope="session")
def database_url(services_env: dict[str, str]) -> str:
    return services_env["DATABASE_URL"]


@pytest.fixture
async def publisher(redis_url: str) -> AsyncIterator[RedisBus]:
    """A RedisBus on a fresh per-test stream prefix; its streams are deleted afterwards."""
    from tickstream.bus.redis_bus import RedisBus

    prefix = f"test:{uuid.uuid4().hex[:8]}:mds:"
    bus = RedisBus(redis_url, stream_prefix=prefix)
    await bus.start()
    yield bus
    try:
        keys = [k async for k in bus.client.scan_iter(match=f"{prefix}*")]
        if keys:
            await bus.client.delete(*keys)
    finally:
        await bus.close()


@pytest.fixture(scope="session")
def kafka_bootstrap(services_env: dict[str, str]) -> str:
    return services_env["KAFKA_BOOTSTRAP"]
