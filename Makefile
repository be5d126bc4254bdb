# tickstream — the two commands that matter are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help run test test-unit test-integration test-faults bench lint fmt services services-stop services-status clean

help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Re-install only when the package definition or the C fast path changes.
$(VENV)/.installed-run: pyproject.toml setup.py $(wildcard src/tickstream/feeds/_fastwire*.[ch]) | $(BIN)/python
	$(BIN)/pip install -q -e '.[all]'
	@touch $@

$(VENV)/.installed-dev: pyproject.toml setup.py $(wildcard src/tickstream/feeds/_fastwire*.[ch]) | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@ $(VENV)/.installed-run

# The dashboard's charting library (lightweight-charts) comes from npm, never from the repo.
web/node_modules/.installed: web/package.json web/package-lock.json
	npm ci --prefix web --no-audit --no-fund --loglevel=error
	@touch $@

run: $(VENV)/.installed-run web/node_modules/.installed ## Run everything in one process: simulator feed, pipeline, DuckDB, dashboard on :8000
	$(BIN)/tickstream run

test: $(VENV)/.installed-dev web/node_modules/.installed ## Install everything, start Redis/PostgreSQL/Kafka, lint, run all tests
	bash scripts/services.sh start
	bash scripts/browser.sh
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest $(PYTEST_ARGS)

test-unit: $(VENV)/.installed-dev ## Unit tests only (no services)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

test-integration: $(VENV)/.installed-dev ## Integration tests against the real services
	bash scripts/services.sh start
	$(BIN)/pytest tests/integration $(PYTEST_ARGS)

test-faults: $(VENV)/.installed-dev ## The fault suite only (each scenario asserts the checker's verdict)
	bash scripts/services.sh start
	$(BIN)/pytest -m faults $(PYTEST_ARGS)

bench: $(VENV)/.installed-dev ## Run every benchmark and print one table (JSON under .bench/)
	bash scripts/services.sh start
	$(BIN)/python bench/run_all.py

lint: $(VENV)/.installed-dev ## ruff + mypy --strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: $(VENV)/.installed-dev ## Format and autofix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

services: ## Start Redis, PostgreSQL and Kafka on loopback (installs what is missing)
	bash scripts/services.sh start

services-stop: ## Stop the local services
	bash scripts/services.sh stop

services-status: ## Show the local services
	bash scripts/services.sh status

clean: ## Remove caches (keeps .venv and .services)
	rm -rf .pytest_cache .mypy_cache .ruff_cache .hypothesis .bench
