#!/usr/bin/env bash
# Validate docker-compose.yml with `docker compose config` (no Docker engine is needed for this).
# Without the compose v2 plugin, build it from the Go module proxy once:
#   GOFLAGS=-mod=mod go install github.com/docker/compose/v2/cmd@v2.29.7
#   mkdir -p ~/.docker/cli-plugins && cp "$(go env GOPATH)/bin/cmd" ~/.docker/cli-plugins/docker-compose
set -euo pipefail
cd "$(dirname "$0")/.."
if ! docker compose version >/dev/null 2>&1; then
  echo "docker compose plugin not found; see the comment at the top of $0 to build it" >&2
  exit 2
fi
docker compose config --quiet
echo "docker-compose.yml is valid ($(docker compose version))"
