"""docker-compose.yml shape: every service health-checked, every dependency waits for health.

`docker compose config` (scripts/compose-check.sh) validates it against the compose spec where the
plugin is installed; this test keeps the promises that matter to users on every machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


def load() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return doc


def test_compose_has_the_stack_services() -> None:
    assert set(load()["services"]) == {
        "redis",
        "timescaledb",
        "redpanda",
        "ingest",
        "process",
        "serve",
    }


def test_compose_every_service_has_healthcheck() -> None:
    for name, svc in load()["services"].items():
        assert "test" in svc.get("healthcheck", {}), name


def test_compose_every_dependency_waits_for_health() -> None:
    services = load()["services"]
    for name in ("ingest", "process", "serve"):
        deps = services[name]["depends_on"]
        assert deps, name
        for dep, cond in deps.items():
            assert dep in services
            assert cond == {"condition": "service_healthy"}, (name, dep)


def test_compose_tickstream_services_run_the_scaled_commands() -> None:
    services = load()["services"]
    assert services["ingest"]["command"][0] == "ingest"
    assert services["process"]["command"][0] == "process"
    assert services["serve"]["command"][0] == "serve"
    assert services["serve"]["healthcheck"]["test"][1:3] == ["tickstream", "healthcheck"]


def test_dockerfile_runs_as_non_root() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "USER tickstream" in text
    assert "python:3.11-slim" in text
